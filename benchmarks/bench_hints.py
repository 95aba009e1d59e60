"""Hinted handoff: HintStore.add and pending + remove beside the raw storage floor.

There is no Python peer for a hint store; the references are the storage work any durable hint
store must do, with no abstraction:

* **encode + put floor**: encode the hint (``codec.dumps`` of the same envelope) and write it
  with one ``Storage.put`` under a flat key — no index, no counters, no caps.
* **raw put floor**: the same ``put`` of pre-encoded bytes — the cost of the storage alone.
* for draining, **scan + delete floor**: read the next 100 records with one ordered ``scan``
  and delete each with one ``Storage.delete`` (raw per-hint removal), and
  **scan + batch delete floor**: the same with one ``write_batch`` for the 100 deletes.

Ours: ``HintStore.add`` of a new key (validation, one read for the merge check, one atomic
``write_batch`` of the hint, its index entry and — for the first hint — the counters); an
``add`` that merges into an existing hint (read, decode, ``sync``, encode, write); and
``pending(100)`` followed by ``remove_many`` (one transaction per acknowledged batch, what
`Handoff` does) or by 100 single ``remove`` calls. States are `DVVSet` with one 100-byte value.
SQLite runs with ``synchronous="NORMAL"``; with ``"FULL"`` every row pays an fsync instead.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Case, Group
from dynamo_core import DVVSet, Handoff, HintStore, MemoryStorage, SendHints, SQLiteStorage, codec
from dynamo_core.interfaces import Storage

_VALUE = b"v" * 100
_STATE = DVVSet[bytes]().update(_VALUE, "coordinator")
_BATCH = 100


def _encoded(i: int) -> bytes:
    body: dict[str, codec.JSONValue] = {
        "target": "node-b",
        "key": f"key:{i:09d}",
        "state": _STATE.to_dict(),
        "created_at": 1.0,
    }
    return codec.dumps(codec.envelope("hint", body))


def _store(storage: Storage) -> HintStore[DVVSet[bytes]]:
    return HintStore(storage, max_hints_per_target=10**9, max_bytes_per_target=2**62, ttl=1e12)


def _add_group(label: str, make: Callable[[str], Storage]) -> Group:
    counter = itertools.count()
    store = _store(make("add"))
    floor = make("floor")
    raw = make("raw")
    pre = _encoded(0)

    def add_new() -> None:
        i = next(counter)
        store.add("node-b", f"key:{i:09d}", _STATE, 1.0)

    def encode_put() -> None:
        i = next(counter)
        floor.put(b"hint/node-b/key:%09d" % i, _encoded(i))

    def raw_put() -> None:
        raw.put(b"hint/node-b/key:%09d" % next(counter), pre)

    return Group(
        f"add, new keys ({label})",
        [
            Case("HintStore.add", add_new),
            Case("encode + put floor", encode_put),
            Case("raw put floor", raw_put),
        ],
        compare=("encode + put floor", "raw put floor"),
    )


def _merge_group(label: str, make: Callable[[str], Storage], keys: int) -> Group:
    store = _store(make("merge"))
    floor = make("merge-floor")
    states = {}
    for i in range(keys):
        states[i] = DVVSet[bytes]().update(_VALUE, "coordinator")
        store.add("node-b", f"key:{i:09d}", states[i], 1.0)
    cycle = itertools.cycle(range(keys)).__next__

    def merge() -> None:
        # A client read the key and writes it again: the new state supersedes the hinted one.
        i = cycle()
        states[i] = states[i].update(_VALUE, "coordinator", states[i].context)
        store.add("node-b", f"key:{i:09d}", states[i], 2.0)

    def floor_merge() -> None:
        i = cycle()
        states[i] = states[i].update(_VALUE, "coordinator", states[i].context)
        key = b"hint/node-b/key:%09d" % i
        old = floor.get(key)
        merged = states[i] if old is None else DVVSet.from_dict(codec.loads(old)).sync(states[i])
        floor.put(key, codec.dumps(merged.to_dict()))

    return Group(
        f"add merging into an existing hint, {keys:,} keys ({label})",
        [Case("HintStore.add (merge)", merge), Case("get + sync + put floor", floor_merge)],
        compare=("get + sync + put floor",),
    )


def _drain_group(label: str, make: Callable[[str], Storage], backlog: int) -> Group:
    batched = _store(make("drain-batched"))
    single = _store(make("drain-single"))
    handed = _store(make("drain-handoff"))
    floor = make("drain-floor")
    floor_batch = make("drain-floor-batch")
    pre = _encoded(0)

    def fill() -> None:
        for store in (batched, single, handed):
            if len(store) < _BATCH:
                for i in range(backlog):
                    store.add("node-b", f"key:{i:09d}", _STATE, 1.0)
        for raw in (floor, floor_batch):
            if next(iter(raw.scan(b"hint/", b"hint0")), None) is None:
                raw.write_batch((b"hint/node-b/key:%09d" % i, pre) for i in range(backlog))

    fill()
    handoff = Handoff(handed, max_batch_hints=_BATCH, max_batch_bytes=2**30, rate=1e15)
    clock = itertools.count(1)
    handoff.target_up("node-b", 0.0)

    def drain_batched() -> None:
        if len(batched) < _BATCH:
            fill()
        batched.remove_many(batched.pending("node-b", _BATCH))

    def drain_single() -> None:
        if len(single) < _BATCH:
            fill()
        for hint in single.pending("node-b", _BATCH):
            single.remove(hint)

    def drain_handoff() -> None:
        if len(handed) < 2 * _BATCH:
            fill()
        now = float(next(clock))
        batch_id = handoff.in_flight("node-b")
        effects = handoff.on_timer(now) if batch_id is None else []
        for effect in effects:
            if isinstance(effect, SendHints):
                batch_id = effect.batch.batch_id
        assert batch_id is not None
        handoff.on_ack("node-b", batch_id, now)

    def drain_floor() -> None:
        rows = list(itertools.islice(floor.scan(b"hint/", b"hint0"), _BATCH))
        if len(rows) < _BATCH:
            fill()
        for key, _ in rows:
            floor.delete(key)

    def drain_floor_batch() -> None:
        rows = list(itertools.islice(floor_batch.scan(b"hint/", b"hint0"), _BATCH))
        if len(rows) < _BATCH:
            fill()
        floor_batch.write_batch((), [key for key, _ in rows])

    return Group(
        f"pending({_BATCH}) + remove, per hint ({label})",
        [
            Case("pending + remove_many", drain_batched, ops=_BATCH),
            Case("pending + remove x100", drain_single, ops=_BATCH),
            Case("Handoff send + ack", drain_handoff, ops=_BATCH),
            Case("scan + delete floor", drain_floor, ops=_BATCH),
            Case("scan + batch delete floor", drain_floor_batch, ops=_BATCH),
        ],
        compare=("scan + delete floor", "scan + batch delete floor"),
    )


def groups(quick: bool) -> list[Group]:
    directory = Path(tempfile.mkdtemp(prefix="dynamo-core-bench-hints-"))

    def memory(_: str) -> Storage:
        return MemoryStorage()

    def sqlite(name: str) -> Storage:
        return SQLiteStorage(directory / f"{name}.db", synchronous="NORMAL")

    backlog = 2_000 if quick else 20_000
    return [
        _add_group("MemoryStorage", memory),
        _merge_group("MemoryStorage", memory, 1_000),
        _drain_group("MemoryStorage", memory, backlog),
        _add_group("SQLiteStorage", sqlite),
        _merge_group("SQLiteStorage", sqlite, 1_000),
        _drain_group("SQLiteStorage", sqlite, backlog // 4),
    ]


def report(quick: bool) -> str:
    """Sizes: what one hint costs in encoded bytes and in storage records."""
    storage = MemoryStorage()
    store = _store(storage)
    store.add("node-b", "key:000000001", _STATE, 1.0)
    (hint,) = store.pending("node-b")
    encoded = len(codec.dumps(hint.to_dict()))
    records = sum(len(k) + len(v) for k, v in storage.scan())
    return (
        "### Size of one hint (DVVSet, one 100-byte value)\n\n"
        f"| encoded hint (counted against the byte cap) | all records incl. index and counters |\n"
        f"| --- | --- |\n| {encoded} B | {records} B |"
    )
