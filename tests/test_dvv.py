"""DVVSet: Riak's dvvset examples, the paper's example, sibling explosion, laws and a model."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynamo_core import DecodeError, Dot, DVVSet, Ordering, VectorClock, Versioned, codec
from dynamo_core.dvv import _make, sync_all
from dynamo_core.errors import DotCollision
from dynamo_core.interfaces import ReplicaState
from dynamo_core.strategies import dvv_replicas, dvv_sets


def riak(*entries: tuple[str, int, list[str]]) -> DVVSet[str]:
    """Build a state from Riak's notation: ``(node, counter, [newest value, ...])``."""
    return _make(
        tuple(
            (node, counter, tuple((counter - i, v) for i, v in enumerate(values)))
            for node, counter, values in entries
        )
    )


def create(value: str, node: str, context: VectorClock | None = None) -> DVVSet[str]:
    return DVVSet[str]().update(value, node, context)


def test_empty_state() -> None:
    empty: DVVSet[bytes] = DVVSet()
    assert empty.values == [] and len(empty) == 0 and empty.context == VectorClock()
    assert repr(empty) == "DVVSet.from_entries([])"
    assert isinstance(empty, ReplicaState)


# -- Riak's dvvset eunit examples, translated (no anonymous values: every value has a dot) -----


def test_riak_join() -> None:
    a1 = create("v1", "a")
    b1 = a1.update("v2", "b", a1.context)
    assert DVVSet().context == VectorClock()
    assert a1.context == VectorClock({"a": 1})
    assert b1.context == VectorClock({"a": 1, "b": 1})


def test_riak_update() -> None:
    a0 = create("v1", "a")
    a1 = a0.update("v2", "a", a0.context)
    a2 = a1.update("v3", "b", a1.context)
    a3 = a1.update("v4", "b", a0.context)
    a4 = a1.update("v5", "a", a0.context)
    assert a0 == riak(("a", 1, ["v1"]))
    assert a1 == riak(("a", 2, ["v2"]))
    assert a2 == riak(("a", 2, []), ("b", 1, ["v3"]))
    assert a3 == riak(("a", 2, ["v2"]), ("b", 1, ["v4"]))
    assert a4 == riak(("a", 3, ["v5", "v2"]))


def test_riak_sync() -> None:
    x = riak(("x", 1, []))
    a = create("v1", "a")
    y = create("v2", "b")
    a1 = create("v2", "a", a.context)
    a3 = a1.update("v3", "b", a1.context)
    a4 = a1.update("v3", "c", a1.context)
    w = riak(("a", 1, []))
    z = riak(("a", 2, ["v2", "v1"]))
    assert w.sync(z) == riak(("a", 2, ["v2"])) == z.sync(w)
    assert a.sync(a1) == a1.sync(a)
    assert a4.sync(a3) == a3.sync(a4) == riak(("a", 2, []), ("b", 1, ["v3"]), ("c", 1, ["v3"]))
    assert x.sync(a) == riak(("a", 1, ["v1"]), ("x", 1, [])) == a.sync(x)
    assert a.sync(y) == riak(("a", 1, ["v1"]), ("b", 1, ["v2"])) == y.sync(a)
    lww = a4.sync(a3).lww(lambda v: v)
    assert a4.sync(a3).sync(lww) == lww


def test_riak_event() -> None:
    a = create("v1", "a")
    assert a.update("v2", "a") == riak(("a", 2, ["v2", "v1"]))
    assert a.update("v2", "b") == riak(("a", 1, ["v1"]), ("b", 1, ["v2"]))


def test_riak_lww_and_reconcile() -> None:
    x = _make((("a", 4, ((4, 5), (3, 2))), ("b", 1, ()), ("c", 1, ((1, 3),))))
    assert x.lww(lambda v: v) == _make((("a", 4, ((4, 5),)), ("b", 1, ()), ("c", 1, ())))
    assert x.values == [2, 5, 3]
    smallest = x.reconcile(min)  # returns an existing sibling: it keeps its dot
    assert smallest == _make((("a", 4, ((3, 2),)), ("b", 1, ()), ("c", 1, ())))
    total = x.reconcile(sum, node="d")  # a new value is a new write
    assert total.values == [10]
    assert total.context == VectorClock({"a": 4, "b": 1, "c": 1, "d": 1})
    assert x.sync(total) == total == total.sync(x)
    with pytest.raises(ValueError, match="node="):
        x.reconcile(sum)
    single = create("only", "a")
    assert single.reconcile(lambda values: pytest.fail("not called")) is single
    assert single.lww(len) is single


def test_riak_less() -> None:
    a = create("v1", "a")
    b = create("v2", "a", a.context)
    b2 = create("v2", "b", a.context)
    b3 = create("v2", "z", a.context)
    c = a.update("v3", "c", b.context)
    d = b2.update("v4", "d", c.context)

    def less(x: DVVSet[str], y: DVVSet[str]) -> bool:
        return x.context.compare(y.context) is Ordering.BEFORE

    assert less(a, b) and less(a, c) and less(b, c) and less(b, d) and less(b2, d)
    assert less(a, d)
    assert not less(b2, c) and not less(b, b2) and not less(b2, b)
    assert not less(a, a) and not less(c, c) and not less(d, b2) and not less(b3, d)
    assert d.descends(b) and not b.descends(d)


def test_paper_example_mary_and_peter() -> None:
    """The DVVSet paper's (and Riak's syn_update) example: a stale write keeps the right value."""
    a0 = create("v1", "a")  # Mary writes v1 without a context
    vv1 = a0.context  # Peter reads v1
    a1 = a0.update("v2", "a")  # Mary writes v2 without a context
    a2 = a1.update("v3", "a", vv1)  # Peter writes v3 with the context of v1
    assert vv1 == VectorClock({"a": 1})
    assert a1 == riak(("a", 2, ["v2", "v1"]))
    assert a2 == riak(("a", 3, ["v3", "v2"]))  # v1 replaced, v2 (unseen by Peter) kept
    assert a2.items() == [(Dot("a", 2), "v2"), (Dot("a", 3), "v3")]


# -- sibling explosion: per-server vector clocks against DVVSet --------------------------------


class PerServerClockStore:
    """Riak before DVV: one vector clock per object (server actor ids), a list of siblings."""

    def __init__(self) -> None:
        self.clock = VectorClock()
        self.siblings: list[bytes] = []

    def put(self, value: bytes, context: VectorClock, server: str) -> VectorClock:
        if context.descends(self.clock):
            self.siblings = [value]
        else:  # the clock cannot tell which siblings the client saw: keep them all
            self.siblings = [*self.siblings, value]
        self.clock = self.clock.merge(context).increment(server, now=0.0)
        return self.clock


def test_sibling_explosion_per_server_clocks_vs_dvvset() -> None:
    rounds = 100
    store = PerServerClockStore()
    state: DVVSet[bytes] = DVVSet()
    clock_ctx = {"alice": VectorClock(), "bob": VectorClock()}  # each client reads once
    dvv_ctx = {"alice": state.context, "bob": state.context}
    largest = 0
    for i in range(rounds):
        for client in ("alice", "bob"):  # each writes in turn with the context it last got
            value = f"{client}-{i}".encode()
            clock_ctx[client] = store.put(value, clock_ctx[client], "server")
            state = state.update(value, "server", dvv_ctx[client])
            dvv_ctx[client] = state.context
            largest = max(largest, len(state))
            state._check_invariants()
    assert len(store.siblings) == 2 * rounds  # grows without bound
    assert largest == 2  # never more than the two concurrent writers
    assert state.values == [f"alice-{rounds - 1}".encode(), f"bob-{rounds - 1}".encode()]


# -- errors and codec --------------------------------------------------------------------------


def test_bad_arguments_raise_and_change_nothing() -> None:
    state = create("v", "a")
    with pytest.raises(TypeError, match="str node id"):
        state.update("w", 7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1..255"):
        state.update("w", "")
    with pytest.raises(TypeError, match="VectorClock or None"):
        state.update("w", "a", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VectorClock"):
        state.discard(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DVVSet"):
        state.sync(VectorClock())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DVVSet"):
        state.descends(VectorClock())  # type: ignore[arg-type]
    full: DVVSet[str] = _make((("a", 2**63 - 1, ()),))
    with pytest.raises(OverflowError):
        full.update("x", "a")
    assert state == riak(("a", 1, ["v"]))


def test_discard_is_an_observed_remove() -> None:
    state = create("cart-1", "a")
    seen = state.context
    state = state.update("cart-2", "b")  # concurrent, unseen by the deleter
    deleted = state.discard(seen)
    assert deleted.values == ["cart-2"]
    stale_replica = create("cart-1", "a")
    assert stale_replica.sync(deleted).values == ["cart-2"]
    assert deleted.descends(stale_replica) and not stale_replica.descends(deleted)


def test_codec_round_trip_and_encoders() -> None:
    state = create("v1", "a").update("v2", "b")
    with pytest.raises(TypeError, match="encode="):
        state.to_dict()  # values are str: they need an encoder
    encoded = state.to_dict(str.encode)
    assert DVVSet.from_dict(encoded, bytes.decode) == state
    raw = DVVSet[bytes]().update(b"\x00\xff", "n1")
    assert raw.to_dict() == {"type": "dvvset", "v": 1, "entries": [["n1", 1, [[1, "AP8="]]]]}
    assert DVVSet.from_dict(codec.loads(codec.dumps(raw.to_dict()))) == raw
    with pytest.raises(DecodeError, match="could not be decoded"):
        DVVSet.from_dict(raw.to_dict(), lambda b: b.decode("utf-8"))


def _dvv(entries: object) -> dict[str, object]:
    return {"type": "dvvset", "v": 1, "entries": entries}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_dvv([["a", 0, []]]), r"entries\[0\]\.counter must be in 1"),
        (_dvv([["a", -1, []]]), r"counter must be in 1"),
        (_dvv([["a", True, []]]), r"counter must be an integer, not a boolean"),
        (_dvv([["a", 2**63, []]]), r"counter must be in 1\.\.9223372036854775807"),
        (_dvv([["a", 1.0, []]]), r"counter must be an integer"),
        (_dvv([["", 1, []]]), r"node must be 1\.\.255"),
        (_dvv([["b", 1, []], ["a", 1, []]]), "must sort after"),
        (_dvv([["a", 1, []], ["a", 2, []]]), "must sort after"),
        (_dvv([["a", 2, [[3, "eA=="]]]]), r"dots\[0\]\.dot must be in 1\.\.2"),
        (_dvv([["a", 2, [[1, "eA=="], [2, "eA=="]]]]), r"dots\[1\]\.dot must be in 1\.\.0"),
        (_dvv([["a", 2, [[0, "eA=="]]]]), r"dot must be in 1"),
        (_dvv([["a", 2, [[1, "not base64!"]]]]), "not valid base64"),
        (_dvv([["a", 2, [[1]]]]), r"must be \[dot, value\]"),
        (_dvv([["a", 2]]), r"must be \[node, counter, dots\]"),
        (_dvv([["a", 1, [], 4]]), "limit is 3"),
        (_dvv("x"), "entries must be a list"),
        ({"type": "dvvset", "v": 1}, "missing field"),
        (_dvv([]) | {"v": 9}, r"dvvset\.v must be in"),
    ],
)
def test_from_dict_rejects_bad_input(data: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        DVVSet.from_dict(data)


def test_from_dict_caps() -> None:
    state = DVVSet[bytes]().update(b"xy", "a").update(b"z", "b").update(b"w", "c")
    encoded = state.to_dict()
    assert DVVSet.from_dict(encoded) == state
    with pytest.raises(DecodeError, match="limit is 2"):
        DVVSet.from_dict(encoded, max_entries=2)
    with pytest.raises(DecodeError, match="limit is 0"):
        DVVSet.from_dict(encoded, max_values=2)
    with pytest.raises(DecodeError, match="the limit is 1"):
        DVVSet.from_dict(encoded, max_value_bytes=1)


@given(dvv_sets())
def test_codec_round_trip_property(state: DVVSet[bytes]) -> None:
    encoded = state.to_dict()
    decoded = DVVSet.from_dict(codec.loads(codec.dumps(encoded)))
    decoded._check_invariants()
    assert decoded == state and decoded.to_dict() == encoded
    assert json.loads(json.dumps(encoded)) == encoded


# -- laws ----------------------------------------------------------------------------------------


def items_of(state: DVVSet[bytes]) -> set[tuple[Dot, bytes]]:
    return set(state.items())


@given(dvv_replicas(2))
def test_sync_keeps_the_invariants_and_merges_the_contexts(
    pair: tuple[DVVSet[bytes], DVVSet[bytes]],
) -> None:
    # The ReplicaState laws themselves: tests/test_replica_state_laws.py.
    a, b = pair
    ab = a.sync(b)
    ab._check_invariants()
    assert ab.sync(b) == ab
    assert ab.context == a.context.merge(b.context)


@given(dvv_replicas(3))
def test_sync_all_is_sync_in_any_order(
    triple: tuple[DVVSet[bytes], DVVSet[bytes], DVVSet[bytes]],
) -> None:
    a, b, c = triple
    assert a.sync(b).sync(c) == sync_all([c, a, b])


@given(dvv_replicas(2))
def test_sync_never_loses_a_value_no_context_covered(
    pair: tuple[DVVSet[bytes], DVVSet[bytes]],
) -> None:
    a, b = pair
    merged = items_of(a.sync(b))
    for mine, other in ((a, b), (b, a)):
        for dot, value in mine.items():
            if dot.counter > other.context.get(dot.node) or (dot, value) in items_of(other):
                assert (dot, value) in merged
    assert merged <= items_of(a) | items_of(b)


@given(dvv_replicas(2), st.binary(max_size=3), st.sampled_from(["r0", "r1", "zz"]))
def test_update_replaces_exactly_what_the_context_covered(
    pair: tuple[DVVSet[bytes], DVVSet[bytes]], value: bytes, node: str
) -> None:
    state, reader = pair
    context = reader.context
    new = state.update(value, node, context)
    new._check_invariants()
    dot = Dot(node, max(state.context.get(node), context.get(node)) + 1)
    assert (dot, value) in new.items()
    assert new.context == state.context.merge(context).merge(VectorClock({node: dot.counter}))
    survivors = {(d, v) for d, v in state.items() if d.counter > context.get(d.node)}
    assert items_of(new) == survivors | {(dot, value)}
    assert new.descends(state)


@given(dvv_replicas(2))
def test_collapsing_siblings(pair: tuple[DVVSet[bytes], DVVSet[bytes]]) -> None:
    state = pair[0].sync(pair[1])
    winner = state.lww(lambda v: v)
    assert len(winner) == min(1, len(state))
    assert winner.context == state.context
    assert state.sync(winner) == winner  # the paper's lww law
    if state.values:
        assert winner.values == [max(state.values)]
    merged = state.reconcile(b"|".join, node="m")
    assert len(merged) == min(1, len(state))
    assert state.sync(merged) == merged


@given(st.from_type(DVVSet), st.from_type(VectorClock), st.from_type(Versioned))
def test_strategies_are_registered(
    state: DVVSet[bytes], clock: VectorClock, item: Versioned[bytes]
) -> None:
    state._check_invariants()
    clock._check_invariants()
    assert isinstance(item.clock, VectorClock)


# -- a stateful test against a model of dots and sets --------------------------------------------


def dots_of(context: VectorClock) -> set[Dot]:
    return {Dot(node, k) for node, n in context.items() for k in range(1, n + 1)}


class DVVMachine(RuleBasedStateMachine):
    """Three replicas and their clients, beside a model: what each replica has seen and killed.

    A replica's live values must be exactly the dots it has seen and no write or delete it knows
    of covered: the exact causality DVVSet promises (no false conflict, no lost write).
    """

    def __init__(self) -> None:
        super().__init__()
        self.states: list[DVVSet[bytes]] = [DVVSet() for _ in range(3)]
        self.seen: list[set[Dot]] = [set() for _ in range(3)]
        self.killed: list[set[Dot]] = [set() for _ in range(3)]
        self.values: dict[Dot, bytes] = {}
        self.contexts: list[VectorClock] = [VectorClock()]
        self.writes = 0

    def _write(self, r: int, value: bytes, context: VectorClock | None) -> None:
        covered = dots_of(context) if context is not None else set()
        actor = f"r{r}"
        state = self.states[r].update(value, actor, context)
        counter = max([0] + [d.counter for d in self.seen[r] | covered if d.node == actor]) + 1
        dot = Dot(actor, counter)
        assert dot not in self.values  # a dot is never issued twice
        self.values[dot] = value
        self.seen[r] |= covered | {dot}
        self.killed[r] |= covered
        self.states[r] = state

    @rule(
        r=st.integers(0, 2), value=st.binary(max_size=2), i=st.integers(0, 50), blind=st.booleans()
    )
    def write(self, r: int, value: bytes, i: int, blind: bool) -> None:
        self.writes += 1
        self._write(r, value, None if blind else self.contexts[i % len(self.contexts)])

    @rule(r=st.integers(0, 2))
    def read(self, r: int) -> None:
        self.contexts.append(self.states[r].context)

    @rule(r=st.integers(0, 2), s=st.integers(0, 2))
    def sync(self, r: int, s: int) -> None:
        self.states[r] = self.states[r].sync(self.states[s])
        self.seen[r] |= self.seen[s]
        self.killed[r] |= self.killed[s]

    @rule(r=st.integers(0, 2), i=st.integers(0, 50))
    def delete(self, r: int, i: int) -> None:
        context = self.contexts[i % len(self.contexts)]
        self.states[r] = self.states[r].discard(context)
        self.seen[r] |= dots_of(context)
        self.killed[r] |= dots_of(context)

    @precondition(lambda self: self.writes > 0)
    @rule(r=st.integers(0, 2))
    def resolve(self, r: int) -> None:
        state = self.states[r]
        live = set(state.items())
        if len(live) > 1:
            self._write(r, b"+".join(sorted(state.values)), state.context)

    @invariant()
    def replicas_match_the_model(self) -> None:
        for r, state in enumerate(self.states):
            state._check_invariants()
            live = self.seen[r] - self.killed[r]
            assert set(state.items()) == {(d, self.values[d]) for d in live}
            assert dots_of(state.context) == self.seen[r]


TestDVVMachine = DVVMachine.TestCase
TestDVVMachine.settings = settings(max_examples=60, stateful_step_count=30)


def test_sync_all_of_nothing() -> None:
    states: Iterable[DVVSet[bytes]] = []
    assert sync_all(states) == DVVSet()


# -- writer identity: a repeated dot is refused, never silently dropped ------------------------


def test_two_writers_sharing_an_actor_collide_both_ways() -> None:
    base = create("v1", "svc")
    w1 = base.update("from w1", "svc", base.context)  # both mint ('svc', 2)
    w2 = base.update("from w2", "svc", base.context)
    assert w1.items()[0][0] == w2.items()[0][0] == Dot("svc", 2)
    for left, right in ((w1, w2), (w2, w1)):
        with pytest.raises(DotCollision, match=r"\('svc', 2\)") as info:
            left.sync(right)
        assert (info.value.actor, info.value.counter) == ("svc", 2)
    assert w1.values == ["from w1"] and w2.values == ["from w2"]  # nothing changed
    with pytest.raises(DotCollision):
        sync_all([base, w1, w2])


def test_writers_with_their_own_identity_become_siblings() -> None:
    base = create("v1", "svc")
    w1 = base.update("from w1", "svc/1", base.context)
    w2 = base.update("from w2", "svc/2", base.context)
    merged = w1.sync(w2)
    assert merged == w2.sync(w1)
    assert sorted(merged.values) == ["from w1", "from w2"]


@given(dvv_replicas(2), st.binary(min_size=1, max_size=3))
def test_a_reused_dot_with_another_value_is_always_refused(
    pair: tuple[DVVSet[bytes], DVVSet[bytes]], extra: bytes
) -> None:
    a, b = pair
    forged_a = a.update(b"A" + extra, "forger", a.context.merge(b.context))
    forged_b = b.update(b"B" + extra, "forger", a.context.merge(b.context))
    with pytest.raises(DotCollision):
        forged_a.sync(forged_b)
    with pytest.raises(DotCollision):
        forged_b.sync(forged_a)


@given(dvv_sets())
def test_a_state_encoded_once_is_the_same_state_and_encodes_the_same(state: DVVSet[bytes]) -> None:
    fresh = _make(state._entries)  # never encoded
    encoded = state.to_bytes()  # remembered by `state`
    assert state == fresh
    assert hash(state) == hash(fresh)
    assert state.to_bytes() == encoded == fresh.to_bytes() == codec.dumps(fresh.to_dict())
    assert state.sync(fresh).to_bytes() == encoded
    state._check_invariants()


def test_merging_a_newer_state_keeps_that_state_and_its_encoding() -> None:
    old = DVVSet[bytes]().update(b"a", "n#1")
    new = old.update(b"b", "n#1", old.context)
    encoded = new.to_bytes()
    assert old.sync(new) is new  # a replica storing the write stores the write's state
    assert old.sync(new).to_bytes() is encoded
    assert new.sync(old) is new
