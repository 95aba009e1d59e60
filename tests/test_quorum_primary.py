"""Primary quorums (Riak's PR and PW): the policy fields, the coordinators' outcomes, the node.

The key's walk is ``a b c d e`` and its preference list ``a b c`` throughout: ``d`` and ``e`` are
fallbacks. Each row of the outcome tables scripts the replies and names the input at which the
request completes and how.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.errors import DecodeError, Unavailable
from dynamo_core.quorum import (
    Complete,
    ConsistencyLevel,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendStore,
    Stored,
)
from dynamo_core.testing import DotSet, QuorumHarness

CL = ConsistencyLevel
WALK = ("a", "b", "c", "d", "e")
PRIMARIES = ("a", "b", "c")
STATE = DotSet.of(("writer", 1))
FOUND = Fetched(STATE)

# -- the policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((3, 2, 2), {"pr": 3}, ValueError, r"pr must be in 0..r=2 .*got 3"),
        ((3, 2, 1), {"pw": 2}, ValueError, r"pw must be in 0..w=1 .*got 2"),
        ((3, 3, 3), {"pr": 4}, ValueError, r"pr must be in 0..r=3"),  # so never above n
        ((3, 3, 3), {"pw": 4}, ValueError, r"pw must be in 0..w=3"),
        ((3, 2, 2), {"pr": -1}, ValueError, "pr must be >= 0, got -1"),
        ((3, 2, 2), {"pw": -1}, ValueError, "pw must be >= 0, got -1"),
        ((3, 2, 2), {"pr": True}, TypeError, "pr must be an int, not bool"),
        ((3, 2, 2), {"pw": 1.0}, TypeError, "pw must be an int, not float"),
        ((3, 2, 1), {"write_any": True, "pw": 1}, ValueError, "pw must be 0 with write_any"),
    ],
)
def test_policy_refuses_bad_primary_counts(
    args: tuple[int, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        QuorumPolicy(*args, **kwargs)


@pytest.mark.parametrize(
    ("n", "pr", "pw", "overlap"),
    [(3, 0, 0, False), (3, 1, 2, False), (3, 2, 2, True), (3, 1, 3, True), (5, 3, 3, True),
     (5, 2, 3, False), (1, 1, 1, True), (1, 0, 1, False)],
)  # fmt: skip
def test_primaries_overlap_is_pr_plus_pw_above_n(n: int, pr: int, pw: int, overlap: bool) -> None:
    assert QuorumPolicy(n, n, n, pr=pr, pw=pw).primaries_overlap is overlap


# Levels for pr and pw, as Riak accepts "one", "quorum", "all" for them.
PRIMARY_LEVELS = [
    # n, level,      count
    (3, CL.ONE,    1),
    (3, CL.QUORUM, 2),
    (3, CL.ALL,    3),
    (5, CL.QUORUM, 3),
    (5, CL.TWO,    2),
]  # fmt: skip


@pytest.mark.parametrize(("n", "level", "count"), PRIMARY_LEVELS)
def test_primary_levels(n: int, level: ConsistencyLevel, count: int) -> None:
    policy = QuorumPolicy.from_levels(n, read=CL.ALL, write=CL.ALL, pr=level, pw=level)
    assert (policy.pr, policy.pw) == (count, count)
    base = QuorumPolicy(n, n, n)
    assert base.override(pr=level).pr == count
    assert base.override(pw=level).pw == count
    assert base.override(pr=count, pw=0) == QuorumPolicy(n, n, n, pr=count)


def test_primary_overrides_are_checked_against_the_new_quorum() -> None:
    base = QuorumPolicy(3, 2, 2, pr=2, pw=1)
    assert base.override(r=3).pr == 2, "an override keeps pr and pw"
    with pytest.raises(ValueError, match=r"pr must be in 0..r=1"):
        base.override(r=CL.ONE)
    with pytest.raises(ValueError, match="pw must be 0 with write_any"):
        base.override(w=CL.ANY)
    assert base.override(w=CL.ANY, pw=0).write_any
    with pytest.raises(ValueError, match="pr level ANY is not allowed"):
        base.override(pr=CL.ANY)
    with pytest.raises(ValueError, match="pw level ANY is not allowed"):
        QuorumPolicy.from_levels(3, pw=CL.ANY)
    with pytest.raises(ValueError, match=r"pw must be in 0..w=2"):
        QuorumPolicy.from_levels(3, pw=CL.ALL)
    with pytest.raises(TypeError, match="pr must be an int"):
        base.override(pr="2")  # type: ignore[arg-type]


def test_codec_carries_pr_and_pw_and_reads_policies_without_them() -> None:
    plain = QuorumPolicy(3, 2, 2)
    assert "pr" not in plain.to_dict(), "a policy without PR/PW encodes as before"
    policy = QuorumPolicy(3, 2, 3, pr=1, pw=2)
    encoded = policy.to_dict()
    assert (encoded["pr"], encoded["pw"]) == (1, 2)
    assert QuorumPolicy.from_dict(codec.loads(codec.dumps(encoded))) == policy


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pr": 3}, "pr must be in 0..r=2"),
        ({"pw": -1}, "QuorumPolicy.pw must be in 0.."),
        ({"pr": True}, "QuorumPolicy.pr must be an integer"),
        ({"pw": 1, "write_any": True, "w": 1}, "pw must be 0 with write_any"),
    ],
)
def test_decoder_refuses_bad_primary_counts(change: dict[str, object], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        QuorumPolicy.from_dict({**QuorumPolicy().to_dict(), **change})


# -- outcomes, table-driven --------------------------------------------------------------------

Event = tuple[str, object]  # (node, reply), fed at times 0.01, 0.02, ...


def run(
    kind: str, policy: QuorumPolicy, down: str, events: Sequence[Event], **options: Any
) -> tuple[Any, int, list[tuple[str, str | None]]]:
    """Drive a coordinator; return (the coordinator, the step that completed it, the asks)."""
    candidates = [node for node in WALK if node not in down]
    coordinator: Any
    if kind == "put":
        coordinator = PutCoordinator(
            policy, "k", candidates, STATE, preference_list=PRIMARIES, timeout=1.0, **options
        )
    else:
        coordinator = GetCoordinator(
            policy, "k", candidates, preference_list=PRIMARIES, timeout=1.0, **options
        )
    effects = coordinator.start(0.0)
    asks = [(e.target, e.hint) for e in effects if isinstance(e, SendStore | SendFetch)]
    step = -1 if any(isinstance(e, Complete) for e in effects) else None
    for i, (node, reply) in enumerate(events):
        effects = coordinator.receive(node, reply, 0.01 * (i + 1))
        asks += [(e.target, e.hint) for e in effects if isinstance(e, SendStore | SendFetch)]
        coordinator._check_invariants()
        if any(isinstance(e, Complete) for e in effects):
            assert step is None, "Complete exactly once"
            step = i
    assert step is not None, "the scripted replies must decide the request"
    return coordinator, step, asks


OK, NO = Stored(), Refused("busy")

# name, policy, primaries believed down, replies, completing step (-1: start), outcome:
#   ("ok", counted) or ("unavailable", answered, primaries that answered)
PUT_TABLE: list[tuple[str, QuorumPolicy, str, list[Event], int, tuple[Any, ...]]] = [
    ("pw=0: fallbacks count", QuorumPolicy(3, 2, 2), "bc",
     [("d", OK), ("a", OK)], 1, ("ok", ("a", "d"))),
    ("pw=2 with one primary up: fails at start", QuorumPolicy(3, 2, 2, pw=2), "bc",
     [], -1, ("unavailable", (), ())),
    ("pw=1 waits past w for a primary", QuorumPolicy(3, 2, 2, pw=1), "c",
     [("d", OK), ("b", NO), ("e", OK), ("a", OK)], 3, ("ok", ("a", "d", "e"))),
    ("pw=2 fails when a second primary refuses", QuorumPolicy(3, 2, 2, pw=2), "",
     [("a", OK), ("b", NO), ("d", OK), ("c", NO)], 3, ("unavailable", ("a", "d"), ("a",))),
    ("pw=1 fails at the last primary's refusal", QuorumPolicy(3, 1, 1, pw=1), "ab",
     [("d", OK), ("c", NO)], 1, ("unavailable", ("d",), ())),
    ("pw=w=3, all primaries ack", QuorumPolicy(3, 2, 3, pw=3), "",
     [("a", OK), ("c", OK), ("b", OK)], 2, ("ok", ("a", "b", "c"))),
    ("strict, pw=1: only primaries count anyway", QuorumPolicy(3, 2, 2, sloppy=False, pw=1), "c",
     [("d", OK), ("a", OK), ("b", OK)], 2, ("ok", ("a", "b"))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "down", "events", "step", "outcome"),
    [row[1:] for row in PUT_TABLE],
    ids=[row[0] for row in PUT_TABLE],
)
def test_put_outcomes(
    policy: QuorumPolicy, down: str, events: list[Event], step: int, outcome: tuple[Any, ...]
) -> None:
    put, done, asks = run("put", policy, down, events)
    assert done == step
    if outcome[0] == "ok":
        assert put.result == PutResult(outcome[1], put.result.hinted)
        assert len(set(outcome[1]) & set(PRIMARIES)) >= policy.pw
    else:
        error = put.result
        assert isinstance(error, Unavailable)
        assert (error.answered, error.primaries) == outcome[1:]
        assert error.required_primaries == policy.pw
        assert f"pw={policy.pw} of them from primaries, got {len(outcome[2])}" in str(error)
        if step == -1:
            assert asks == [], "nothing is written when PW cannot be met from the start"
    for node, hint in asks:
        assert (hint is None) == (node in PRIMARIES)


# name, policy, primaries believed down, replies, completing step, outcome
GET_TABLE: list[tuple[str, QuorumPolicy, str, list[Event], int, tuple[Any, ...]]] = [
    ("pr=0: a fallback's answer counts", QuorumPolicy(3, 2, 2), "b",
     [("d", FOUND), ("a", FOUND)], 1, ("ok", ("a", "d"))),
    ("pr=2 waits past r for a second primary", QuorumPolicy(3, 2, 2, pr=2), "b",
     [("a", FOUND), ("d", FOUND), ("c", Fetched(None))], 2, ("ok", ("a", "c", "d"))),
    ("pr=2 with one primary up: fails at start", QuorumPolicy(3, 2, 2, pr=2), "bc",
     [], -1, ("unavailable", (), ())),
    ("pr=1 fails when the only primary refuses", QuorumPolicy(3, 2, 2, pr=1), "ab",
     [("d", FOUND), ("e", FOUND), ("c", NO)], 2, ("unavailable", ("d", "e"), ())),
    ("pr=1, notfound_ok=False: a primary's not found does not count",
     QuorumPolicy(3, 1, 1, pr=1, notfound_ok=False), "",
     [("a", Fetched(None)), ("b", FOUND)], 1, ("ok", ("b",))),
    ("pr=r=3, one primary down", QuorumPolicy(3, 3, 2, pr=3), "a",
     [], -1, ("unavailable", (), ())),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "down", "events", "step", "outcome"),
    [row[1:] for row in GET_TABLE],
    ids=[row[0] for row in GET_TABLE],
)
def test_get_outcomes(
    policy: QuorumPolicy, down: str, events: list[Event], step: int, outcome: tuple[Any, ...]
) -> None:
    get, done, asks = run("get", policy, down, events)
    assert done == step
    if outcome[0] == "ok":
        assert isinstance(get.result, GetResult)
        assert get.result.answered == outcome[1]
        assert len(set(outcome[1]) & set(PRIMARIES)) >= policy.pr
    else:
        error = get.result
        assert isinstance(error, Unavailable)
        assert (error.answered, error.primaries) == outcome[1:]
        assert error.required_primaries == policy.pr
        assert f"pr={policy.pr} of them from primaries, got {len(outcome[2])}" in str(error)
        if step == -1:
            assert asks == []


def test_per_request_pr_and_pw() -> None:
    events: list[Event] = [("d", OK), ("a", OK), ("b", NO)]
    put, step, _ = run("put", QuorumPolicy(3, 2, 2), "c", events, pw=CL.QUORUM)
    assert put.policy.pw == 2
    assert step == 2, "w=2 was met at a's ack; pw=2 became impossible at b's refusal"
    assert isinstance(put.result, Unavailable)
    assert put.result.primaries == ("a",)
    get, _, _ = run("get", QuorumPolicy(3, 2, 2), "", [("a", FOUND), ("b", FOUND)], pr=2)
    assert get.policy.pr == 2
    assert isinstance(get.result, GetResult)


def test_unavailable_without_pr_pw_reads_as_before() -> None:
    put, _, _ = run("put", QuorumPolicy(3, 3, 3), "de", [("a", NO)])  # no fallback left
    error = put.result
    assert isinstance(error, Unavailable)
    assert "primaries" not in str(error)
    assert (error.primaries, error.required_primaries) == ((), 0)


# -- the property: a success always had its primaries -----------------------------------------


@settings(max_examples=300)
@given(
    kind=st.sampled_from(["put", "get"]),
    data=st.data(),
)
def test_success_implies_enough_primaries_and_failure_names_them(
    kind: str, data: st.DataObject
) -> None:
    n = 3
    quorum = data.draw(st.integers(1, n), label="r or w")
    primaries = data.draw(st.integers(0, quorum), label="pr or pw")
    sloppy = data.draw(st.booleans(), label="sloppy")
    down = data.draw(st.sets(st.sampled_from(PRIMARIES)), label="down")
    if kind == "put":
        policy = QuorumPolicy(n, 1, quorum, sloppy=sloppy, pw=primaries)
    else:
        notfound_ok = data.draw(st.booleans(), label="notfound_ok")
        policy = QuorumPolicy(n, quorum, 1, sloppy=sloppy, pr=primaries, notfound_ok=notfound_ok)
    candidates = [node for node in WALK if node not in down]
    coordinator: Any = (
        PutCoordinator(policy, "k", candidates, STATE, preference_list=PRIMARIES)
        if kind == "put"
        else GetCoordinator(policy, "k", candidates, preference_list=PRIMARIES)
    )
    effects = coordinator.start(0.0)
    pending = [e.target for e in effects if isinstance(e, SendStore | SendFetch)]
    now = 0.0
    while coordinator.result is None and pending:
        node = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
        choice = data.draw(st.sampled_from(["ok", "none", "refuse"]))
        reply: object = (
            Refused()
            if choice == "refuse"
            else (Stored() if kind == "put" else Fetched(STATE if choice == "ok" else None))
        )
        now += 0.01
        effects = coordinator.receive(node, reply, now)
        pending += [e.target for e in effects if isinstance(e, SendStore)]
    if coordinator.result is None:
        coordinator.on_timer(10.0)
    result = coordinator.result
    assert result is not None
    if isinstance(result, Unavailable):
        assert set(result.primaries) <= set(PRIMARIES) & set(result.answered)
        assert len(result.answered) < quorum or len(result.primaries) < primaries
    else:
        counted = result.acked if kind == "put" else result.answered
        assert len(counted) >= quorum
        assert len(set(counted) & set(PRIMARIES)) >= primaries


# -- pr + pw > n: reads see writes even under sloppy quorum ------------------------------------


def test_primary_quorums_restore_read_your_writes_under_sloppy_quorum() -> None:
    """The sloppy-quorum counterexample of the quorum page, with PR and PW."""
    # As in test_sloppy_quorum_does_not_guarantee_read_after_write: a and b are believed down,
    # so d and e take the write. PW=2 refuses to call that a success.
    nodes = ["a", "b", "c", "d", "e"]
    plain: QuorumHarness[DotSet] = QuorumHarness(nodes, policy=QuorumPolicy(3, 2, 2), seed=0)
    guarded: QuorumHarness[DotSet] = QuorumHarness(
        nodes, policy=QuorumPolicy(3, 2, 2, pr=2, pw=2), seed=0
    )
    for harness in (plain, guarded):
        harness.suspect("a")
        harness.suspect("b")
    assert isinstance(plain.put("cart", DotSet.of(("alice", 1))), PutResult)
    refused = guarded.put("cart", DotSet.of(("alice", 1)))
    assert isinstance(refused, Unavailable)
    assert refused.required_primaries == 2
    assert guarded.hints_on("d") == [], "nothing was sent: only c of the primaries is up"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_pr_plus_pw_above_n_reads_descend_acknowledged_writes(
    seed: int, data: st.DataObject
) -> None:
    nodes = ["a", "b", "c", "d", "e"]
    policy = QuorumPolicy(3, 2, 2, pr=2, pw=2)  # sloppy, r + w > n, pr + pw > n
    harness: QuorumHarness[DotSet] = QuorumHarness(nodes, policy=policy, seed=seed)
    acknowledged: list[DotSet] = []
    for i in range(6):
        for node in nodes:  # beliefs change between requests, as a detector's do
            if data.draw(st.booleans()):
                harness.suspect(node)
            else:
                harness.trust(node)
        state = DotSet.of(("writer", i + 1))
        if isinstance(harness.put("cart", state), PutResult):
            acknowledged.append(state)
        result = harness.get("cart")
        if isinstance(result, GetResult):
            for write in acknowledged:
                assert result.state is not None
                assert result.state.descends(write)


# -- the node honours the policy ---------------------------------------------------------------


def test_a_node_refuses_a_write_that_only_fallbacks_could_acknowledge() -> None:
    from dynamo_core import NodeConfig, PutReply, RequestFailed
    from dynamo_core.testing import SimulatedCluster

    config = NodeConfig(heartbeat_interval=0.5, request_timeout=0.3, forward_timeout=0.6)
    outcomes: dict[int, object] = {}
    for pw in (0, 2):
        c = SimulatedCluster(policy=QuorumPolicy(3, 2, 2, pw=pw), config=config, partitions=16)
        key = "cart"
        first, *others = c.replicas(key)
        for node in others:
            c.crash(node)
        c.run(3.0)
        outcomes[pw] = c.put(key, b"v", via=first)
    accepted = outcomes[0]
    assert isinstance(accepted, PutReply), "sloppy quorum: fallbacks hold hints"
    assert accepted.hinted
    refused = outcomes[2]
    assert isinstance(refused, RequestFailed)
    assert refused.required == 2
    assert refused.answered == (first,), "the coordinator's own copy is the only primary's"
    assert f"pw=2 of them from primaries, got 1 (primaries: {first})" in refused.reason
