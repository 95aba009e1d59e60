"""VectorClock, Versioned, reconcile and last_write_wins: units, Riak's examples, laws, a model."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    rule,
)

from dynamo_core import (
    DecodeError,
    Ordering,
    VectorClock,
    Versioned,
    codec,
    last_write_wins,
    reconcile,
)
from dynamo_core.strategies import vector_clocks, versioned

BEFORE, AFTER, EQUAL, CONCURRENT = (
    Ordering.BEFORE,
    Ordering.AFTER,
    Ordering.EQUAL,
    Ordering.CONCURRENT,
)
small_nodes = st.sampled_from(["a", "b", "c", "d", "e"])


def model_compare(a: dict[str, int], b: dict[str, int]) -> Ordering:
    nodes = set(a) | set(b)
    le = all(a.get(n, 0) <= b.get(n, 0) for n in nodes)
    ge = all(a.get(n, 0) >= b.get(n, 0) for n in nodes)
    if le and ge:
        return EQUAL
    if le:
        return BEFORE
    return AFTER if ge else CONCURRENT


# -- construction and reading ------------------------------------------------------------------


def test_construction_sorts_drops_zeros_and_reads() -> None:
    clock = VectorClock({"b": 1, "a": 2, "z": 0}, timestamps={"a": 5.5})
    assert list(clock) == ["a", "b"]
    assert clock.nodes == ("a", "b")
    assert len(clock) == 2
    assert "a" in clock and "z" not in clock
    assert clock.get("a") == 2 and clock.get("z") == 0 and clock.get("nope") == 0
    assert clock.timestamp("a") == 5.5 and clock.timestamp("b") == 0.0
    assert clock.timestamp("z") is None
    assert clock.last_modified == 5.5
    assert VectorClock().last_modified is None
    assert list(clock.items()) == [("a", 2), ("b", 1)]
    assert repr(clock) == "VectorClock({'a': 2, 'b': 1})"
    assert VectorClock([("b", 1), ("a", 2)]) == clock
    assert not VectorClock() and clock


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (({"a": True},), {}, TypeError, "int counter, not bool"),
        (({"a": 1.0},), {}, TypeError, "int counter"),
        (({"a": -1},), {}, ValueError, "0..2"),
        (({"a": 2**63},), {}, ValueError, "0..2"),
        (({"": 1},), {}, ValueError, "1..255"),
        (({"x" * 256: 1},), {}, ValueError, "1..255"),
        (({1: 1},), {}, TypeError, "str node id"),
        (([("a", 1), ("a", 2)],), {}, ValueError, "twice"),
        (([("a", 1, 2)],), {}, TypeError, "pairs"),
        (({"a": 1},), {"timestamps": {"b": 1.0}}, ValueError, "no entry"),
        (({"a": 1},), {"timestamps": {"a": -1.0}}, ValueError, "finite number >= 0"),
        (({"a": 1},), {"timestamps": {"a": float("nan")}}, ValueError, "finite"),
        (({"a": 1},), {"timestamps": {"a": "1"}}, TypeError, "number of seconds"),
        (({"a": 1},), {"timestamps": [("a", 1.0)]}, TypeError, "mapping"),
    ],
)
def test_construction_rejects_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        VectorClock(*args, **kwargs)  # type: ignore[arg-type]


def test_immutable_and_hashable_ignoring_timestamps() -> None:
    a = VectorClock({"a": 1}, timestamps={"a": 1.0})
    b = VectorClock({"a": 1}, timestamps={"a": 99.0})
    assert a == b and hash(a) == hash(b)
    assert len({a, b, VectorClock({"a": 2})}) == 2
    assert a != VectorClock({"a": 1, "b": 1})
    assert a != VectorClock({"b": 1})
    assert a != "a"
    with pytest.raises(AttributeError):
        a._entries = {}  # type: ignore[misc]
    derived = a.increment("b", now=2.0).merge(VectorClock({"c": 1}))
    assert type(derived) is VectorClock
    with pytest.raises(AttributeError):
        derived._entries = {}  # type: ignore[misc]


# -- increment ---------------------------------------------------------------------------------


def test_increment_new_and_existing_nodes() -> None:
    empty = VectorClock()
    one = empty.increment("m", now=10.0)
    two = one.increment("c", now=11.0).increment("x", now=12.0).increment("m", now=13.0)
    assert dict(two.items()) == {"c": 1, "m": 2, "x": 1}
    assert list(two) == ["c", "m", "x"]
    assert two.timestamp("m") == 13.0 and two.timestamp("c") == 11.0
    assert empty == VectorClock() and one == VectorClock({"m": 1})  # inputs untouched
    two._check_invariants()


def test_increment_default_now_reads_the_wall_clock() -> None:
    before = time.time()
    stamp = VectorClock().increment("a").timestamp("a")
    assert stamp is not None and before - 1 <= stamp <= time.time() + 1


def test_increment_accepts_int_now_and_rejects_bad_arguments() -> None:
    assert VectorClock().increment("a", now=3).timestamp("a") == 3.0
    clock = VectorClock({"a": 1})
    with pytest.raises(TypeError, match="str node id"):
        clock.increment(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1..255"):
        clock.increment("")
    with pytest.raises(ValueError, match="finite number >= 0"):
        clock.increment("a", now=-1.0)
    with pytest.raises(ValueError, match="finite"):
        clock.increment("a", now=float("inf"))
    with pytest.raises(TypeError, match="number of seconds"):
        clock.increment("a", now=True)
    with pytest.raises(OverflowError):
        VectorClock({"a": 2**63 - 1}).increment("a")
    assert clock == VectorClock({"a": 1})


# -- Riak's vclock examples (riak_core vclock.erl eunit tests) ---------------------------------


def test_riak_example() -> None:
    a = VectorClock()
    b = VectorClock()
    a1 = a.increment("a")
    b1 = b.increment("b")
    assert a1.descends(a) and b1.descends(b)
    assert not a1.descends(b1)
    a2 = a1.increment("a")
    c = a2.merge(b1)
    c1 = c.increment("c")
    assert c1.descends(a2) and c1.descends(b1)
    assert not b1.descends(c1) and not b1.descends(a1)


def _riak(entries: list[tuple[str, int, float]]) -> VectorClock:
    return VectorClock(
        {node: counter for node, counter, _ in entries},
        timestamps={node: stamp for node, _, stamp in entries},
    )


def _stamped(clock: VectorClock) -> list[tuple[str, int, float | None]]:
    return [(node, counter, clock.timestamp(node)) for node, counter in clock.items()]


def test_riak_accessors() -> None:
    clock = _riak([("1", 1, 1), ("2", 2, 2)])
    assert clock.get("1") == 1 and clock.timestamp("1") == 1
    assert clock.get("2") == 2 and clock.timestamp("2") == 2
    assert clock.get("3") == 0 and clock.timestamp("3") is None
    assert list(clock) == ["1", "2"]


def test_riak_merge() -> None:
    vc1 = _riak([("1", 1, 1), ("2", 2, 2), ("4", 4, 4)])
    vc2 = _riak([("3", 3, 3), ("4", 3, 3)])
    assert VectorClock.merge_all([]) == VectorClock()
    assert _stamped(VectorClock.merge_all([vc1, vc2])) == [
        ("1", 1, 1),
        ("2", 2, 2),
        ("3", 3, 3),
        ("4", 4, 4),
    ]


def test_riak_merge_less_left_and_right() -> None:
    vc1 = _riak([("5", 5, 5)])
    vc2 = _riak([("6", 6, 6), ("7", 7, 7)])
    expected = [("5", 5, 5), ("6", 6, 6), ("7", 7, 7)]
    assert _stamped(vc1.merge(vc2)) == expected
    assert _stamped(vc2.merge(vc1)) == expected


def test_riak_merge_same_id_keeps_the_later_timestamp() -> None:
    vc1 = _riak([("1", 1, 2), ("2", 1, 4)])
    vc2 = _riak([("1", 1, 3), ("3", 1, 5)])
    expected = [("1", 1, 3), ("2", 1, 4), ("3", 1, 5)]
    assert _stamped(vc1.merge(vc2)) == expected
    assert _stamped(vc2.merge(vc1)) == expected


NOW = 1_700_000_000.0


def test_riak_prune_small() -> None:
    old = NOW - 32_000_000
    small = _riak([("1", 1, old), ("2", 2, old), ("3", 3, old)])
    assert small.prune(4, min_age=20, now=NOW) is small


def test_riak_prune_young() -> None:
    clock = _riak([("1", 1, NOW - 1), ("2", 2, NOW - 1), ("3", 3, NOW - 1)])
    assert clock.prune(1, min_age=1000, now=NOW) is clock


def test_riak_prune_big() -> None:
    clock = _riak([("1", 1, NOW - 1000), ("2", 2, NOW - 1000), ("3", 3, NOW - 1000)])
    pruned = clock.prune(2, min_entries=1, min_age=1, max_age=100_000, now=NOW)
    assert len(pruned) == 2
    assert list(pruned) == ["2", "3"]  # equal ages: the smallest node id goes first


def test_riak_prune_old() -> None:
    clock = _riak([("1", 1, NOW - 1000), ("2", 2, NOW - 100_000), ("3", 3, NOW - 100_000)])
    pruned = clock.prune(2, min_entries=1, min_age=1, max_age=10_000, now=NOW)
    assert list(pruned) == ["1"]


def test_riak_prune_order_is_deterministic() -> None:
    vc1 = _riak([("1", 1, NOW - 100_000), ("2", 2, NOW - 100_000)])
    vc2 = _riak([("2", 2, NOW - 100_000), ("1", 1, NOW - 100_000)])
    assert vc1.prune(1, min_age=1, now=NOW) == vc2.prune(1, min_age=1, now=NOW)
    assert list(vc1.prune(1, min_age=1, now=NOW)) == ["2"]


def test_dynamo_truncation_drops_the_oldest_pair() -> None:
    clock = VectorClock()
    for i in range(11):
        clock = clock.increment(f"n{i:02d}", now=float(i))
    pruned = clock.prune(10)
    assert len(pruned) == 10 and "n00" not in pruned
    assert clock.descends(pruned)


def test_prune_rejects_bad_arguments() -> None:
    clock = VectorClock({"a": 1, "b": 1})
    with pytest.raises(ValueError, match="max_entries"):
        clock.prune(0)
    with pytest.raises(TypeError, match="max_entries"):
        clock.prune(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_entries"):
        clock.prune(1, min_entries=2)
    with pytest.raises(TypeError, match="min_entries"):
        clock.prune(1, min_entries="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_age"):
        clock.prune(1, min_age=-1)
    with pytest.raises(ValueError, match="max_age"):
        clock.prune(1, max_age=float("nan"))


def test_pruning_can_hide_a_conflict_which_is_why_it_must_not_drop_versions() -> None:
    # x = {a: 1 (old), b: 5}, y = {b: 6} are concurrent; dropping x's old `a` makes x look older.
    x = _riak([("a", 1, 0.0), ("b", 5, 100.0)])
    y = _riak([("b", 6, 100.0)])
    assert x.compare(y) is CONCURRENT
    assert x.prune(1).compare(y) is BEFORE


# -- comparison, including the mistakes of Voldemort and the vectorclock package ---------------


def test_equal_is_not_before_and_not_concurrent() -> None:
    a = VectorClock({"a": 1, "b": 2})
    assert a.compare(VectorClock({"b": 2, "a": 1})) is EQUAL  # Voldemort says BEFORE
    assert a.compare(VectorClock({"a": 2})) is CONCURRENT  # vectorclock says 0 for both
    assert a.compare(VectorClock({"a": 1, "b": 3})) is BEFORE
    assert a.compare(VectorClock({"a": 1})) is AFTER
    assert VectorClock().compare(VectorClock()) is EQUAL
    assert a.dominates(VectorClock({"a": 1})) and not a.dominates(a)
    for ordering in Ordering:
        assert ordering.reverse().reverse() is ordering
    with pytest.raises(TypeError, match="VectorClock"):
        a.compare({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VectorClock"):
        a.descends({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VectorClock"):
        a.merge({"a": 1})  # type: ignore[arg-type]


@given(vector_clocks(), vector_clocks())
def test_compare_matches_the_dict_model(a: VectorClock, b: VectorClock) -> None:
    assert a.compare(b) is model_compare(dict(a.items()), dict(b.items()))


@settings(max_examples=300)
@given(
    st.integers(min_value=1, max_value=20).flatmap(
        lambda n: st.tuples(
            *(st.tuples(st.integers(1, 4), st.integers(1, 4), st.booleans()) for _ in range(n))
        )
    ),
    st.booleans(),
)
def test_compare_of_clocks_on_the_same_nodes_matches_the_dict_model(
    columns: tuple[tuple[int, int, bool], ...], derived: bool
) -> None:
    # Both paths for clocks on the same nodes (lookups up to 8 entries, a zip beyond), with
    # entries shared by derivation or not at all (decoded), against the model.
    nodes = [f"n{i:02d}" for i in range(len(columns))]
    counters_a = {node: x for node, (x, _, _) in zip(nodes, columns, strict=True)}
    counters_b = {node: y for node, (_, y, _) in zip(nodes, columns, strict=True)}
    if derived:  # b from a by increments: unchanged entries are shared, the node tuple too
        a = VectorClock(counters_a)
        b = a
        for node, (x, y, _) in zip(nodes, columns, strict=True):
            for _ in range(y - x):
                b = b.increment(node, now=1.0)
        counters_b = {node: max(x, y) for node, (x, y, _) in zip(nodes, columns, strict=True)}
    else:
        a = VectorClock.from_dict(VectorClock(counters_a).to_dict())
        b = VectorClock.from_dict(VectorClock(counters_b).to_dict())
    b._check_invariants()
    assert a.compare(b) is model_compare(counters_a, counters_b)
    assert b.compare(a) is model_compare(counters_b, counters_a)


@given(vector_clocks(), vector_clocks())
def test_compare_is_antisymmetric_and_consistent_with_descends_and_eq(
    a: VectorClock, b: VectorClock
) -> None:
    order = a.compare(b)
    assert b.compare(a) is order.reverse()
    assert a.descends(b) == (order in (AFTER, EQUAL))
    assert (order is EQUAL) == (a == b)
    assert a.dominates(b) == (order is AFTER)
    if a == b:
        assert hash(a) == hash(b)


@given(vector_clocks(max_counter=2**63 - 2), small_nodes | st.text(min_size=1, max_size=3))
def test_increment_is_strictly_after(clock: VectorClock, node: str) -> None:
    bumped = clock.increment(node, now=1.0)
    bumped._check_invariants()
    assert clock.compare(bumped) is BEFORE
    assert bumped.get(node) == clock.get(node) + 1
    assert all(bumped.get(n) == clock.get(n) for n in clock if n != node)
    assert bumped.timestamp(node) == 1.0


# -- merge laws --------------------------------------------------------------------------------


@given(vector_clocks(), vector_clocks())
def test_merge_is_commutative_and_an_upper_bound(a: VectorClock, b: VectorClock) -> None:
    ab = a.merge(b)
    ab._check_invariants()
    assert ab == b.merge(a)
    assert _stamped(ab) == _stamped(b.merge(a))  # timestamps merge commutatively too
    assert ab.descends(a) and ab.descends(b)
    assert all(ab.get(n) == max(a.get(n), b.get(n)) for n in set(a) | set(b))


@given(vector_clocks(), vector_clocks(), vector_clocks())
def test_merge_is_associative_and_the_least_upper_bound(
    a: VectorClock, b: VectorClock, c: VectorClock
) -> None:
    assert _stamped(a.merge(b).merge(c)) == _stamped(a.merge(b.merge(c)))
    if c.descends(a) and c.descends(b):
        assert c.descends(a.merge(b))


@given(vector_clocks())
def test_merge_is_idempotent(a: VectorClock) -> None:
    assert a.merge(a) is a
    assert a.merge(VectorClock()) is a
    assert VectorClock().merge(a) == a


# -- prune properties --------------------------------------------------------------------------


@given(
    vector_clocks(max_entries=8),
    st.integers(1, 6),
    st.none() | st.floats(0, 3e9),
    st.none() | st.floats(0, 3e9),
)
def test_prune_drops_only_the_oldest_entries(
    clock: VectorClock, max_entries: int, min_age: float | None, max_age: float | None
) -> None:
    now = 2e9
    pruned = clock.prune(max_entries, min_age=min_age, max_age=max_age, now=now)
    pruned._check_invariants()
    assert clock.descends(pruned)
    assert all(pruned.get(n) == clock.get(n) for n in pruned)
    dropped = [n for n in clock if n not in pruned]
    if dropped:
        assert len(clock) > max_entries
        assert len(pruned) >= max_entries  # min_entries defaults to max_entries
        kept_oldest = min(((clock.timestamp(n), n) for n in pruned), default=None)
        newest_dropped = max((clock.timestamp(n), n) for n in dropped)
        assert kept_oldest is None or newest_dropped < kept_oldest
        if min_age is not None:
            assert all(now - (clock.timestamp(n) or 0.0) >= min_age for n in dropped)
    if max_age is None and min_age is None:
        assert len(pruned) == min(len(clock), max_entries) or len(clock) <= max_entries


# -- codec -------------------------------------------------------------------------------------


@given(vector_clocks(max_entries=10))
def test_codec_round_trip_keeps_timestamps(clock: VectorClock) -> None:
    encoded = clock.to_dict()
    for data in (encoded, codec.loads(codec.dumps(encoded))):
        decoded = VectorClock.from_dict(data)
        decoded._check_invariants()
        assert decoded == clock
        assert _stamped(decoded) == _stamped(clock)
        assert decoded.to_dict() == encoded
    assert json.loads(json.dumps(encoded)) == encoded


def _encoded(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "vclock",
        "v": 1,
        "nodes": ["a", "b"],
        "counters": [1, 2],
        "stamps": [0.0, 1.5],
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_encoded(counters=[1, -1]), r"counters\[1\] must be in 1"),
        (_encoded(counters=[1, 0]), r"counters\[1\] must be in 1"),
        (_encoded(counters=[True, 2]), r"counters\[0\] must be an integer, not a boolean"),
        (_encoded(counters=[1, 2**63]), r"counters\[1\] must be in 1\.\.9223372036854775807"),
        (_encoded(counters=[1, 2.0]), r"counters\[1\] must be an integer"),
        (_encoded(counters=[1, "2"]), r"counters\[1\] must be an integer"),
        (_encoded(nodes=["", "b"]), r"nodes\[0\] must be 1\.\.255"),
        (_encoded(nodes=["a", "x" * 256]), r"nodes\[1\] must be 1\.\.255"),
        (_encoded(nodes=["b", "a"]), r"nodes\[1\] must sort after"),
        (_encoded(nodes=["a", "a"]), r"nodes\[1\] must sort after"),
        (_encoded(nodes=["a", 7]), r"nodes\[1\] must be a string"),
        (_encoded(stamps=[0.0, -1.0]), r"stamps\[1\] must be a finite number"),
        (_encoded(stamps=[0.0, float("nan")]), r"stamps\[1\] must be a finite number"),
        (_encoded(stamps=[0.0, float("inf")]), r"stamps\[1\] must be a finite number"),
        (_encoded(stamps=[0.0, True]), r"stamps\[1\] must be a number"),
        (_encoded(stamps=[0.0]), "same length"),
        (_encoded(nodes="ab"), "nodes must be a list"),
        (_encoded(v=2), r"vclock\.v must be in 1\.\.1"),
        (_encoded(v=True), r"vclock\.v must be an integer"),
        (_encoded(type="dvvset"), "expected an encoded vclock"),
        (_encoded(extra=1), "unknown field"),
        ({"type": "vclock", "v": 1}, "missing field"),
        ([], "must be an object"),
    ],
)
def test_from_dict_rejects_bad_input(data: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        VectorClock.from_dict(data)


def test_from_dict_rejects_oversized_clocks() -> None:
    nodes = [f"n{i:04d}" for i in range(11)]
    data = _encoded(nodes=nodes, counters=[1] * 11, stamps=[0.0] * 11)
    assert len(VectorClock.from_dict(data)) == 11
    with pytest.raises(DecodeError, match="limit is 10"):
        VectorClock.from_dict(data, max_entries=10)


def test_from_dict_accepts_integer_stamps_as_seconds() -> None:
    clock = VectorClock.from_dict(_encoded(stamps=[0, 2]))
    assert clock.timestamp("b") == 2.0 and type(clock.timestamp("b")) is float


# -- Versioned ---------------------------------------------------------------------------------


def test_versioned_validates_and_round_trips() -> None:
    with pytest.raises(TypeError, match="VectorClock"):
        Versioned(b"x", {"a": 1})  # type: ignore[arg-type]
    item = Versioned(b"cart", VectorClock({"a": 2}, timestamps={"a": 4.0}))
    assert Versioned.from_dict(item.to_dict()) == item
    assert Versioned.from_dict(codec.loads(codec.dumps(item.to_dict()))) == item
    with pytest.raises(TypeError, match="encode="):
        Versioned("text", VectorClock()).to_dict()
    texts = Versioned({"book", "pen"}, VectorClock({"a": 1}))

    def encode(value: set[str]) -> bytes:
        return json.dumps(sorted(value)).encode()

    def decode(raw: bytes) -> set[str]:
        return set(json.loads(raw))

    assert Versioned.from_dict(texts.to_dict(encode), decode) == texts
    with pytest.raises(DecodeError, match="could not be decoded"):
        Versioned.from_dict(Versioned(b"not json", VectorClock()).to_dict(), decode)
    with pytest.raises(DecodeError, match="3-byte limit"):
        Versioned.from_dict(Versioned(b"four", VectorClock()).to_dict(), max_value_bytes=3)


@given(versioned())
def test_versioned_codec_round_trip(item: Versioned[bytes]) -> None:
    assert Versioned.from_dict(codec.loads(codec.dumps(item.to_dict()))) == item


# -- reconcile and last-write-wins ---------------------------------------------------------------


def test_reconcile_the_dynamo_shopping_cart() -> None:
    # Sx writes D1, D2; Sy and Sz then write concurrently from D2; the client sees D3 and D4.
    d1 = VectorClock().increment("Sx", now=1.0)
    d2 = d1.increment("Sx", now=2.0)
    d3 = d2.increment("Sy", now=3.0)
    d4 = d2.increment("Sz", now=4.0)
    versions = [
        Versioned(b"D1", d1),
        Versioned(b"D2", d2),
        Versioned(b"D4", d4),
        Versioned(b"D3", d3),
        Versioned(b"D3", d3),
    ]
    siblings = reconcile(versions)
    assert [v.value for v in siblings] == [b"D3", b"D4"]
    d5 = d3.merge(d4).increment("Sx", now=5.0)
    assert reconcile([*versions, Versioned(b"D5", d5)]) == [Versioned(b"D5", d5)]
    assert reconcile([]) == []


def test_reconcile_keeps_different_values_with_equal_clocks_in_value_order() -> None:
    clock = VectorClock({"a": 1})
    out = reconcile([Versioned(b"y", clock), Versioned(b"x", clock), Versioned(b"y", clock)])
    assert [v.value for v in out] == [b"x", b"y"]
    unorderable = reconcile([Versioned({"k": 2}, clock), Versioned({"k": 1}, clock)])
    assert [v.value for v in unorderable] == [{"k": 1}, {"k": 2}]  # by repr
    with pytest.raises(TypeError, match=r"versions\[0\]"):
        reconcile([b"x"])  # type: ignore[arg-type]


@given(st.lists(versioned(), max_size=6), st.randoms(use_true_random=False))
def test_reconcile_is_idempotent_order_independent_and_maximal(
    items: list[Versioned[bytes]], rnd: object
) -> None:
    out = reconcile(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert reconcile(shuffled) == out
    assert reconcile(out) == out
    for x, y in itertools.permutations(out, 2):
        assert x.clock.compare(y.clock) in (CONCURRENT, EQUAL)
        assert x != y
    for item in items:  # every input is in the output or superseded by it
        assert item in out or any(o.clock.dominates(item.clock) for o in out)


def test_last_write_wins_picks_the_latest_and_merges_clocks() -> None:
    base = VectorClock().increment("a", now=1.0)
    early = Versioned(b"early", base.increment("b", now=5.0))
    late = Versioned(b"late", base.increment("c", now=9.0))
    winner = last_write_wins([late, early])
    assert winner.value == b"late"
    assert winner.clock == early.clock.merge(late.clock)
    assert reconcile([early, late, winner]) == [winner]
    assert last_write_wins([early, late], key=lambda v: v.value == b"early").value == b"early"
    with pytest.raises(ValueError, match="at least one"):
        last_write_wins([])


@given(st.lists(versioned(), min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_last_write_wins_is_order_independent(items: list[Versioned[bytes]], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    winner = last_write_wins(items)
    assert last_write_wins(shuffled) == winner
    assert all(winner.clock.descends(item.clock) for item in items)
    latest = max((item.clock.last_modified or 0.0) for item in items)
    assert any(
        item.value == winner.value and (item.clock.last_modified or 0.0) == latest for item in items
    )


# -- a stateful test against a dict model ------------------------------------------------------


class ClockMachine(RuleBasedStateMachine):
    """Clocks derived by increment, merge and prune, each beside a plain dict of counters."""

    clocks = Bundle("clocks")

    @initialize(target=clocks)
    def empty(self) -> tuple[VectorClock, dict[str, int]]:
        self.now = 0.0
        return VectorClock(), {}

    def _check(self, clock: VectorClock, model: dict[str, int]) -> None:
        clock._check_invariants()
        assert dict(clock.items()) == model
        assert list(clock) == sorted(model)

    @rule(target=clocks, pair=clocks, node=small_nodes)
    def increment(
        self, pair: tuple[VectorClock, dict[str, int]], node: str
    ) -> tuple[VectorClock, dict[str, int]]:
        clock, model = pair
        self.now += 1.0
        new_model = {**model, node: model.get(node, 0) + 1}
        new = clock.increment(node, now=self.now)
        self._check(new, new_model)
        assert new.timestamp(node) == self.now
        return new, new_model

    @rule(target=clocks, left=clocks, right=clocks)
    def merge(
        self, left: tuple[VectorClock, dict[str, int]], right: tuple[VectorClock, dict[str, int]]
    ) -> tuple[VectorClock, dict[str, int]]:
        merged = left[0].merge(right[0])
        model = {n: max(left[1].get(n, 0), right[1].get(n, 0)) for n in left[1].keys() | right[1]}
        self._check(merged, model)
        assert merged.compare(left[0]) in (AFTER, EQUAL)
        return merged, model

    @rule(target=clocks, pair=clocks, keep=st.integers(1, 4))
    def prune(
        self, pair: tuple[VectorClock, dict[str, int]], keep: int
    ) -> tuple[VectorClock, dict[str, int]]:
        clock, model = pair
        pruned = clock.prune(keep)
        by_age = sorted(clock.nodes, key=lambda n: (clock.timestamp(n), n))
        survivors = by_age[max(0, len(by_age) - keep) :]
        expected = {n: model[n] for n in survivors}
        self._check(pruned, expected)
        return pruned, expected

    @rule(left=clocks, right=clocks)
    def compare(
        self, left: tuple[VectorClock, dict[str, int]], right: tuple[VectorClock, dict[str, int]]
    ) -> None:
        assert left[0].compare(right[0]) is model_compare(left[1], right[1])
        assert (left[0] == right[0]) == (left[1] == right[1])


TestClockMachine = ClockMachine.TestCase
TestClockMachine.settings = settings(max_examples=100, stateful_step_count=30)
