"""The quorum harness, and the guarantees of whole put/get histories run through it.

The headline: with ``r + w > n`` and no fallback counted, every read that starts after a write
succeeded returns a state that descends the write — whatever the delays, drops, refusals and
silent nodes. Under sloppy quorum with fallbacks, it does not (shown by a scripted run).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_core import DVVSet, ReplicaState, Unavailable
from dynamo_core.quorum import ConsistencyLevel, GetResult, PutResult, QuorumPolicy
from dynamo_core.testing import Behaviour, DotSet, QuorumHarness

NODES = ("a", "b", "c", "d", "e", "f", "g")


def ok(result: object) -> bool:
    return not isinstance(result, Unavailable)


# -- the harness itself ------------------------------------------------------------------------


def run_history(seed: int) -> tuple[list[str], list[object]]:
    harness: QuorumHarness[DotSet] = QuorumHarness(
        NODES[:5], seed=seed, drop_rate=0.1, refuse_rate=0.1, max_delay=0.3
    )
    results: list[object] = []
    for i in range(10):
        results.append(harness.put(f"k{i % 3}", DotSet.of(("w", i))))
        results.append(harness.get(f"k{(i + 1) % 3}"))
        harness._check_invariants()
    harness.run()
    harness._check_invariants()
    return harness.trace, results


def test_same_seed_same_run_byte_for_byte() -> None:
    trace, results = run_history(7)
    again, results_again = run_history(7)
    assert trace == again
    assert repr(results) == repr(results_again)
    other, _ = run_history(8)
    assert other != trace


def test_put_and_get_through_the_harness() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(["a", "b", "c", "d"], seed=3)
    assert harness.preference_list("k") == ("a", "b", "c")
    result = harness.put("k", DotSet.of(("w", 1)))
    assert isinstance(result, PutResult)
    assert len(result.acked) == 2
    harness.run()
    for node in ("a", "b", "c"):
        assert harness.state_of(node, "k") == DotSet.of(("w", 1))
    assert harness.state_of("d", "k") is None
    read = harness.get("k")
    assert isinstance(read, GetResult)
    assert read.state == DotSet.of(("w", 1))


def test_silent_primary_is_replaced_by_a_fallback_holding_a_hint() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c", "d"], policy=QuorumPolicy(3, 2, 3), seed=1
    )
    harness.script("b", silent=True)
    result = harness.put("cart", DotSet.of(("client", 1)))
    assert isinstance(result, PutResult)
    assert result.hinted == (("d", "b"),)
    assert harness.hints_on("d") == [("cart", "b")]
    assert harness.state_of("b", "cart") is None


def test_suspected_nodes_are_not_candidates() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(["a", "b", "c", "d", "e"])
    harness.suspect("b")
    assert harness.candidates("k") == ("a", "c", "d", "e")
    put = harness.start_put("k", DotSet.of(("w", 1)))
    assert put.asked == (("a", None), ("c", None), ("d", "b"))
    harness.trust("b")
    assert harness.candidates("k") == NODES[:5]


def test_refusing_node_and_scripted_delay() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c"], policy=QuorumPolicy(3, 2, 3), replica_timeout=0.25
    )
    harness.script("a", refuse=True)
    result = harness.put("k", DotSet.of(("w", 1)))
    assert isinstance(result, Unavailable)
    assert result.required == 3
    harness.script("a")  # back to normal
    harness.script("c", delay=0.2)  # 0.4 round trip: over the replica timeout
    result = harness.put("k", DotSet.of(("w", 2)), w=ConsistencyLevel.QUORUM)
    assert isinstance(result, PutResult)
    assert result.acked == ("a", "b")
    harness.run()
    assert harness.state_of("c", "k") == DotSet.of(("w", 1), ("w", 2)), "stored, though late"


def test_walk_callable_and_run_until() -> None:
    walks = {"x": ["c", "b", "a"], "y": ["a", "c", "b"]}
    harness: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c"], policy=QuorumPolicy(2, 1, 1), walk=lambda key: walks[str(key)]
    )
    assert harness.preference_list("x") == ("c", "b")
    harness.start_put("x", DotSet.of(("w", 1)))
    harness.run(until=0.0005)  # before the first message can arrive (min delay 1 ms)
    assert harness.now == 0.0005
    assert harness.state_of("c", "x") is None
    harness.run()
    assert harness.state_of("c", "x") == DotSet.of(("w", 1))
    assert harness.state_of("a", "x") is None


def test_load_then_read_repair_lands() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(["a", "b", "c"])
    harness.load("a", "k", DotSet.of(("w", 1)))
    harness.load("b", "k", DotSet.of(("w", 2)))
    result = harness.get("k", r=3)
    assert isinstance(result, GetResult)
    assert result.state == DotSet.of(("w", 1), ("w", 2))
    assert result.not_found == ("c",)
    harness.run()
    for node in ("a", "b", "c"):
        assert harness.state_of(node, "k") == DotSet.of(("w", 1), ("w", 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nodes": []}, ValueError, "non-empty"),
        ({"nodes": ["a", "a"]}, ValueError, "distinct"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"drop_rate": 2}, ValueError, "drop_rate must be in 0..1"),
        ({"refuse_rate": "x"}, TypeError, "refuse_rate must be a number"),
        ({"min_delay": 0.5, "max_delay": 0.1}, ValueError, "max_delay must be >= min_delay"),
        ({"policy": 3}, TypeError, "policy must be a QuorumPolicy"),
        ({"timeout": 0}, ValueError, "timeout"),
    ],
)
def test_harness_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"nodes": ["a", "b"], **kwargs}
    with pytest.raises(error, match=match):
        QuorumHarness(args.pop("nodes"), **args)


def test_harness_node_checks() -> None:
    harness: QuorumHarness[DotSet] = QuorumHarness(["a"])
    with pytest.raises(ValueError, match="not in the cluster"):
        harness.script("z", silent=True)
    with pytest.raises(ValueError, match="delay"):
        harness.script("a", delay=-1.0)
    with pytest.raises(TypeError, match="refuse"):
        Behaviour(refuse=1)  # type: ignore[arg-type]


# -- read after write ------------------------------------------------------------------------

# A history is a list of rounds: write, maybe change the network or wait, read.
ROUNDS = st.lists(
    st.tuples(st.sampled_from(["", "flip", "wait", "flip wait", "wait flip"]), st.booleans()),
    min_size=3,
    max_size=12,
)


@st.composite
def strict_policies(draw: st.DrawFn) -> QuorumPolicy:
    n = draw(st.integers(1, 4))
    r = draw(st.integers(1, n))
    w = draw(st.integers(n - r + 1, n))  # r + w > n
    return QuorumPolicy(n, r, w, sloppy=draw(st.booleans()), notfound_ok=draw(st.booleans()))


def harness_for(
    policy: QuorumPolicy, seed: int, faults: tuple[float, float]
) -> tuple[QuorumHarness[Any], list[str]]:
    # Sloppy: the walk holds exactly n nodes, so no fallback exists. Strict: two spare nodes,
    # which receive hinted copies but never count.
    nodes = list(NODES[: policy.n if policy.sloppy else policy.n + 2])
    harness: QuorumHarness[Any] = QuorumHarness(
        nodes,
        policy=policy,
        seed=seed,
        max_delay=0.35,  # some replies come after the 0.25 s replica timeout
        drop_rate=faults[0],
        refuse_rate=faults[1],
    )
    return harness, nodes


def flip(harness: QuorumHarness[Any], nodes: list[str], data: st.DataObject) -> None:
    node = data.draw(st.sampled_from(nodes))
    change = data.draw(st.sampled_from(["silent", "slow", "normal", "suspect", "trust"]))
    if change == "silent":
        harness.script(node, silent=True)
    elif change == "slow":
        harness.script(node, delay=0.3)
    elif change == "normal":
        harness.script(node)
    elif change == "suspect" and not harness.policy.sloppy:
        harness.suspect(node)
    else:
        harness.trust(node)


def between_steps(harness: QuorumHarness[Any], nodes: list[str], data: Any, steps: str) -> None:
    harness._check_invariants()
    for step in steps.split():
        if step == "wait":
            harness.run(until=harness.now + 0.3)
        else:
            flip(harness, nodes, data)


FAULTS = st.sampled_from([(0.0, 0.0), (0.1, 0.0), (0.0, 0.2), (0.2, 0.2)])


@settings(max_examples=60)
@given(
    policy=strict_policies(),
    seed=st.integers(0, 2**32),
    faults=FAULTS,
    rounds=ROUNDS,
    data=st.data(),
)
def test_strict_quorum_reads_see_every_acknowledged_write(
    policy: QuorumPolicy,
    seed: int,
    faults: tuple[float, float],
    rounds: list[tuple[str, bool]],
    data: Any,
) -> None:
    assert policy.is_strict
    harness, nodes = harness_for(policy, seed, faults)
    acknowledged: list[DotSet] = []
    for i, (between, read_twice) in enumerate(rounds):
        state = DotSet.of(("w", i))
        if ok(harness.put("k", state)):
            acknowledged.append(state)
        between_steps(harness, nodes, data, between)
        for _ in range(1 + read_twice):
            result = harness.get("k")
            if isinstance(result, GetResult):
                for write in acknowledged:
                    assert result.state is not None, "an acknowledged write was not found"
                    assert result.state.descends(write), "a read missed an acknowledged write"


@settings(max_examples=40)
@given(
    policy=strict_policies(),
    seed=st.integers(0, 2**32),
    faults=FAULTS,
    rounds=ROUNDS,
    data=st.data(),
)
def test_strict_quorum_reads_see_every_acknowledged_dvvset_write(
    policy: QuorumPolicy,
    seed: int,
    faults: tuple[float, float],
    rounds: list[tuple[str, bool]],
    data: Any,
) -> None:
    """The same with the default state: each write replaces what its client last read."""
    harness, nodes = harness_for(policy, seed, faults)
    acknowledged: list[DVVSet[bytes]] = []
    context = None
    for i, (between, read_twice) in enumerate(rounds):
        # A client writes with the context of its last read; the dot is the writer's own.
        state = DVVSet[bytes]().update(b"v%d" % i, f"w{i}", context)
        if ok(harness.put("k", state)):
            acknowledged.append(state)
        between_steps(harness, nodes, data, between)
        for _ in range(1 + read_twice):
            result = harness.get("k")
            if isinstance(result, GetResult):
                for write in acknowledged:
                    assert result.state is not None
                    assert result.state.descends(write)
                context = None if result.state is None else result.state.context


def test_sloppy_quorum_does_not_guarantee_read_after_write() -> None:
    """r + w > n, yet a read misses an acknowledged write: fallbacks took the write."""
    harness: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c", "d", "e"], policy=QuorumPolicy(3, 2, 2), seed=0
    )
    harness.suspect("a")
    harness.suspect("b")  # a and b are believed down: d and e stand in for them
    harness.script("c", delay=0.2)  # c is slow
    write = harness.put("cart", DotSet.of(("alice", 1)))
    assert isinstance(write, PutResult)
    assert write.acked == ("d", "e")
    assert write.hinted == (("d", "a"), ("e", "b"))
    harness.trust("a")
    harness.trust("b")  # a and b are back before the hints were handed off
    read = harness.get("cart")
    assert isinstance(read, GetResult)
    assert read.answered == ("a", "b")
    assert not read.found, "the read quorum {a, b} missed the write quorum {d, e}"
    # Strict quorum would have refused the write instead of acknowledging it on fallbacks.
    strict: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c", "d", "e"], policy=QuorumPolicy(3, 2, 2, sloppy=False), seed=0
    )
    strict.suspect("a")
    strict.suspect("b")
    assert isinstance(strict.put("cart", DotSet.of(("alice", 1))), Unavailable)
    # Read repair heals the sloppy run once c (which has the write) answers.
    harness.run()
    again = harness.get("cart")
    assert isinstance(again, GetResult)
    assert again.state == DotSet.of(("alice", 1))


# -- DVVSet as the replica state ---------------------------------------------------------------


def test_dvvset_is_a_replica_state_and_siblings_survive_a_quorum_read() -> None:
    assert isinstance(DVVSet(), ReplicaState)
    harness: QuorumHarness[DVVSet[bytes]] = QuorumHarness(["a", "b", "c"], seed=2)
    first = DVVSet[bytes]().update(b"book", "a")
    assert ok(harness.put("cart", first))
    read = harness.get("cart")
    assert isinstance(read, GetResult)
    assert read.state is not None
    assert read.state.values == [b"book"]
    context = read.state.context
    # Two clients write with the same context: concurrent, so both values stay as siblings.
    assert ok(harness.put("cart", DVVSet[bytes]().update(b"book+pen", "b", context)))
    assert ok(harness.put("cart", DVVSet[bytes]().update(b"book+cup", "c", context)))
    harness.run()
    read = harness.get("cart", r=3)
    assert isinstance(read, GetResult)
    assert read.state is not None
    assert sorted(read.state.values) == [b"book+cup", b"book+pen"]
    # The client merges the siblings and writes with the context it read: one value again.
    merged = DVVSet[bytes]().update(b"book+cup+pen", "a", read.state.context)
    assert ok(harness.put("cart", merged, w=3))
    final = harness.get("cart", r=3)
    assert isinstance(final, GetResult)
    assert final.state is not None
    assert final.state.values == [b"book+cup+pen"]
