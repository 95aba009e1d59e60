"""Quorum coordination: the policy, the levels, and the put/get coordinators.

The coordinators are checked against a small model that sees only what a driver sees (the
effects, the replies fed in and the time), for every consistency setting and for random
response schedules: arrival order, refusals, replica timeouts, late and duplicate replies.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dynamo_core import codec
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DecodeError, LocalProtocolError, RemoteProtocolError, Unavailable
from dynamo_core.quorum import (
    Complete,
    ConsistencyLevel,
    CoordinatorEvent,
    CoordinatorState,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.testing import DotSet

CL = ConsistencyLevel
CLOSED = CoordinatorState.CLOSED
NODES = tuple(f"n{i}" for i in range(9))
STATE = DotSet.of(("writer", 1))
T, RT = 1.0, 0.25  # overall and replica timeouts used throughout


def kinds(effects: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in effects]


def completes(effects: Sequence[object]) -> list[Complete[Any]]:
    return [e for e in effects if isinstance(e, Complete)]


def put(
    candidates: Sequence[str],
    policy: QuorumPolicy | None = None,
    **options: Any,
) -> PutCoordinator[DotSet]:
    options.setdefault("timeout", T)
    options.setdefault("replica_timeout", RT)
    return PutCoordinator(policy or QuorumPolicy(), "k", candidates, STATE, **options)


def get(
    candidates: Sequence[str],
    policy: QuorumPolicy | None = None,
    **options: Any,
) -> GetCoordinator[DotSet]:
    options.setdefault("timeout", T)
    return GetCoordinator(policy or QuorumPolicy(), "k", candidates, **options)


def snapshot(c: PutCoordinator[Any] | GetCoordinator[Any]) -> tuple[object, ...]:
    done = c.answered if isinstance(c, GetCoordinator) else c.acked
    return (c.state, c.result, c.asked, done, c.refused, c.timed_out, c.late, c.deadline())


# -- policy and levels -------------------------------------------------------------------------


def test_policy_defaults_are_dynamos() -> None:
    policy = QuorumPolicy()
    assert (policy.n, policy.r, policy.w) == (3, 2, 2)
    assert policy.sloppy
    assert policy.notfound_ok
    assert not policy.write_any
    assert policy.is_strict


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 1, 1), {}, ValueError, "n must be >= 1"),
        ((3, 0, 1), {}, ValueError, "r must be >= 1"),
        ((3, 1, 0), {}, ValueError, "w must be >= 1"),
        ((3, 4, 1), {}, ValueError, "r must be in 1..n=3"),
        ((3, 1, 4), {}, ValueError, "w must be in 1..n=3"),
        ((3, 1, 2), {"write_any": True}, ValueError, "write_any"),
        ((3.0, 1, 1), {}, TypeError, "n must be an int"),
        ((3, True, 1), {}, TypeError, "r must be an int"),
        ((3, 1, "2"), {}, TypeError, "w must be an int"),
        ((3, 2, 2), {"sloppy": 1}, TypeError, "sloppy must be a bool"),
        ((3, 2, 2), {"notfound_ok": None}, TypeError, "notfound_ok must be a bool"),
    ],
)
def test_policy_refuses_bad_fields(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        QuorumPolicy(*args, **kwargs)


@pytest.mark.parametrize(
    ("n", "r", "w", "strict"),
    [(3, 2, 2, True), (3, 1, 3, True), (3, 3, 1, True), (3, 1, 1, False), (3, 1, 2, False),
     (5, 3, 3, True), (5, 2, 3, False), (1, 1, 1, True), (2, 1, 1, False), (2, 2, 1, True)],
)  # fmt: skip
def test_is_strict_is_read_write_overlap(n: int, r: int, w: int, strict: bool) -> None:
    assert QuorumPolicy(n, r, w).is_strict is strict


# Every level for every small n: the count, or the error.
LEVEL_TABLE: list[tuple[ConsistencyLevel, list[int | None]]] = [
    # level,     n=1,  n=2,  n=3,  n=4,  n=5
    (CL.ONE,    [1,    1,    1,    1,    1]),
    (CL.TWO,    [None, 2,    2,    2,    2]),
    (CL.THREE,  [None, None, 3,    3,    3]),
    (CL.QUORUM, [1,    2,    2,    3,    3]),
    (CL.ALL,    [1,    2,    3,    4,    5]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("level", "n", "expected"),
    [(level, n, row[n - 1]) for level, row in LEVEL_TABLE for n in range(1, 6)],
    ids=lambda v: str(getattr(v, "value", v)),
)
def test_level_counts(level: ConsistencyLevel, n: int, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=f"level {level.value} needs"):
            level.count(n)
        with pytest.raises(ValueError, match=f"level {level.value} needs"):
            QuorumPolicy.from_levels(n, read=level, write=CL.ONE)
        return
    assert level.count(n, write=False) == level.count(n, write=True) == expected
    policy = QuorumPolicy.from_levels(n, read=level, write=level)
    assert (policy.n, policy.r, policy.w, policy.write_any) == (n, expected, expected, False)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_level_any_is_for_writes_only(n: int) -> None:
    assert CL.ANY.count(n, write=True) == 1
    policy = QuorumPolicy.from_levels(n, read=CL.QUORUM, write=CL.ANY, sloppy=False)
    assert (policy.w, policy.write_any, policy.sloppy) == (1, True, False)
    with pytest.raises(ValueError, match="ANY is for writes only"):
        CL.ANY.count(n, write=False)
    with pytest.raises(ValueError, match="ANY is for writes only"):
        QuorumPolicy.from_levels(n, read=CL.ANY)


def test_levels_read_from_configuration_and_checked() -> None:
    assert ConsistencyLevel("QUORUM") is CL.QUORUM
    with pytest.raises(TypeError, match="read must be a ConsistencyLevel"):
        QuorumPolicy.from_levels(3, read="QUORUM")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be an int"):
        CL.ONE.count("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be >= 1"):
        CL.ONE.count(0)


def test_override_per_request() -> None:
    base = QuorumPolicy(5, 3, 3)
    assert base.override() is base
    assert base.override(r=1).r == 1
    assert base.override(w=CL.ALL).w == 5
    assert base.override(r=CL.QUORUM, w=CL.ONE) == QuorumPolicy(5, 3, 1)
    anyw = base.override(w=CL.ANY)
    assert (anyw.w, anyw.write_any) == (1, True)
    assert anyw.override(w=2) == QuorumPolicy(5, 3, 2), "a count clears ANY"
    assert base.override(notfound_ok=False).notfound_ok is False
    with pytest.raises(ValueError, match="r must be in 1..n=5"):
        base.override(r=6)
    with pytest.raises(ValueError, match="ANY is for writes only"):
        base.override(r=CL.ANY)


@given(
    st.integers(1, 9).flatmap(
        lambda n: st.builds(
            QuorumPolicy,
            st.just(n),
            st.integers(1, n),
            st.integers(1, n),
            sloppy=st.booleans(),
            notfound_ok=st.booleans(),
        )
    )
)
def test_policy_codec_round_trip(policy: QuorumPolicy) -> None:
    encoded = policy.to_dict()
    assert QuorumPolicy.from_dict(encoded) == policy
    assert QuorumPolicy.from_dict(codec.loads(codec.dumps(encoded))) == policy


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"r": 4}, "r must be in 1..n=3"),
        ({"w": 0}, "QuorumPolicy.w must be in"),
        ({"n": True}, "QuorumPolicy.n must be an integer"),
        ({"sloppy": 1}, "QuorumPolicy.sloppy must be a boolean"),
        ({"write_any": True}, "write_any"),
        ({"type": "Policy"}, "expected an encoded QuorumPolicy"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_policy_decoder_refuses_bad_input(change: dict[str, object], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        QuorumPolicy.from_dict({**QuorumPolicy().to_dict(), **change})


# -- put: examples ---------------------------------------------------------------------------


def test_put_succeeds_at_w_acks_and_closes_when_all_settled() -> None:
    c = put(["a", "b", "c", "d"])
    effects = c.start(10.0)
    assert effects == [
        SendStore("a", "k", STATE),
        SendStore("b", "k", STATE),
        SendStore("c", "k", STATE),
    ]
    assert c.deadline() == 10.0 + RT, "the one timer channel: no timer effect"
    assert c.receive("b", Stored(), 10.1) == []
    effects = c.receive("a", Stored(), 10.1)
    assert effects == [Complete(PutResult(("a", "b")))]
    assert c.state is CoordinatorState.DRAINING
    assert c.receive("c", Stored(), 10.2) == []
    assert c.state is CLOSED
    assert c.deadline() is None
    assert c.acked == ("a", "b", "c"), "in the order asked"
    c._check_invariants()


def test_put_replaces_a_refusing_replica_and_names_the_primary() -> None:
    c = put(["a", "b", "c", "d", "e"], QuorumPolicy(3, 2, 3))
    c.start(0.0)
    effects = c.receive("b", Refused("disk full"), 0.1)
    assert effects == [SendStore("d", "k", STATE, hint="b")]
    c.receive("a", Stored(), 0.1)
    c.receive("c", Stored(), 0.1)
    effects = c.receive("d", Stored(), 0.2)
    assert effects == [Complete(PutResult(("a", "c", "d"), hinted=(("d", "b"),)))]
    assert c.refused == ("b",)
    assert c.state is CLOSED


def test_put_replaces_a_slow_replica_at_its_timeout() -> None:
    c = put(["a", "b", "c", "d", "e"], QuorumPolicy(3, 2, 3))
    c.start(0.0)
    c.receive("a", Stored(), 0.05)
    c.receive("c", Stored(), 0.05)
    assert c.on_timer(0.2) == [], "early timer calls do nothing"
    effects = c.on_timer(RT)
    assert effects == [SendStore("d", "k", STATE, hint="b")]
    assert c.deadline() == 2 * RT
    # d is slow too: e replaces it and stands in for the same primary, b.
    effects = c.on_timer(2 * RT)
    assert effects == [SendStore("e", "k", STATE, hint="b")]
    assert c.deadline() == 3 * RT
    # b finally answers: too late to count.
    assert c.receive("b", Stored(), 0.6) == []
    assert c.late == ("b",)
    effects = c.receive("e", Stored(), 0.7)
    assert completes(effects) == [Complete(PutResult(("a", "c", "e"), hinted=(("e", "b"),)))]
    assert c.timed_out == ("b", "d")
    assert c.state is CLOSED, "every replica asked acked or was given up on"
    with pytest.raises(LocalProtocolError, match="closed"):
        c.receive("d", Stored(), 0.8)  # a driver drops replies for a closed request


def test_put_sends_hinted_copies_for_primaries_believed_down() -> None:
    # ring walk a b c d e with b believed down: preference list a b c.
    c = put(["a", "c", "d", "e"], preference_list=["a", "b", "c"])
    effects = c.start(0.0)
    assert effects[:3] == [
        SendStore("a", "k", STATE),
        SendStore("c", "k", STATE),
        SendStore("d", "k", STATE, hint="b"),
    ]
    assert c.asked == (("a", None), ("c", None), ("d", "b"))


@pytest.mark.parametrize(
    ("sloppy", "write_any", "outcome"),
    [(True, False, "ok"), (False, False, "unavailable"), (False, True, "ok")],
)
def test_only_primaries_count_unless_sloppy_or_any(
    sloppy: bool, write_any: bool, outcome: str
) -> None:
    # a and b are down; d and e hold hints for them; c refuses.
    policy = QuorumPolicy(3, 1, 1, sloppy=sloppy, write_any=write_any)
    c = put(["c", "d", "e"], policy, preference_list=["a", "b", "c"])
    effects = c.start(0.0)
    assert [e.hint for e in effects if isinstance(e, SendStore)] == [None, "a", "b"]
    effects = c.receive("c", Refused(), 0.1)
    if not sloppy and not write_any:
        # No primary is left: w = 1 became impossible at c's refusal, not at the deadline.
        assert completes(effects)[0].ok is False
        error = c.result
        assert isinstance(error, Unavailable)
        assert (error.required, error.answered) == (1, ())
    effects = c.receive("d", Stored(), 0.2)
    if outcome == "ok":
        assert completes(effects) == [Complete(PutResult(("d",), hinted=(("d", "a"),)))]
    assert (c.result is not None and not isinstance(c.result, Unavailable)) == (outcome == "ok")


def test_strict_put_fails_before_sending_when_too_few_primaries_are_up() -> None:
    policy = QuorumPolicy(3, 2, 3, sloppy=False)
    c = put(["a", "c", "d"], policy, preference_list=["a", "b", "c"])
    effects = c.start(0.0)
    assert kinds(effects) == ["Complete"], "Unavailable, and nothing written"
    error = completes(effects)[0].result
    assert isinstance(error, Unavailable)
    assert error.required == 3
    assert c.state is CLOSED
    assert c.asked == ()


@pytest.mark.parametrize("count", [0, 1])
def test_put_with_too_few_candidates_is_unavailable_at_once(count: int) -> None:
    c = put(NODES[:count], QuorumPolicy(3, 2, 2))
    effects = c.start(0.0)
    assert kinds(effects) == ["Complete"]
    with pytest.raises(Unavailable, match="needed 2 acknowledgements"):
        completes(effects)[0].unwrap()


@pytest.mark.parametrize(
    ("key", "shown"),
    [("cart:bob", "'cart:bob'"), (b"cart:bob", "'cart:bob'"), (b"\xff\x00", "0xff00")],
    ids=["str", "utf8-bytes", "binary"],
)
def test_unavailable_names_the_key_for_people(key: str | bytes, shown: str) -> None:
    c = PutCoordinator(QuorumPolicy(3, 2, 2), key, [], STATE)
    error = completes(c.start(0.0))[0].result
    assert isinstance(error, Unavailable)
    assert str(error).startswith(f"put of {shown} needed 2 acknowledgements")


def test_put_fails_early_when_w_becomes_impossible() -> None:
    c = put(["a", "b", "c"], QuorumPolicy(3, 2, 3))
    c.start(0.0)
    c.receive("a", Stored(), 0.01)
    effects = c.receive("b", Refused(), 0.02)  # no fallback left: at most 2 of 3
    assert kinds(effects) == ["Complete"]
    assert isinstance(c.result, Unavailable)
    assert c.result.answered == ("a",)
    assert c.state is CoordinatorState.DRAINING
    c.receive("c", Stored(), 0.03)
    assert c.state is CLOSED
    assert c.acked == ("a", "c")


def test_put_fails_at_the_deadline_when_replicas_stay_silent() -> None:
    c = put(["a", "b", "c"], QuorumPolicy(3, 2, 2), replica_timeout=T)
    c.start(0.0)
    c.receive("a", Stored(), 0.5)
    assert c.deadline() == T
    effects = c.on_timer(T)
    assert kinds(effects) == ["Complete"]
    assert isinstance(c.result, Unavailable)
    assert c.result.answered == ("a",)
    assert c.state is CLOSED


def test_put_reply_at_the_deadline_is_dropped() -> None:
    c = put(["a", "b", "c"], QuorumPolicy(3, 2, 2), replica_timeout=T)
    c.start(0.0)
    c.receive("a", Stored(), 0.5)
    effects = c.receive("b", Stored(), T)  # the driver was late firing the timer
    assert kinds(effects) == ["Complete"]
    assert isinstance(c.result, Unavailable)
    assert c.acked == ("a",)


def test_put_w_override_and_levels() -> None:
    c = put(["a", "b", "c"], QuorumPolicy(3, 2, 2), w=CL.ALL)
    assert c.policy.w == 3
    c.start(0.0)
    c.receive("a", Stored(), 0.1)
    assert c.receive("b", Stored(), 0.1) == []
    assert completes(c.receive("c", Stored(), 0.1))[0].ok
    assert put(["a"], w=1).policy.w == 1


def test_late_timers_do_not_send_after_the_deadline() -> None:
    c = put(["a", "b", "c", "d"], QuorumPolicy(3, 2, 2))
    c.start(0.0)
    effects = c.on_timer(5.0)
    assert not any(isinstance(e, SendStore) for e in effects)
    assert c.state is CLOSED
    assert isinstance(c.result, Unavailable)


# -- get: examples ---------------------------------------------------------------------------


def dots(*names: str) -> DotSet:
    return DotSet.of(*((name, 1) for name in names))


def test_get_completes_at_r_with_the_merge_then_repairs_the_stale() -> None:
    c = get(["a", "b", "c", "d"])
    effects = c.start(0.0)
    assert effects == [SendFetch("a", "k"), SendFetch("b", "k"), SendFetch("c", "k")]
    assert c.deadline() == T
    assert c.receive("a", Fetched(dots("x")), 0.1) == []
    effects = c.receive("b", Fetched(dots("y")), 0.1)  # concurrent with a's
    assert effects == [Complete(GetResult(dots("x", "y"), ("a", "b")))]
    effects = c.receive("c", Fetched(dots("x", "y", "z")), 0.2)
    merged = dots("x", "y", "z")
    assert effects == [SendRepair("a", "k", merged), SendRepair("b", "k", merged)]
    assert c.repaired == ("a", "b")
    assert c.state is CLOSED


def test_get_not_found_counts_unless_told_otherwise() -> None:
    c = get(["a", "b", "c"])
    c.start(0.0)
    c.receive("a", Fetched(None), 0.1)
    effects = c.receive("b", Fetched(None), 0.1)
    assert effects == [Complete(GetResult(None, ("a", "b"), not_found=("a", "b")))]
    assert c.result is not None
    assert not isinstance(c.result, Unavailable)
    assert not c.result.found
    effects = c.receive("c", Fetched(dots("x")), 0.2)
    assert effects == [SendRepair("a", "k", dots("x")), SendRepair("b", "k", dots("x"))]

    strict = get(["a", "b", "c"], notfound_ok=False)
    strict.start(0.0)
    strict.receive("a", Fetched(None), 0.1)
    assert strict.receive("b", Fetched(dots("x")), 0.1) == []
    effects = strict.receive("c", Fetched(None), 0.2)  # only 1 found answer can come: fail
    assert kinds(effects) == ["Complete", "SendRepair", "SendRepair"]
    assert isinstance(strict.result, Unavailable)
    assert strict.result.answered == ("b",)


def test_get_does_not_repair_replicas_that_refused_or_timed_out() -> None:
    c = get(["a", "b", "c"], r=1)
    c.start(0.0)
    c.receive("a", Fetched(dots("x")), 0.1)
    c.receive("b", Refused(), 0.1)
    effects = c.on_timer(T)  # c never answers
    assert effects == []
    assert c.repaired == ()
    assert c.timed_out == ("c",)
    assert c.state is CLOSED


def test_get_fails_early_when_r_becomes_impossible() -> None:
    c = get(["a", "b", "c"], QuorumPolicy(3, 3, 1))
    c.start(0.0)
    effects = c.receive("b", Refused(), 0.1)
    assert kinds(effects) == ["Complete"]
    assert isinstance(c.result, Unavailable)
    assert c.state is CoordinatorState.DRAINING


def test_strict_get_asks_only_live_primaries() -> None:
    policy = QuorumPolicy(3, 2, 2, sloppy=False)
    c = get(["a", "c", "d", "e"], policy, preference_list=["a", "b", "c"])
    effects = c.start(0.0)
    assert effects == [SendFetch("a", "k"), SendFetch("c", "k")]
    assert c.deadline() == T
    sloppy = get(["a", "c", "d", "e"], preference_list=["a", "b", "c"])
    effects = sloppy.start(0.0)
    assert effects[:3] == [SendFetch("a", "k"), SendFetch("c", "k"), SendFetch("d", "k", "b")]
    c3 = get(["a", "c", "d"], policy, preference_list=["a", "b", "c"], r=3)
    assert kinds(c3.start(0.0)) == ["Complete"]


def test_get_repairs_fallbacks_with_their_hint() -> None:
    c = get(["a", "c", "d"], preference_list=["a", "b", "c"], r=3)
    c.start(0.0)
    c.receive("a", Fetched(dots("x")), 0.1)
    c.receive("c", Fetched(dots("x")), 0.1)
    effects = c.receive("d", Fetched(None), 0.1)
    assert effects[-1] == SendRepair("d", "k", dots("x"), hint="b")


# -- misuse ----------------------------------------------------------------------------------


def started_put() -> PutCoordinator[DotSet]:
    c = put(["a", "b", "c", "d"], QuorumPolicy(3, 2, 3))
    c.start(1.0)
    c.receive("a", Stored(), 1.1)
    c.on_timer(1.0 + RT)  # b and c time out; d replaces b
    return c


def started_get() -> GetCoordinator[DotSet]:
    c = get(["a", "b", "c", "d", "e"])
    c.start(1.0)
    c.receive("a", Fetched(dots("x")), 1.1)
    return c


# (name, sender, time): replies a coordinator must refuse, given `started_put`/`started_get`.
REMOTE_MISUSE = [
    ("never asked", "zz", 2.0),
    ("a candidate not asked yet", "e", 2.0),  # put: e is not a candidate; get: asks only 3
    ("duplicate", "a", 2.0),
]


@pytest.mark.parametrize("make", [started_put, started_get], ids=["put", "get"])
@pytest.mark.parametrize(
    ("name", "sender", "now"), REMOTE_MISUSE, ids=[m[0] for m in REMOTE_MISUSE]
)
@pytest.mark.parametrize("refusal", [False, True], ids=["answer", "refusal"])
def test_remote_misuse_is_refused_and_changes_nothing(
    make: Any, name: str, sender: str, now: float, refusal: bool
) -> None:
    c = make()
    reply: object = Refused() if refusal else Stored()
    if isinstance(c, GetCoordinator) and not refusal:
        reply = Fetched(dots("y"))
    before = snapshot(c)
    with pytest.raises(
        RemoteProtocolError, match="replied twice" if name == "duplicate" else "never asked"
    ):
        c.receive(sender, reply, now)
    assert snapshot(c) == before
    c._check_invariants()


def test_wrong_reply_kinds() -> None:
    p = started_put()
    before = snapshot(p)
    with pytest.raises(RemoteProtocolError, match="answered a store request"):
        p.receive("d", Fetched(None), 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reply must be Stored or Refused"):
        p.receive("d", "ok", 2.0)  # type: ignore[arg-type]
    assert snapshot(p) == before
    g = started_get()
    before = snapshot(g)
    with pytest.raises(RemoteProtocolError, match="answered a fetch request"):
        g.receive("b", Stored(), 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reply must be Fetched or Refused"):
        g.receive("b", None, 2.0)  # type: ignore[arg-type]
    assert snapshot(g) == before


LOCAL_MISUSE: list[tuple[str, Any, str]] = [
    ("start twice", lambda c: c.start(5.0), "already started"),
    ("time backwards", lambda c: c.on_timer(0.5), "time went backwards"),
    ("reply time backwards", lambda c: c.receive("b", Refused(), 0.5), "time went backwards"),
]


@pytest.mark.parametrize("make", [started_put, started_get], ids=["put", "get"])
@pytest.mark.parametrize(("name", "act", "match"), LOCAL_MISUSE, ids=[m[0] for m in LOCAL_MISUSE])
def test_local_misuse_is_refused_and_changes_nothing(
    make: Any, name: str, act: Any, match: str
) -> None:
    c = make()
    before = snapshot(c)
    with pytest.raises(LocalProtocolError, match=match):
        act(c)
    assert snapshot(c) == before


@pytest.mark.parametrize("make", [started_put, started_get], ids=["put", "get"])
def test_bad_time_and_sender_types(make: Any) -> None:
    c = make()
    before = snapshot(c)
    with pytest.raises(TypeError, match="now must be a number"):
        c.on_timer("2")
    with pytest.raises(ValueError, match="now must be a finite number"):
        c.on_timer(float("nan"))
    with pytest.raises(TypeError, match="sender must be a str"):
        c.receive(b"b", Refused(), 2.0)
    assert snapshot(c) == before


@pytest.mark.parametrize("kind", ["put", "get"])
def test_input_before_start_and_after_close(kind: str) -> None:
    c: Any = (
        put(["a"], QuorumPolicy(1, 1, 1)) if kind == "put" else get(["a"], QuorumPolicy(1, 1, 1))
    )
    reply: object = Stored() if kind == "put" else Fetched(None)
    acts: list[Any] = [lambda: c.receive("a", reply, 0.0), lambda: c.on_timer(0.0)]
    for act in acts:
        with pytest.raises(LocalProtocolError, match="has not been started"):
            act()
    assert c.state is CoordinatorState.IDLE
    assert c.deadline() is None
    c.start(0.0)
    c.receive("a", reply, 0.1)
    assert c.state is CLOSED
    result = c.result
    acts = [lambda: c.receive("a", reply, 0.2), lambda: c.on_timer(0.2), lambda: c.start(0.2)]
    for act in acts:
        with pytest.raises(LocalProtocolError, match="is closed"):
            act()
    assert c.result is result, "never two outcomes"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": "abc"}, TypeError, "candidates must be a sequence of node ids"),
        ({"candidates": ["a", 1]}, TypeError, r"candidates\[1\] must be a str"),
        ({"candidates": ["a", ""]}, ValueError, r"candidates\[1\] must be 1..255"),
        ({"candidates": ["a", "b", "a"]}, ValueError, "repeated: a"),
        ({"preference_list": "ab"}, TypeError, "preference_list must be a sequence"),
        ({"preference_list": ["a", "a"]}, ValueError, "distinct"),
        ({"preference_list": ["a", "b", "c", "d"]}, ValueError, "at most n=3"),
        ({"preference_list": ["b", "a", "c"]}, ValueError, "must start with the live nodes"),
        ({"preference_list": ["a", "e"]}, ValueError, "whole cluster"),
        ({"timeout": 0}, ValueError, "timeout must be a finite number > 0"),
        ({"timeout": "1"}, TypeError, "timeout must be a number"),
        ({"key": 5}, TypeError, "key must be str or bytes"),
        ({"policy": (3, 2, 2)}, TypeError, "policy must be a QuorumPolicy"),
    ],
)
@pytest.mark.parametrize("kind", ["put", "get"])
def test_constructor_arguments_are_checked(
    kind: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {
        "policy": QuorumPolicy(),
        "key": "k",
        "candidates": ["a", "b", "c", "d"],
        **kwargs,
    }
    policy, key, candidates = args.pop("policy"), args.pop("key"), args.pop("candidates")
    build: Any = (
        (lambda: PutCoordinator(policy, key, candidates, STATE, **args))
        if kind == "put"
        else (lambda: GetCoordinator(policy, key, candidates, **args))
    )
    with pytest.raises(error, match=match):
        build()


def test_put_specific_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="state must be a ReplicaState"):
        PutCoordinator(QuorumPolicy(), "k", ["a"], {"x": 1})  # type: ignore[type-var]
    with pytest.raises(ValueError, match="replica_timeout must be at most timeout"):
        put(["a"], timeout=1.0, replica_timeout=2.0)
    with pytest.raises(ValueError, match="w must be in 1..n=3"):
        put(["a"], w=4)
    c = put(["a", "b"], timeout=2.0, replica_timeout=None)
    c.start(0.0)
    assert c.deadline() == 0.5, "the replica timeout defaults to a quarter of the timeout"


# -- the model -------------------------------------------------------------------------------


class Model:
    """What a driver can check from the outside: asks, replies, times and the outcome.

    It tracks every node asked (when, with which hint), the fate of each (ack/answer, refusal,
    timeout, late) and the outcome, and checks each input's effects against the rules.
    """

    def __init__(
        self,
        kind: str,
        policy: QuorumPolicy,
        candidates: Sequence[str],
        primaries: Sequence[str],
    ) -> None:
        self.kind = kind
        self.policy = policy
        self.candidates = list(candidates)
        self.primaries = list(primaries)
        self.sent: dict[str, float] = {}  # node -> time asked
        self.hint: dict[str, str | None] = {}
        self.fate: dict[str, str] = {}  # node -> ok | refused | timeout
        self.state: dict[str, DotSet | None] = {}
        self.late: set[str] = set()
        self.outcome: Complete[Any] | None = None
        self.closed = False
        self.expires = 0.0
        self.repairs: list[SendRepair[DotSet]] | None = None

    # -- rules -----------------------------------------------------------------------------

    @property
    def required(self) -> int:
        return self.policy.w if self.kind == "put" else self.policy.r

    @property
    def required_primaries(self) -> int:
        return self.policy.pw if self.kind == "put" else self.policy.pr

    def counts_node(self, node: str) -> bool:
        if node in self.primaries:
            return True
        return self.policy.sloppy or (self.kind == "put" and self.policy.write_any)

    def counted(self) -> list[str]:
        out = []
        for node, fate in self.fate.items():
            if fate != "ok" or not self.counts_node(node):
                continue
            if self.kind == "get" and self.state[node] is None and not self.policy.notfound_ok:
                continue
            out.append(node)
        return out

    def possible(self) -> int:
        pending = [n for n in self.sent if n not in self.fate and self.counts_node(n)]
        return len(self.counted()) + len(pending)

    def counted_primaries(self) -> list[str]:
        return [node for node in self.counted() if node in self.primaries]

    def possible_primaries(self) -> int:
        pending = [n for n in self.sent if n not in self.fate and n in self.primaries]
        return len(self.counted_primaries()) + len(pending)

    def reached(self) -> bool:
        return (
            len(self.counted()) >= self.required
            and len(self.counted_primaries()) >= self.required_primaries
        )

    def impossible(self) -> bool:
        return (
            self.possible() < self.required or self.possible_primaries() < self.required_primaries
        )

    def deadline(self) -> float | None:
        """What `deadline()` must say: the earliest pending replica timeout, or the deadline."""
        if self.closed:
            return None
        pending = [self.replica_deadline(n) for n in self.sent if n not in self.fate]
        return min([self.expires, *pending])

    def replica_deadline(self, node: str) -> float:
        return self.sent[node] + (RT if self.kind == "put" else T)

    def primary_of(self, node: str) -> str:
        hint = self.hint[node]
        return node if hint is None else hint

    # -- inputs ----------------------------------------------------------------------------

    def start(self, t: float, effects: Sequence[object]) -> None:
        self.expires = t + T
        limit = self.policy.n
        plan = self.candidates[:limit]
        if self.kind == "get" and not self.policy.sloppy:
            plan = [node for node in plan if node in self.primaries]
        missing = [p for p in self.primaries if p not in self.candidates]
        could = sum(1 for node in plan if self.counts_node(node))
        primaries = sum(1 for node in plan if node in self.primaries)
        if could < self.required or primaries < self.required_primaries:
            assert kinds(effects) == ["Complete"], effects
            self.conclude(effects, t)
            self.closed = True
            return
        sends = [e for e in effects if isinstance(e, SendStore | SendFetch)]
        assert [e.target for e in sends] == plan
        for e in sends:
            expected_hint = None if e.target in self.primaries else missing.pop(0)
            assert e.hint == expected_hint
            assert e.key == "k"
            if isinstance(e, SendStore):
                assert e.state == STATE
            self.sent[e.target] = t
            self.hint[e.target] = e.hint
        self.after(t, effects, was_possible=True, failures=[], initial=True)

    def timers(self, t: float) -> list[str]:
        """Apply the replica timeouts due by `t`; return the failed nodes, in firing order."""
        due = [
            node
            for node in self.sent
            if node not in self.fate
            and self.replica_deadline(node) <= t
            and self.replica_deadline(node) < self.expires
        ]
        due.sort(key=lambda node: (self.replica_deadline(node), list(self.sent).index(node)))
        for node in due:
            self.fate[node] = "timeout"
        return due

    def reply(self, node: str, reply: object, t: float, effects: Sequence[object]) -> None:
        # The deadline may decide, whatever was possible before.
        before = not self.impossible() or (self.outcome is None and self.expires <= t)
        failures = self.timers(t)
        if self.expires <= t:
            pass  # dropped
        elif self.fate.get(node) == "timeout":
            self.late.add(node)
        elif isinstance(reply, Refused):
            self.fate[node] = "refused"
            failures.append(node)
        else:
            self.fate[node] = "ok"
            if isinstance(reply, Fetched):
                self.state[node] = reply.state
        self.after(t, effects, before, failures)

    def timer(self, t: float, effects: Sequence[object]) -> None:
        before = not self.impossible() or self.expires <= t
        self.after(t, effects, before, self.timers(t))

    def after(
        self,
        t: float,
        effects: Sequence[object],
        was_possible: bool,
        failures: list[str],
        *,
        initial: bool = False,
    ) -> None:
        """Check one input's effects against the rules and update the model."""
        # Replacements: one per failure while fallbacks remain, in order, naming the primary.
        sends = [e for e in effects if isinstance(e, SendStore)]
        if initial:
            pass
        elif self.kind == "put" and t < self.expires:
            unused = self.candidates[len(self.sent) :]
            expected = list(zip(unused, failures, strict=False))
            assert [(e.target, e.hint) for e in sends] == [
                (node, self.primary_of(failed)) for node, failed in expected
            ]
            for e in sends:
                self.sent[e.target] = t
                self.hint[e.target] = e.hint
        elif self.kind == "put":
            assert sends == []
        if self.kind == "get" and not initial:
            assert not any(isinstance(e, SendFetch) for e in effects)

        # The outcome: exactly once, exactly when decided.
        done = completes(effects)
        if self.outcome is None:
            if self.reached():
                assert len(done) == 1
                assert done[0].ok
                assert done[0].result == self.success()
            elif self.impossible() or self.expires <= t:
                assert len(done) == 1, (effects, self.counted(), self.required)
                # ... exactly when it became impossible: it was still possible before.
                assert was_possible
                self.conclude(effects, t)
            else:
                assert done == []
            if done:
                self.outcome = done[0]
        else:
            assert done == []

        # Closing: when every node asked has settled, or at the deadline.
        pending = [n for n in self.sent if n not in self.fate]
        should_close = self.expires <= t or (self.outcome is not None and not pending)
        repairs = [e for e in effects if isinstance(e, SendRepair)]
        if should_close:
            self.closed = True
            if self.expires <= t:
                for node in pending:
                    self.fate[node] = "timeout"
            if self.kind == "get":
                assert repairs == self.expected_repairs()
                self.repairs = repairs
        else:
            assert repairs == []

    def conclude(self, effects: Sequence[object], t: float) -> None:
        done = completes(effects)
        assert len(done) == 1
        error = done[0].result
        assert isinstance(error, Unavailable)
        assert error.required == self.required
        assert error.answered == tuple(sorted(self.counted()))
        assert error.primaries == tuple(sorted(self.counted_primaries()))
        assert error.required_primaries == self.required_primaries
        self.outcome = done[0]

    def merged(self) -> DotSet | None:
        found = [s for n, s in self.state.items() if self.fate.get(n) == "ok" and s is not None]
        if not found:
            return None
        return DotSet(frozenset().union(*(s.dots for s in found)))

    def success(self) -> PutResult | GetResult[DotSet]:
        if self.kind == "put":
            hinted = sorted(
                (n, h) for n, h in self.hint.items() if h is not None and self.fate.get(n) == "ok"
            )
            return PutResult(tuple(sorted(self.counted())), tuple((a, b) for a, b in hinted))
        not_found = sorted(n for n, s in self.state.items() if self.fate[n] == "ok" and s is None)
        return GetResult(self.merged(), tuple(sorted(self.counted())), tuple(not_found))

    def expected_repairs(self) -> list[SendRepair[DotSet]]:
        merged = self.merged()
        if merged is None:
            return []
        return [
            SendRepair(n, "k", merged, self.hint[n])
            for n in self.sent
            if self.fate.get(n) == "ok" and not self.descends(self.state[n], merged)
        ]

    @staticmethod
    def descends(state: DotSet | None, merged: DotSet) -> bool:
        return state is not None and state.dots >= merged.dots

    def replyable(self) -> list[str]:
        """Nodes that may still reply: asked, and not yet replied (late replies included)."""
        return [
            n for n in self.sent if self.fate.get(n) in (None, "timeout") and n not in self.late
        ]

    def replied(self) -> list[str]:
        return [n for n in self.sent if self.fate.get(n) in ("ok", "refused") or n in self.late]


# Setups: a walk of up to 7 nodes, some believed down, every policy shape.


@st.composite
def setups(draw: st.DrawFn, kind: str) -> tuple[QuorumPolicy, list[str], list[str]]:
    n = draw(st.integers(1, 4))
    walk = list(NODES[: draw(st.integers(0, 7))])
    down = draw(st.sets(st.sampled_from(walk))) if walk else set()
    candidates = [node for node in walk if node not in down]
    preference_list = walk[:n]
    quorum = draw(st.integers(1, n))
    primaries = draw(st.integers(0, quorum))  # pw or pr
    sloppy = draw(st.booleans())
    if kind == "put":
        write_any = quorum == 1 and primaries == 0 and draw(st.booleans())
        policy = QuorumPolicy(n, 1, quorum, sloppy=sloppy, write_any=write_any, pw=primaries)
    else:
        notfound_ok = draw(st.booleans())
        policy = QuorumPolicy(n, quorum, 1, sloppy=sloppy, notfound_ok=notfound_ok, pr=primaries)
    return policy, candidates, preference_list


POOL = [dots(), dots("x"), dots("y"), dots("x", "y"), dots("x", "y", "z")]


def make(kind: str, policy: QuorumPolicy, candidates: list[str], primaries: list[str]) -> Any:
    if kind == "put":
        return put(candidates, policy, preference_list=primaries)
    return get(candidates, policy, preference_list=primaries)


def draw_reply(data: st.DataObject, kind: str) -> object:
    if data.draw(st.integers(0, 3)) == 0:
        return Refused()
    if kind == "put":
        return Stored()
    return Fetched(data.draw(st.sampled_from([None, *POOL])))


STEPS = [0.0, 0.0, 0.01, 0.1, RT / 2, RT, 0.3, 0.6, 1.2]


@pytest.mark.parametrize("kind", ["put", "get"])
@given(data=st.data())
def test_random_schedules_against_the_model(kind: str, data: st.DataObject) -> None:
    """Arbitrary arrival order, refusals, timeouts (timers fired late too), duplicates."""
    policy, candidates, primaries = data.draw(setups(kind))
    c = make(kind, policy, candidates, primaries)
    model = Model(kind, policy, candidates, primaries)
    now = data.draw(st.sampled_from([0.0, 7.5]))
    model.start(now, c.start(now))
    c._check_invariants()
    for _ in range(40):
        if c.state is CLOSED:
            break
        now += data.draw(st.sampled_from(STEPS))
        action = data.draw(st.sampled_from(["reply", "reply", "reply", "timer", "dup", "stray"]))
        if action == "reply" and model.replyable():
            node = data.draw(st.sampled_from(model.replyable()))
            reply = draw_reply(data, kind)
            model.reply(node, reply, now, c.receive(node, reply, now))
        elif action == "dup" and model.replied():
            node = data.draw(st.sampled_from(model.replied()))
            before = snapshot(c)
            with pytest.raises(RemoteProtocolError):
                c.receive(node, draw_reply(data, kind), now)
            assert snapshot(c) == before
        elif action == "stray":
            stray = data.draw(st.sampled_from([n for n in NODES if n not in model.sent]))
            with pytest.raises(RemoteProtocolError, match="never asked"):
                c.receive(stray, draw_reply(data, kind), now)
        else:
            model.timer(now, c.on_timer(now))
        c._check_invariants()
        assert c.deadline() == model.deadline()
        assert c.state is CLOSED or not model.closed
    if c.state is not CLOSED:
        deadline = c.deadline()
        assert deadline is not None
        assert deadline <= model.expires
        model.timer(model.expires, c.on_timer(model.expires))
    assert c.state is CLOSED
    assert model.closed
    assert model.outcome is not None
    assert c.result is model.outcome.result, "the result never changes after Complete"
    c._check_invariants()


@pytest.mark.parametrize("kind", ["put", "get"])
@given(data=st.data())
def test_network_schedules_success_iff_enough_distinct_acks_in_time(
    kind: str, data: st.DataObject
) -> None:
    """A network delivers each reply (or none) after a random delay, some twice."""
    policy, candidates, primaries = data.draw(setups(kind))
    c = make(kind, policy, candidates, primaries)
    model = Model(kind, policy, candidates, primaries)
    queue: list[tuple[float, int, str, object]] = []
    seq = itertools.count()

    def schedule(effects: Sequence[object], t: float) -> None:
        for e in effects:
            if isinstance(e, SendStore | SendFetch):
                delay = data.draw(st.sampled_from([None, 0.01, 0.1, 0.2, RT, 0.5, 0.9, 1.5]))
                if delay is not None:
                    reply = draw_reply(data, kind)
                    queue.append((t + delay, next(seq), e.target, reply))
                    if data.draw(st.integers(0, 5)) == 0:  # delivered twice
                        queue.append((t + delay + 0.05, next(seq), e.target, reply))

    effects = c.start(0.0)
    model.start(0.0, effects)
    schedule(effects, 0.0)
    while c.state is not CLOSED:
        queue.sort()
        deadline = c.deadline()
        assert deadline is not None
        if queue and queue[0][0] < deadline:
            t, _, node, reply = queue.pop(0)
            if node in model.replied():
                with pytest.raises(RemoteProtocolError, match="replied twice"):
                    c.receive(node, reply, t)
                continue
            effects = c.receive(node, reply, t)
            model.reply(node, reply, t, effects)
        else:
            t = deadline
            effects = c.on_timer(t)
            model.timer(t, effects)
        schedule(effects, t)
        c._check_invariants()
        assert c.deadline() == model.deadline()
    assert model.closed
    assert model.outcome is not None
    # The headline property, restated plainly: success iff enough distinct counted replies came
    # in time, enough of them from primaries, and a success reports exactly the replies that made
    # the quorum: the last one met `w` (`r`) or `pw` (`pr`) exactly.
    assert model.outcome.ok == model.reached()
    if model.outcome.ok:
        result: Any = model.outcome.result
        counted = set(result.acked if kind == "put" else result.answered)
        from_primaries = len(counted & set(primaries))
        assert len(counted) >= model.required
        assert from_primaries >= model.required_primaries
        assert len(counted) == model.required or from_primaries == model.required_primaries


# -- a stateful test: the coordinators beside the model ---------------------------------------


class CoordinatorMachine(RuleBasedStateMachine):
    """Drive a coordinator with arbitrary inputs; the model checks every step."""

    def __init__(self) -> None:
        super().__init__()
        self.c: Any = None
        self.model: Model | None = None
        self.now = 0.0
        self.kind = "put"

    @initialize(data=st.data())
    def setup(self, data: st.DataObject) -> None:
        self.kind = data.draw(st.sampled_from(["put", "get"]))
        policy, candidates, primaries = data.draw(setups(self.kind))
        self.c = make(self.kind, policy, candidates, primaries)
        self.model = Model(self.kind, policy, candidates, primaries)
        self.model.start(0.0, self.c.start(0.0))

    def open(self) -> bool:
        return self.c is not None and self.c.state is not CLOSED

    @precondition(lambda self: self.open() and bool(self.model and self.model.replyable()))
    @rule(data=st.data(), dt=st.sampled_from(STEPS))
    def reply(self, data: st.DataObject, dt: float) -> None:
        assert self.model is not None
        self.now += dt
        node = data.draw(st.sampled_from(self.model.replyable()))
        reply = draw_reply(data, self.kind)
        self.model.reply(node, reply, self.now, self.c.receive(node, reply, self.now))

    @precondition(lambda self: self.open())
    @rule(dt=st.sampled_from(STEPS))
    def timer(self, dt: float) -> None:
        assert self.model is not None
        self.now += dt
        self.model.timer(self.now, self.c.on_timer(self.now))

    @precondition(lambda self: self.open() and bool(self.model and self.model.replied()))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        assert self.model is not None
        node = data.draw(st.sampled_from(self.model.replied()))
        before = snapshot(self.c)
        with pytest.raises(RemoteProtocolError, match="replied twice"):
            self.c.receive(node, draw_reply(data, self.kind), self.now)
        assert snapshot(self.c) == before

    @precondition(lambda self: self.c is not None and self.c.state is CLOSED)
    @rule()
    def input_after_close(self) -> None:
        before = snapshot(self.c)
        with pytest.raises(LocalProtocolError, match="closed"):
            self.c.on_timer(self.now + 1)
        assert snapshot(self.c) == before

    @invariant()
    def consistent(self) -> None:
        if self.c is None or self.model is None:
            return
        self.c._check_invariants()
        assert (self.c.state is CLOSED) == self.model.closed
        if self.model.outcome is not None:
            assert self.c.result is self.model.outcome.result
        else:
            assert self.c.result is None


TestCoordinatorMachine = CoordinatorMachine.TestCase
TestCoordinatorMachine.settings = settings(max_examples=100, stateful_step_count=30)


# -- the transition table is the truth --------------------------------------------------------


def recorded_moves(kind: str, seed: int) -> set[tuple[CoordinatorState, CoordinatorEvent]]:
    """Run random schedules with a recording subclass; return the (state, event) pairs used."""
    import random

    seen: set[tuple[CoordinatorState, CoordinatorEvent]] = set()
    base = PutCoordinator if kind == "put" else GetCoordinator

    class Recording(base):  # type: ignore[valid-type, misc]
        __slots__ = ()

        def _move(self, event: CoordinatorEvent) -> None:
            seen.add((self._state, event))
            super()._move(event)

    rng = random.Random(seed)
    for _ in range(300):
        n = rng.randint(1, 3)
        walk = list(NODES[: rng.randint(0, 5)])
        policy = QuorumPolicy(n, rng.randint(1, n), rng.randint(1, n), sloppy=rng.random() < 0.7)
        args: tuple[Any, ...] = (policy, "k", walk, STATE) if kind == "put" else (policy, "k", walk)
        c = Recording(*args, timeout=T, **({"replica_timeout": RT} if kind == "put" else {}))
        now = 0.0
        c.start(now)
        while c.state is not CLOSED:
            now += rng.choice([0.0, 0.05, 0.2, 0.3])
            asked = [n for n, _ in c.asked if n not in c.late and n not in c.refused]
            asked = [n for n in asked if n not in (c.acked if kind == "put" else c.answered)]
            if asked and rng.random() < 0.7:
                node = rng.choice(asked)
                reply: object = (
                    Refused()
                    if rng.random() < 0.3
                    else (Stored() if kind == "put" else Fetched(rng.choice([None, *POOL])))
                )
                c.receive(node, reply, now)
            else:
                c.on_timer(now)
    return seen


@pytest.mark.parametrize("coordinator", [PutCoordinator, GetCoordinator], ids=["put", "get"])
def test_every_transition_row_is_reachable_and_only_rows_are_used(coordinator: Any) -> None:
    kind = "put" if coordinator is PutCoordinator else "get"
    rows = {(t.source, t.event) for t in coordinator.TRANSITIONS}
    used = recorded_moves(kind, seed=5)
    assert used <= rows
    assert used == rows, f"rows never used: {rows - used}"


# -- the replica-state protocol ---------------------------------------------------------------


def test_dotset_refuses_bad_dots() -> None:
    with pytest.raises(TypeError, match="dots must be a frozenset"):
        DotSet({("a", 1)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dot counter"):
        DotSet.of(("a", -1))
    with pytest.raises(TypeError, match="pairs"):
        DotSet(frozenset({("a",)}))  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="repeated"):
        DotSet.from_dict({"type": "DotSet", "v": 1, "dots": [["a", 1], ["a", 1]]})


@given(st.data())
def test_quorum_policies_strategy(data: st.DataObject) -> None:
    from dynamo_core.strategies import quorum_policies

    assert data.draw(quorum_policies(strict=True)).is_strict
    assert not data.draw(quorum_policies(strict=False)).is_strict
    policy = data.draw(st.from_type(QuorumPolicy))
    assert isinstance(policy, QuorumPolicy)
    assert QuorumPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    "module",
    ["dynamo_core.quorum.policy", "dynamo_core.quorum.coordinators", "dynamo_core.testing.quorum"],
)
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0
    assert failures == 0


# -- read repair, on its own ---------------------------------------------------------------------


@given(
    answers=st.lists(
        st.one_of(
            st.sampled_from(["refuse", "silent", "late"]),
            st.none(),
            st.frozensets(st.sampled_from("xyz"), max_size=3),
        ),
        min_size=1,
        max_size=5,
    ),
    r=st.integers(1, 5),
    notfound_ok=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_read_repair_targets_exactly_the_stale_replicas(
    answers: list[object], r: int, notfound_ok: bool, order: Any
) -> None:
    n = len(answers)
    nodes = list(NODES[:n])
    policy = QuorumPolicy(n, min(r, n), 1, notfound_ok=notfound_ok)
    c = get(nodes, policy)
    c.start(0.0)
    replies = list(zip(nodes, answers, strict=True))
    order.shuffle(replies)
    states: dict[str, DotSet | None] = {}
    effects: list[object] = []
    for i, (node, answer) in enumerate(replies):
        if c.state is CLOSED or answer in ("silent", "late"):
            continue
        if answer == "refuse":
            effects += c.receive(node, Refused(), 0.01 * i)
        else:
            state = None if answer is None else dots(*sorted(cast("frozenset[str]", answer)))
            states[node] = state
            effects += c.receive(node, Fetched(state), 0.01 * i)
    if c.state is not CLOSED:
        effects += c.on_timer(T)  # silent replicas time out
    assert c.state is CLOSED
    found = [s for s in states.values() if s is not None]
    repairs = [e for e in effects if isinstance(e, SendRepair)]
    if not found:
        assert repairs == []
        return
    merged = DotSet(frozenset().union(*(s.dots for s in found)))
    stale = [node for node in nodes if node in states and not Model.descends(states[node], merged)]
    assert [e.target for e in repairs] == stale
    assert all(e.state == merged for e in repairs)
    assert c.repaired == tuple(stale)


def test_a_read_answer_whose_dot_collides_counts_as_refused() -> None:
    base = DVVSet[bytes]().update(b"x", "svc")
    w1 = base.update(b"one", "svc", base.context)  # two writers minted ('svc', 2)
    w2 = base.update(b"two", "svc", base.context)
    get: GetCoordinator[DVVSet[bytes]] = GetCoordinator(QuorumPolicy(3, 2, 2), "k", ["a", "b", "c"])
    get.start(0.0)
    get.receive("a", Fetched(w1), 0.0)
    assert get.receive("b", Fetched(w2), 0.0) == []  # not merged, not counted
    assert get.refused == ("b",) and get.result is None
    effects = get.receive("c", Fetched(w1), 0.0)
    result = completes(effects)[0].unwrap()
    assert result.state == w1 and set(get.answered) == {"a", "c"}


# -- the trusted constructors (a node's own, already checked values) ----------------------------


@given(
    st.sampled_from([("a", "b", "c", "d"), ("a", "c", "d"), ("b", "c", "d")]),  # a node down
    st.lists(st.sampled_from(["stored", "refused", "silent"]), min_size=4, max_size=4),
)
def test_a_trusted_put_coordinator_runs_as_a_checked_one(
    candidates: tuple[str, ...], answers: list[str]
) -> None:
    policy, state = QuorumPolicy(3, 2, 2), DVVSet[bytes]().update(b"v", "a#1")
    checked: PutCoordinator[DVVSet[bytes]] = PutCoordinator(
        policy, b"k", candidates, state, preference_list=("a", "b", "c"),
        timeout=4.0, replica_timeout=1.0,
    )  # fmt: skip
    trusted: PutCoordinator[DVVSet[bytes]] = PutCoordinator._trusted(
        policy, b"k", candidates, ("a", "b", "c"), state, 4.0, 1.0
    )
    runs = []
    for c in (checked, trusted):
        trace: list[Any] = [c.start(0.0)]
        for i, answer in enumerate(answers):
            asked = [node for node, _ in c.asked]
            if i < len(asked) and answer != "silent" and c.deadline() is not None:
                reply = Stored() if answer == "stored" else Refused("full")
                trace.append(c.receive(asked[i], reply, 0.5 + i))
        if c.deadline() is not None:
            trace.append(c.on_timer(5.0))
        runs.append(repr((trace, c.state, c.result, c.timed_out, c.asked)))  # Unavailable: no ==
    assert runs[0] == runs[1]


@given(st.lists(st.sampled_from(["found", "missing", "refused"]), min_size=3, max_size=3))
def test_a_trusted_get_coordinator_runs_as_a_checked_one(answers: list[str]) -> None:
    policy, state = QuorumPolicy(3, 2, 2), DVVSet[bytes]().update(b"v", "a#1")
    checked: GetCoordinator[DVVSet[bytes]] = GetCoordinator(
        policy, b"k", ("a", "b", "c", "d"), preference_list=("a", "b", "c"), timeout=4.0
    )
    trusted: GetCoordinator[DVVSet[bytes]] = GetCoordinator._trusted(
        policy, b"k", ("a", "b", "c", "d"), ("a", "b", "c"), 4.0
    )
    runs = []
    for c in (checked, trusted):
        trace: list[Any] = [c.start(0.0)]
        for node, answer in zip("abc", answers, strict=True):
            reply = (
                Refused("busy")
                if answer == "refused"
                else Fetched(state if answer == "found" else None)
            )
            if c.deadline() is not None:
                trace.append(c.receive(node, reply, 0.5))
        runs.append(repr((trace, c.state, c.result, c.repaired)))
    assert runs[0] == runs[1]
