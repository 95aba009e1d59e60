"""HintStore and Hint: merging, caps, the hint window, expiry, exact removal, durable counters."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dynamo_core import DVVSet, MemoryStorage, SQLiteStorage, VectorClock, codec
from dynamo_core.errors import DecodeError, StorageError
from dynamo_core.hints import MAX_KEY_BYTES, Hint, HintStore
from dynamo_core.strategies import dvv_replicas, dvv_sets, hints, keys, node_ids

from gset import GSet, gs


def gstore(storage: Any = None, **options: Any) -> HintStore[GSet]:
    return HintStore(storage, state_type=GSet, **options)


def snapshot(store: HintStore[Any]) -> list[tuple[bytes, bytes]]:
    return list(store.storage.scan())


def size_of(hint: Hint[Any]) -> int:
    return len(codec.dumps(hint.to_dict()))


gsets = st.frozensets(st.sampled_from("abcdefgh"), max_size=4).map(GSet)
times = st.floats(0.0, 1e9, allow_nan=False, allow_infinity=False)


# -- Hint ----------------------------------------------------------------------------------------


def test_hint_fields_and_round_trip() -> None:
    hint = Hint("node-b", b"\x00key", gs("x"), 12)
    assert hint.created_at == 12.0
    assert type(hint.created_at) is float
    data = hint.to_dict()
    assert data["type"] == "hint"
    assert data["key_b64"] == "AGtleQ=="
    assert "key" not in data
    assert Hint.from_dict(codec.loads(codec.dumps(data)), state_type=GSet) == hint
    text = Hint("node-b", "", gs(), 0.0)
    assert Hint.from_dict(text.to_dict(), state_type=GSet) == text


def test_negative_zero_is_normalized() -> None:
    hint = Hint("b", "k", gs(), -0.0)
    assert math.copysign(1.0, hint.created_at) == 1.0
    assert codec.dumps(hint.to_dict()) == codec.dumps(Hint("b", "k", gs(), 0.0).to_dict())


@given(target=node_ids(), key=keys(), state=gsets, created_at=times)
def test_hint_codec_round_trip(
    target: str, key: str | bytes, state: GSet, created_at: float
) -> None:
    hint = Hint(target, key, state, created_at)
    decoded = Hint.from_dict(codec.loads(codec.dumps(hint.to_dict())), state_type=GSet)
    assert decoded == hint
    assert type(decoded.key) is type(key)
    assert codec.dumps(decoded.to_dict()) == codec.dumps(hint.to_dict())


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1, "k", gs(), 0.0), TypeError, "target"),
        (("", "k", gs(), 0.0), ValueError, "target"),
        (("x" * 256, "k", gs(), 0.0), ValueError, "target"),
        (("b", 5, gs(), 0.0), TypeError, "key"),
        (("b", "\ud800", gs(), 0.0), ValueError, "key"),
        (("b", b"k" * (MAX_KEY_BYTES + 1), gs(), 0.0), ValueError, "key"),
        (("b", "é" * (MAX_KEY_BYTES // 2 + 1), gs(), 0.0), ValueError, "key"),
        (("b", "k", {"a"}, 0.0), TypeError, "state"),
        (("b", "k", gs(), -1.0), ValueError, "created_at"),
        (("b", "k", gs(), math.nan), ValueError, "created_at"),
        (("b", "k", gs(), math.inf), ValueError, "created_at"),
        (("b", "k", gs(), True), TypeError, "created_at"),
        (("b", "k", gs(), "1"), TypeError, "created_at"),
    ],
)
def test_hint_rejects_bad_fields(args: tuple[Any, ...], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Hint(*args)


def test_hint_decoder_rejects_bad_input() -> None:
    good: dict[str, Any] = Hint("b", "k", gs("x"), 1.0).to_dict()
    both = {**good, "key_b64": "AA=="}
    neither = {k: v for k, v in good.items() if k != "key"}
    cases: list[object] = [
        both,
        neither,
        {**good, "key": "\ud800"},
        {**good, "key": "é" * (MAX_KEY_BYTES // 2 + 1)},
        {**good, "key_b64": "!!", "key": None},
        {**good, "created_at": -1.0},
        {**good, "created_at": True},
        {**good, "target": ""},
        {**good, "state": {"type": "gset", "v": 1, "items": [1]}},
        {**good, "extra": 1},
        {**good, "type": "hint_batch"},
        [],
    ]
    for data in cases:
        with pytest.raises(DecodeError):
            Hint.from_dict(data, state_type=GSet)
    with pytest.raises(TypeError, match="state_type"):
        Hint.from_dict(good, state_type=42)  # type: ignore[call-overload]


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_hints_per_target": 0}, ValueError, "max_hints_per_target"),
        ({"max_hints_per_target": 1.5}, TypeError, "max_hints_per_target"),
        ({"max_bytes_per_target": -1}, ValueError, "max_bytes_per_target"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": math.inf}, ValueError, "ttl"),
        ({"window": math.nan}, ValueError, "window"),
        ({"window": "1"}, TypeError, "window"),
        ({"namespace": "hints"}, TypeError, "namespace"),
        ({"state_type": "GSet"}, TypeError, "state_type"),
        ({"state_type": int}, TypeError, "state_type"),
    ],
)
def test_store_rejects_bad_options(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    options.setdefault("state_type", GSet)
    with pytest.raises(error, match=match):
        HintStore(**options)


def test_store_rejects_a_non_storage() -> None:
    with pytest.raises(TypeError, match="storage"):
        HintStore({}, state_type=GSet)  # type: ignore[call-overload]


def test_window_defaults_to_ttl() -> None:
    store = gstore(ttl=60.0)
    assert store.window == 60.0
    assert store.ttl == 60.0
    assert gstore(ttl=60.0, window=5.0).window == 5.0
    assert store.state_type is GSet
    assert isinstance(store.storage, MemoryStorage)


# -- add, merge, pending -----------------------------------------------------------------------


def test_add_and_pending_oldest_first() -> None:
    store = gstore()
    assert store.add("b", "k2", gs("1"), 5.0)
    assert store.add("b", b"k1", gs("2"), 3.0)
    assert store.add("b", "k3", gs("3"), 5.0)  # same time: insertion order breaks the tie
    assert store.add("c", "k1", gs("4"), 1.0)
    store._check_invariants()
    assert [h.key for h in store.pending("b")] == [b"k1", "k2", "k3"]
    assert [h.key for h in store.pending("b", limit=2)] == [b"k1", "k2"]
    assert store.pending("nobody") == []
    assert store.targets() == ["b", "c"]
    assert store.count("b") == 3
    assert store.count("nobody") == 0
    assert len(store) == 4
    assert store.get("b", b"k1") == Hint("b", b"k1", gs("2"), 3.0)
    assert store.get("b", "k1") is None  # str and bytes keys are different keys


def test_str_and_bytes_keys_with_the_same_bytes_are_distinct() -> None:
    store = gstore()
    store.add("b", "k", gs("s"), 1.0)
    store.add("b", b"k", gs("b"), 1.0)
    assert store.count("b") == 2
    assert store.get("b", "k") == Hint("b", "k", gs("s"), 1.0)
    assert store.get("b", b"k") == Hint("b", b"k", gs("b"), 1.0)


def test_second_write_merges_and_keeps_created_at() -> None:
    store = gstore()
    assert store.add("b", "k", gs("1"), 1.0)
    assert store.add("b", "k", gs("2"), 7.0)
    assert store.add("b", "k", gs("1"), 8.0)  # nothing new: accepted, nothing written
    store._check_invariants()
    (hint,) = store.pending("b")
    assert hint == Hint("b", "k", gs("1", "2"), 1.0)
    stats = store.stats().get("b")
    assert stats is not None
    assert stats.hints == 1
    assert stats.bytes == size_of(hint)


def test_backlog_is_bounded_by_distinct_keys_not_writes() -> None:
    store = gstore(max_hints_per_target=3)
    for i in range(200):
        assert store.add("b", f"k{i % 3}", gs(f"w{i}"), float(i))
    assert store.count("b") == 3
    assert store.stats().dropped == 0
    merged = store.get("b", "k0")
    assert merged is not None
    assert merged.state.items == {f"w{i}" for i in range(0, 200, 3)}


def test_targets_that_share_a_prefix_stay_apart() -> None:
    store = gstore()
    # Without the length prefix, "a" + "\x00\x02..." could read as another target's record.
    names = ["a", "ab", "a\x00", "\x00\x01a", "a" * 255, "é"]
    for i, name in enumerate(names):
        store.add(name, "k", gs(str(i)), float(i))
        store.add(name, f"k-{name}", gs(str(i)), float(i))
    store._check_invariants()
    for i, name in enumerate(names):
        assert [h.key for h in store.pending(name)] == ["k", f"k-{name}"]
        assert {h.state for h in store.pending(name)} == {gs(str(i))}
    assert store.targets() == sorted(names)
    reopened = HintStore(store.storage, state_type=GSet)
    reopened._check_invariants()
    assert reopened.stats() == store.stats()


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 5), times), min_size=1, max_size=30))
def test_pending_is_ordered_by_time_then_insertion(entries: list[tuple[int, float]]) -> None:
    store = gstore(ttl=1e10)  # no window closes within the drawn times
    added: list[tuple[float, int, str]] = []
    for seq, (k, now) in enumerate(entries):
        key = f"k{k}"
        existing = store.get("b", key)
        store.add("b", key, gs(str(seq)), now)
        if existing is None:
            added.append((now, seq, key))
    store._check_invariants()
    assert [h.key for h in store.pending("b")] == [key for _, _, key in sorted(added)]


# -- caps and drops ----------------------------------------------------------------------------


def test_count_cap_drops_new_keys_but_merges_existing_ones() -> None:
    store = gstore(max_hints_per_target=2)
    assert store.add("b", "k1", gs("1"), 1.0)
    assert store.add("b", "k2", gs("2"), 1.0)
    assert not store.add("b", "k3", gs("3"), 1.0)
    assert store.add("b", "k1", gs("4"), 2.0)  # a merge does not need a new slot
    assert store.add("c", "k3", gs("3"), 1.0)  # caps are per target
    store._check_invariants()
    b = store.stats().get("b")
    assert b is not None
    assert (b.hints, b.dropped, b.needs_repair) == (2, 1, True)
    assert store.needs_repair() == ["b"]
    assert store.get("b", "k3") is None


def test_byte_cap_applies_to_new_hints_and_to_growing_merges() -> None:
    first = Hint("b", "k1", gs("a"), 1.0)
    cap = 2 * size_of(first) + 10
    store = gstore(max_bytes_per_target=cap)
    assert store.add("b", "k1", gs("a"), 1.0)
    assert store.add("b", "k2", gs("b"), 1.0)
    assert not store.add("b", "k3", gs("c"), 1.0)
    big = gs(*[f"item-{i}" for i in range(5)])
    assert not store.add("b", "k1", big, 2.0)  # growing k1 would pass the byte cap
    assert store.get("b", "k1") == first  # the old state is kept whole
    store._check_invariants()
    stats = store.stats().get("b")
    assert stats is not None
    assert stats.dropped == 2
    assert stats.bytes <= cap


def test_a_hint_larger_than_the_cap_is_dropped_for_a_new_target() -> None:
    store = gstore(max_bytes_per_target=50)
    assert not store.add("b", "k", gs("x" * 100), 1.0)
    store._check_invariants()
    assert store.needs_repair() == ["b"]
    assert store.targets() == []
    assert store.stats().get("b") == store.stats().targets[0]


# -- the hint window ---------------------------------------------------------------------------


def test_window_runs_from_the_oldest_undelivered_hint() -> None:
    store = gstore(ttl=1000.0, window=100.0)
    assert store.add("b", "k1", gs("1"), 10.0)
    assert store.window_closes_at("b") == 110.0
    assert store.add("b", "k2", gs("2"), 50.0)
    # The target flaps: one hint is delivered, the other is still pending.
    assert store.remove(store.pending("b")[0])
    assert store.window_closes_at("b") == 110.0  # not reset by a partial delivery
    assert store.add("b", "k3", gs("3"), 109.9)
    assert not store.add("b", "k4", gs("4"), 110.0)  # over: hints for b stop
    assert not store.add("b", "k2", gs("5"), 111.0)  # merges too
    assert store.add("c", "k4", gs("4"), 110.0)  # other targets are unaffected
    assert store.needs_repair() == ["b"]
    # Delivering the whole backlog ends the outage: the next hint opens a new window.
    for hint in store.pending("b"):
        assert store.remove(hint)
    assert store.window_closes_at("b") is None
    assert store.add("b", "k4", gs("4"), 200.0)
    assert store.window_closes_at("b") == 300.0
    store._check_invariants()


def test_expiry_keeps_the_window_closed_until_reset() -> None:
    store = gstore(ttl=10.0, window=10.0)
    assert store.add("b", "k1", gs("1"), 0.0)
    assert store.expire(10.0) == 1
    assert store.count("b") == 0
    assert store.window_closes_at("b") == 10.0
    assert not store.add("b", "k2", gs("2"), 11.0)  # still the same outage
    store.reset_window("b")  # the target is back and nothing is pending
    assert store.window_closes_at("b") is None
    store.reset_window("b")  # idempotent
    assert store.add("b", "k2", gs("2"), 12.0)
    store._check_invariants()


def test_reset_window_refuses_while_hints_are_pending_and_for_unknown_targets() -> None:
    store = gstore()
    store.add("b", "k", gs("1"), 0.0)
    before = snapshot(store)
    with pytest.raises(ValueError, match="pending"):
        store.reset_window("b")
    with pytest.raises(ValueError, match="unknown"):
        store.reset_window("zz")
    with pytest.raises(TypeError, match="target"):
        store.reset_window(5)  # type: ignore[arg-type]
    assert snapshot(store) == before


# -- expiry ------------------------------------------------------------------------------------


def test_expire_deletes_exactly_the_hints_past_their_ttl() -> None:
    store = gstore(ttl=10.0, window=1000.0)
    for i in range(5):
        store.add("b", f"k{i}", gs(str(i)), float(i))
    store.add("c", "k", gs("c"), 3.0)
    assert store.next_expiry() == 10.0
    assert store.expire(9.999) == 0
    assert store.expire(12.0) == 3  # created at 0, 1, 2: created_at + ttl <= now
    assert [h.key for h in store.pending("b")] == ["k3", "k4"]
    assert store.next_expiry() == 13.0
    assert store.expire(13.0) == 2  # b's k3 and c's k
    stats = store.stats()
    assert stats.expired == 5
    assert stats.needs_repair == ("b", "c")
    store._check_invariants()


def test_expire_handles_more_than_one_batch() -> None:
    store = gstore(ttl=1.0, window=1e6)
    for i in range(1100):
        store.add("b", f"k{i}", gs(), 0.0)
    assert store.expire(1.0) == 1100
    assert store.count("b") == 0
    store._check_invariants()


# -- remove ------------------------------------------------------------------------------------


def test_remove_deletes_only_the_exact_hint() -> None:
    store = gstore()
    store.add("b", "k", gs("1"), 1.0)
    (sent,) = store.pending("b")
    store.add("b", "k", gs("2"), 2.0)  # a newer write merges while `sent` is in flight
    assert not store.remove(sent)  # the older delivery must not delete the newer state
    (current,) = store.pending("b")
    assert current.state == gs("1", "2")
    assert store.remove(current)
    assert not store.remove(current)  # a duplicate ack is harmless
    assert not store.remove(Hint("nobody", "k", gs(), 0.0))
    stats = store.stats().get("b")
    assert stats is not None
    assert (stats.hints, stats.delivered, stats.needs_repair) == (0, 1, False)
    store._check_invariants()


def test_a_hint_read_from_the_store_compares_by_its_stored_bytes_only_while_unchanged() -> None:
    store = gstore()
    store.add("b", "k", gs("1"), 1.0)
    (read,) = store.pending("b")
    assert read._encoded() == codec.dumps(read.to_dict())
    changed = attrs.evolve(read, state=gs("1", "2"))  # a new hint, not the stored one
    assert changed._encoded() == codec.dumps(changed.to_dict())
    assert not store.remove(changed)
    assert not store.remove(attrs.evolve(read, created_at=2.0))
    assert store.remove(Hint("b", "k", gs("1"), 1.0))  # an equal hint built by hand matches
    store._check_invariants()


class _CountingStorage(MemoryStorage):
    __slots__ = ("writes",)

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write_batch(self, puts: Any = (), deletes: Any = ()) -> None:
        self.writes += 1
        super().write_batch(puts, deletes)


def test_remove_many_deletes_a_batch_in_one_write() -> None:
    storage = _CountingStorage()
    store = gstore(storage)
    for i in range(5):
        store.add("b", f"k{i}", gs(str(i)), float(i))
    store.add("c", "k", gs("c"), 0.0)
    batch = store.pending("b", limit=3) + store.pending("c")
    store.add("b", "k1", gs("newer"), 9.0)  # k1 changes while the batch is in flight
    before = storage.writes
    assert store.remove_many(batch + batch) == 3  # duplicates count once; k1 stays
    assert storage.writes == before + 1
    assert [h.key for h in store.pending("b")] == ["k1", "k3", "k4"]
    # A stale version of k1 before its current version in one call: the current one goes.
    current_k1 = store.pending("b", limit=1)
    assert store.remove_many([batch[1], *current_k1]) == 1
    assert [h.key for h in store.pending("b")] == ["k3", "k4"]
    assert store.count("c") == 0
    assert store.window_closes_at("c") is None  # c's backlog is delivered: its window closed
    assert store.remove_many([]) == 0
    with pytest.raises(TypeError, match=r"hints\[1\]"):
        store.remove_many([batch[0], "k"])  # type: ignore[list-item]
    store._check_invariants()


def test_remove_rejects_wrong_types() -> None:
    store = gstore()
    with pytest.raises(TypeError, match="hint"):
        store.remove(("b", "k"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="state"):
        store.remove(Hint("b", "k", _OtherState(), 0.0))  # type: ignore[arg-type]


# -- repair flag -------------------------------------------------------------------------------


def test_clear_repair_respects_losses_during_the_repair() -> None:
    store = gstore(max_hints_per_target=1)
    store.add("b", "k1", gs(), 0.0)
    assert not store.add("b", "k2", gs(), 0.0)
    entry = store.stats().get("b")
    assert entry is not None
    lost = entry.lost
    assert lost == 1
    assert not store.add("b", "k3", gs(), 1.0)  # another loss while the repair runs
    assert not store.clear_repair("b", lost=lost)
    assert store.needs_repair() == ["b"]
    assert store.clear_repair("b", lost=lost + 1)
    assert store.needs_repair() == []
    assert store.clear_repair("b")  # idempotent
    with pytest.raises(ValueError, match="lost"):
        store.clear_repair("b", lost=99)
    with pytest.raises(TypeError, match="lost"):
        store.clear_repair("b", lost=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        store.clear_repair("zz")
    store._check_invariants()


def test_forget_discards_a_target() -> None:
    store = gstore()
    for i in range(3):
        store.add("b", f"k{i}", gs(), 0.0)
    store.add("c", "k", gs(), 0.0)
    assert store.forget("b") == 3
    assert store.targets() == ["c"]
    assert store.stats().get("b") is None
    store._check_invariants()
    with pytest.raises(ValueError, match="unknown"):
        store.forget("b")


# -- bad input changes nothing -----------------------------------------------------------------


@attrs.frozen
class _OtherState:
    def sync(self, other: _OtherState) -> _OtherState:
        return self

    def descends(self, other: _OtherState) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("", "k", gs(), 1.0), ValueError, "target"),
        ((None, "k", gs(), 1.0), TypeError, "target"),
        (("b", 1, gs(), 1.0), TypeError, "key"),
        (("b", "\udfff", gs(), 1.0), ValueError, "key"),
        (("b", "k", frozenset("a"), 1.0), TypeError, "state"),
        (("b", "k", _OtherState(), 1.0), TypeError, "state"),
        (("b", "k", gs(), -1.0), ValueError, "now"),
        (("b", "k", gs(), math.nan), ValueError, "now"),
        (("b", "k", gs(), math.inf), ValueError, "now"),
        (("b", "k", gs(), None), TypeError, "now"),
    ],
)
def test_bad_add_changes_nothing(args: tuple[Any, ...], error: type[Exception], match: str) -> None:
    store = gstore()
    store.add("b", "k", gs("1"), 0.0)
    before, stats = snapshot(store), store.stats()
    with pytest.raises(error, match=match):
        store.add(*args)
    assert snapshot(store) == before
    assert store.stats() == stats
    store._check_invariants()


def test_bad_queries_raise() -> None:
    store = gstore()
    with pytest.raises(ValueError, match="limit"):
        store.pending("b", limit=0)
    with pytest.raises(TypeError, match="limit"):
        store.pending("b", limit=True)
    with pytest.raises(ValueError, match="target"):
        store.pending("")
    with pytest.raises(ValueError, match="now"):
        store.expire(-1.0)
    with pytest.raises(ValueError, match="target"):
        store.window_closes_at("")


class _FailingStorage(MemoryStorage):
    """A MemoryStorage whose writes can be made to fail."""

    __slots__ = ("fail",)

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def write_batch(self, puts: Any = (), deletes: Any = ()) -> None:
        if self.fail:
            raise StorageError("disk full")
        super().write_batch(puts, deletes)

    def put(self, key: bytes, value: bytes) -> None:
        if self.fail:
            raise StorageError("disk full")
        super().put(key, value)


def test_a_failing_backend_leaves_store_and_counters_unchanged() -> None:
    storage = _FailingStorage()
    store = gstore(storage, max_hints_per_target=1)
    store.add("b", "k", gs("1"), 0.0)
    (hint,) = store.pending("b")
    storage.fail = True
    before, stats = snapshot(store), store.stats()
    attempts: list[Callable[[], object]] = [
        lambda: store.add("b", "k", gs("2"), 1.0),  # merge
        lambda: store.add("b", "k2", gs("2"), 1.0),  # drop (cap)
        lambda: store.add("c", "k", gs("2"), 1.0),  # new target
        lambda: store.remove(hint),
        lambda: store.expire(1e9),
    ]
    for attempt in attempts:
        with pytest.raises(StorageError):
            attempt()
        assert snapshot(store) == before
        assert store.stats() == stats
        store._check_invariants()


# -- persistence -------------------------------------------------------------------------------


def test_sqlite_store_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "hints.db"
    with SQLiteStorage(path, synchronous="NORMAL") as storage:
        store = gstore(storage, max_hints_per_target=2, ttl=100.0)
        store.add("b", "k1", gs("1"), 1.0)
        store.add("b", b"k2", gs("2"), 50.0)
        assert not store.add("b", "k3", gs("3"), 3.0)
        store.remove(store.pending("b")[0])
        store.add("c", "k", gs("c"), 4.0)
        store.expire(104.0)
        stats = store.stats()
    with SQLiteStorage(path) as storage:
        reopened = gstore(storage, max_hints_per_target=2, ttl=100.0)
        reopened._check_invariants()
        assert reopened.stats() == stats
        assert [h.key for h in reopened.pending("b")] == [b"k2"]
        # Sequence numbers continue past what is stored: a new hint sorts after equal-time ones.
        reopened.add("b", "k4", gs("4"), 50.0)
        assert [h.key for h in reopened.pending("b")] == [b"k2", "k4"]
        reopened._check_invariants()


def test_store_shares_storage_with_other_data_under_its_namespace() -> None:
    storage = MemoryStorage()
    storage.put(b"data/cart:alice", b"1 book")
    storage.put(b"zzz", b"after")
    store = gstore(storage, namespace=b"hints/")
    other = gstore(storage, namespace=b"hints2/")
    store.add("b", "k", gs("1"), 0.0)
    other.add("b", "k", gs("2"), 0.0)
    store._check_invariants()
    other._check_invariants()
    assert store.get("b", "k") == Hint("b", "k", gs("1"), 0.0)
    assert other.get("b", "k") == Hint("b", "k", gs("2"), 0.0)
    store.forget("b")
    assert storage.get(b"data/cart:alice") == b"1 book"
    assert other.count("b") == 1


def test_opening_refuses_foreign_or_inconsistent_records() -> None:
    storage = MemoryStorage()
    storage.put(b"hints/X", b"?")
    with pytest.raises(StorageError, match="not a hint store record"):
        gstore(storage)
    storage = MemoryStorage()
    store = gstore(storage)
    store.add("b", "k", gs(), 0.0)
    index = [k for k, _ in storage.scan(b"hints/I", b"hints/J")]
    storage.delete(index[0])
    with pytest.raises(StorageError, match="index"):
        gstore(storage)
    storage = MemoryStorage()
    gstore(storage).add("b", "k", gs(), 0.0)
    storage.put(b"hints/M\x00\x01b", b"{}")
    with pytest.raises(StorageError, match="corrupt"):
        gstore(storage)


def test_stats_totals() -> None:
    store = gstore(max_hints_per_target=1, ttl=10.0, window=100.0)
    store.add("a", "k", gs(), 0.0)
    store.add("b", "k", gs(), 5.0)
    store.add("b", "k2", gs(), 5.0)
    store.remove(store.pending("a")[0])
    store.expire(15.0)
    stats = store.stats()
    assert [t.target for t in stats.targets] == ["a", "b"]
    assert (stats.hints, stats.bytes, stats.dropped, stats.expired, stats.delivered) == (
        0,
        0,
        1,
        1,
        1,
    )
    assert stats.needs_repair == ("b",)
    b = stats.get("b")
    assert b is not None
    assert b.lost == 2
    assert b.window_start == 5.0
    assert b.oldest is None
    assert stats.get("zz") is None
    assert "HintStore" in repr(store)


# -- the default state: DVVSet -----------------------------------------------------------------


def test_default_state_type_is_dvvset() -> None:
    store = HintStore()
    assert store.state_type is DVVSet
    first = DVVSet[bytes]().update(b"1 book", "a")
    assert store.add("b", "cart:alice", first, 1.0)
    (hint,) = store.pending("b")
    assert hint.state == first
    assert Hint.from_dict(codec.loads(codec.dumps(hint.to_dict()))) == hint
    with pytest.raises(TypeError, match="DVVSet"):
        store.add("b", "cart:alice", gs("x"), 2.0)  # type: ignore[arg-type]
    store._check_invariants()


def test_dvv_hint_keeps_concurrent_writes_and_drops_superseded_ones() -> None:
    store = HintStore()
    v1 = DVVSet[bytes]().update(b"v1", "a")
    assert store.add("b", "k", v1, 1.0)
    concurrent = DVVSet[bytes]().update(b"v2", "c")  # a blind write elsewhere
    assert store.add("b", "k", concurrent, 2.0)
    hint = store.get("b", "k")
    assert hint is not None
    assert hint.state.values == [b"v1", b"v2"]  # siblings: both survive in the hint
    # A client read both siblings and wrote a resolution: the hint shrinks back to one value.
    resolved = hint.state.update(b"v1+v2", "a", hint.state.context)
    assert store.add("b", "k", resolved, 3.0)
    merged = store.get("b", "k")
    assert merged is not None
    assert merged.state.values == [b"v1+v2"]
    assert merged.state.descends(v1)
    assert merged.state.descends(concurrent)
    assert merged.created_at == 1.0
    assert merged.state.context == VectorClock({"a": 2, "c": 1})
    store._check_invariants()


@given(replicas=dvv_replicas(4))
def test_merged_dvv_hint_descends_every_state_added(replicas: tuple[DVVSet[bytes], ...]) -> None:
    store = HintStore(ttl=1e9)
    for i, state in enumerate(replicas):
        assert store.add("b", "k", state, float(i))
    hint = store.get("b", "k")
    assert hint is not None
    for state in replicas:
        assert hint.state.descends(state)
    store._check_invariants()


@given(hint=hints())
def test_hints_strategy_gives_valid_round_tripping_hints(hint: Hint[Any]) -> None:
    assert isinstance(hint.state, DVVSet)
    assert Hint.from_dict(codec.loads(codec.dumps(hint.to_dict()))) == hint
    store = HintStore(ttl=1e10)
    assert store.add(hint.target, hint.key, hint.state, hint.created_at)
    assert store.pending(hint.target) == [hint]


@settings(max_examples=30)
@given(hint=hints(dvv_sets(), targets=st.just("b")), data=st.data())
def test_hints_strategy_options(hint: Hint[Any], data: st.DataObject) -> None:
    assert hint.target == "b"
    other = data.draw(hints(gsets))
    assert isinstance(other.state, GSet)
    assert data.draw(st.from_type(Hint)).target


# -- stateful: the store beside a model -----------------------------------------------------------


@attrs.define
class _ModelTarget:
    hints: dict[str | bytes, tuple[Any, float, int]] = attrs.Factory(dict)
    dropped: int = 0
    expired: int = 0
    delivered: int = 0
    needs_repair: bool = False
    window_start: float | None = None

    def nbytes(self, target: str) -> int:
        return sum(
            size_of(Hint(target, key, state, created))
            for key, (state, created, _) in self.hints.items()
        )


_TARGETS = ["a", "ab", "b"]
_KEYS: list[str | bytes] = ["k1", "k2", b"k1", "k3", ""]


class HintStoreMachine(RuleBasedStateMachine):
    """HintStore beside a dict model, on memory or SQLite storage, with reopen."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="dynamo-core-hints-"))
        self.model: dict[str, _ModelTarget] = {}
        self.now = 0.0
        self.seq = 0
        self.sent: list[Hint[Any]] = []

    @initialize(
        kind=st.sampled_from(["gset", "dvv"]),
        pool=dvv_replicas(5, max_steps=14),
        backend=st.sampled_from(["memory", "sqlite"]),
        max_hints=st.integers(1, 4),
        max_bytes=st.integers(80, 600),
        ttl=st.sampled_from([5.0, 20.0, 60.0]),
        window=st.sampled_from([None, 3.0, 15.0, 100.0]),
    )
    def open(
        self,
        kind: str,
        pool: tuple[DVVSet[bytes], ...],
        backend: str,
        max_hints: int,
        max_bytes: int,
        ttl: float,
        window: float | None,
    ) -> None:
        # DVVSet states come from one shared history, so they never give one dot two values.
        self.states: st.SearchStrategy[Any] = gsets if kind == "gset" else st.sampled_from(pool)
        self.backend = backend
        self.options: dict[str, Any] = {
            "state_type": GSet if kind == "gset" else None,
            "max_hints_per_target": max_hints,
            "max_bytes_per_target": max_bytes,
            "ttl": ttl,
            "window": window,
        }
        self.storage: Any = (
            MemoryStorage()
            if backend == "memory"
            else SQLiteStorage(self.directory / "hints.db", synchronous="NORMAL")
        )
        self.store: HintStore[Any] = HintStore(self.storage, **self.options)

    def _entry(self, target: str) -> _ModelTarget:
        return self.model.setdefault(target, _ModelTarget())

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 4.0, 10.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(node=st.sampled_from(_TARGETS), key=st.sampled_from(_KEYS), data=st.data())
    def add(self, node: str, key: str | bytes, data: st.DataObject) -> None:
        target = node
        state = data.draw(self.states)
        window = self.store.window
        entry = self.model.get(target) or _ModelTarget()
        expected: bool
        if entry.window_start is not None and self.now >= entry.window_start + window:
            expected = False
        elif key in entry.hints:
            old, created, seq = entry.hints[key]
            merged = old.sync(state)
            grown = size_of(Hint(target, key, merged, created)) - size_of(
                Hint(target, key, old, created)
            )
            if merged == old:
                expected = True
            elif entry.nbytes(target) + grown > self.store.max_bytes_per_target:
                expected = False
            else:
                entry.hints[key] = (merged, created, seq)
                expected = True
        else:
            size = size_of(Hint(target, key, state, self.now))
            if (
                len(entry.hints) + 1 > self.store.max_hints_per_target
                or entry.nbytes(target) + size > self.store.max_bytes_per_target
            ):
                expected = False
            else:
                entry.hints[key] = (state, self.now, self.seq)
                self.seq += 1
                if entry.window_start is None:
                    entry.window_start = self.now
                expected = True
        if not expected:
            entry.dropped += 1
            entry.needs_repair = True
        self.model[target] = entry
        assert self.store.add(target, key, state, self.now) is expected

    @rule(node=st.sampled_from(_TARGETS), limit=st.none() | st.integers(1, 3))
    def read_pending(self, node: str, limit: int | None) -> None:
        target = node
        entry = self.model.get(target, _ModelTarget())
        ordered = sorted(entry.hints.items(), key=lambda item: (item[1][1], item[1][2]))
        expected = [Hint(target, key, state, created) for key, (state, created, _) in ordered]
        got = self.store.pending(target, limit)
        assert got == expected[:limit]
        self.sent.extend(got)
        del self.sent[:-8]

    def _model_remove(self, hint: Hint[Any]) -> bool:
        entry = self.model.get(hint.target)
        current = None if entry is None else entry.hints.get(hint.key)
        expected = current is not None and (current[0], current[1]) == (hint.state, hint.created_at)
        if expected:
            assert entry is not None
            del entry.hints[hint.key]
            entry.delivered += 1
            if not entry.hints:
                entry.window_start = None
        return expected

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        hint = data.draw(st.sampled_from(self.sent))
        expected = self._model_remove(hint)
        assert self.store.remove(hint) is expected

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def remove_many(self, data: st.DataObject) -> None:
        batch = data.draw(st.lists(st.sampled_from(self.sent), max_size=6))
        expected = sum(self._model_remove(hint) for hint in batch)
        assert self.store.remove_many(batch) == expected

    @rule()
    def expire(self) -> None:
        ttl = self.store.ttl
        count = 0
        for entry in self.model.values():
            gone = [k for k, (_, created, _) in entry.hints.items() if created + ttl <= self.now]
            for key in gone:
                del entry.hints[key]
            if gone:
                entry.expired += len(gone)
                entry.needs_repair = True
            count += len(gone)
        assert self.store.expire(self.now) == count

    @rule(node=st.sampled_from(_TARGETS), exact=st.booleans())
    def clear_repair(self, node: str, exact: bool) -> None:
        target = node
        entry = self.model.get(target)
        if entry is None:
            with pytest.raises(ValueError, match="unknown"):
                self.store.clear_repair(target)
            return
        lost = entry.dropped + entry.expired
        if exact or lost == 0:
            assert self.store.clear_repair(target, lost=lost)
            entry.needs_repair = False
        else:
            assert not self.store.clear_repair(target, lost=lost - 1)

    @rule(node=st.sampled_from(_TARGETS))
    def reset_window(self, node: str) -> None:
        target = node
        entry = self.model.get(target)
        if entry is None:
            with pytest.raises(ValueError, match="unknown"):
                self.store.reset_window(target)
        elif entry.hints:
            with pytest.raises(ValueError, match="pending"):
                self.store.reset_window(target)
        else:
            self.store.reset_window(target)
            entry.window_start = None

    @rule(node=st.sampled_from(_TARGETS))
    def forget(self, node: str) -> None:
        target = node
        entry = self.model.pop(target, None)
        if entry is None:
            with pytest.raises(ValueError, match="unknown"):
                self.store.forget(target)
        else:
            assert self.store.forget(target) == len(entry.hints)

    @rule()
    def reopen(self) -> None:
        if self.backend == "sqlite":
            self.storage.close()
            self.storage = SQLiteStorage(self.directory / "hints.db", synchronous="NORMAL")
        self.store = HintStore(self.storage, **self.options)

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "store"):
            return
        self.store._check_invariants()
        known = {t: e for t, e in self.model.items() if e != _ModelTarget()}
        stats = self.store.stats()
        assert [t.target for t in stats.targets] == sorted(known)
        for target, entry in known.items():
            got = stats.get(target)
            assert got is not None
            assert got.hints == len(entry.hints)
            assert got.bytes == entry.nbytes(target)
            assert (got.dropped, got.expired, got.delivered) == (
                entry.dropped,
                entry.expired,
                entry.delivered,
            )
            assert got.needs_repair == entry.needs_repair
            assert got.window_start == entry.window_start
            oldest = min((created for _, created, _ in entry.hints.values()), default=None)
            assert got.oldest == oldest
        assert self.store.targets() == sorted(t for t, e in known.items() if e.hints)

    def teardown(self) -> None:
        if hasattr(self, "storage"):
            self.storage.close()
        shutil.rmtree(self.directory, ignore_errors=True)


TestHintStoreMachine = HintStoreMachine.TestCase
TestHintStoreMachine.settings = settings(stateful_step_count=30, deadline=None)


# -- a long outage under write load ------------------------------------------------------------


def test_long_outage_stays_within_caps_and_counts_every_drop() -> None:
    """A target down for many TTLs, written to all the time: bounded store, every drop counted."""
    ttl = 100.0
    store = gstore(max_hints_per_target=50, max_bytes_per_target=6_000, ttl=ttl)
    accepted = refused = 0
    now = 0.0
    for step in range(6_000):  # 20 TTLs of writes, one every third of a second
        now = step / 3.0
        target = "down" if step % 4 else "flaky"
        key = f"k{(step * 7919) % 400}"
        if store.add(target, key, gs(f"w{step}"), now):
            accepted += 1
        else:
            refused += 1
        if step % 150 == 0:
            store.expire(now)
            for entry in store.stats().targets:
                assert entry.hints <= 50
                assert entry.bytes <= 6_000
        if step % 600 == 0 and store.count("flaky"):  # flaky comes back briefly, then leaves
            for hint in store.pending("flaky", limit=5):
                store.remove(hint)
    store._check_invariants()
    stats = store.stats()
    assert stats.dropped == refused
    assert refused > accepted  # the window closed long ago: nearly everything is dropped
    assert stats.needs_repair == ("down", "flaky")
    down = stats.get("down")
    assert down is not None
    # The window opened with the first hint and flapping never reset it.
    assert down.window_start == 1 / 3.0
    # Only writes inside the first window could be accepted.
    window_writes = sum(1 for step in range(6_000) if step % 4 and step / 3.0 < 1 / 3.0 + ttl)
    assert down.dropped >= 4_500 - window_writes
    # Everything the store accepted is accounted for: pending, expired or delivered.
    new_hints = sum(t.hints + t.expired + t.delivered for t in stats.targets)
    assert new_hints <= accepted
    assert stats.hints <= 2 * 50
    store.expire(now + ttl)
    assert len(store) == 0
    assert store.stats().expired + store.stats().delivered == new_hints
