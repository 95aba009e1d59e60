"""Storage: MemoryStorage beside a plain dict, SQLiteStorage beside raw sqlite3."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
from pathlib import Path

from sortedcontainers import SortedDict

from benchmarks.harness import Case, Group
from dynamo_core import MemoryStorage, SQLiteStorage


def _keys(n: int) -> list[bytes]:
    return [b"key:%08d" % ((i * 2654435761) % (1 << 32)) for i in range(n)]


def _memory_groups(n: int) -> list[Group]:
    keys = _keys(n)
    value = b"v" * 100
    store = MemoryStorage()
    floor: dict[bytes, bytes] = {}
    sorted_floor: SortedDict[bytes, bytes] = SortedDict()
    for key in keys:
        store.put(key, value)
        floor[key] = value
        sorted_floor[key] = value
    cycle_put = itertools.cycle(keys).__next__
    cycle_get = itertools.cycle(keys).__next__
    ordered = sorted(keys)
    lo, hi = ordered[n // 4], ordered[n // 4 + 100]

    return [
        Group(
            f"put, {n:,} keys",
            [
                Case("MemoryStorage.put", lambda: store.put(cycle_put(), value)),
                Case("SortedDict floor", lambda: sorted_floor.__setitem__(cycle_put(), value)),
                Case("dict floor", lambda: floor.__setitem__(cycle_put(), value)),
            ],
            compare=("SortedDict floor", "dict floor"),
        ),
        Group(
            f"get, {n:,} keys",
            [
                Case("MemoryStorage.get", lambda: store.get(cycle_get())),
                Case("dict floor", lambda: floor.get(cycle_get())),
            ],
            compare=("dict floor",),
        ),
        Group(
            f"ordered scan of 100 items, {n:,} keys",
            [
                Case("MemoryStorage.scan", lambda: list(store.scan(lo, hi)), ops=100),
                Case(
                    "SortedDict floor",
                    lambda: [
                        (k, sorted_floor[k]) for k in sorted_floor.irange(lo, hi, (True, False))
                    ],
                    ops=100,
                ),
            ],
            compare=("SortedDict floor",),
        ),
    ]


def _sqlite_groups(n: int, directory: Path) -> list[Group]:
    keys = _keys(n)
    value = b"v" * 100
    store = SQLiteStorage(directory / "ours.db", synchronous="NORMAL")
    raw = sqlite3.connect(directory / "raw.db", isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID")
    store.write_batch((key, value) for key in keys)
    raw.execute("BEGIN")
    raw.executemany("INSERT INTO kv VALUES (?, ?)", ((key, value) for key in keys))
    raw.execute("COMMIT")
    cycle_put = itertools.cycle(keys).__next__
    cycle_get = itertools.cycle(keys).__next__
    ordered = sorted(keys)
    lo, hi = ordered[n // 4], ordered[n // 4 + 100]

    def raw_put() -> None:
        raw.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (cycle_put(), value))

    def raw_get() -> object:
        return raw.execute("SELECT v FROM kv WHERE k = ?", (cycle_get(),)).fetchone()

    def raw_scan() -> object:
        return raw.execute(
            "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (lo, hi)
        ).fetchall()

    return [
        Group(
            "put (synchronous=NORMAL, one transaction each)",
            [
                Case("SQLiteStorage.put", lambda: store.put(cycle_put(), value)),
                Case("raw sqlite3", raw_put),
            ],
            compare=("raw sqlite3",),
        ),
        Group(
            f"get, {n:,} keys",
            [
                Case("SQLiteStorage.get", lambda: store.get(cycle_get())),
                Case("raw sqlite3", raw_get),
            ],
            compare=("raw sqlite3",),
        ),
        Group(
            "ordered scan of 100 items",
            [
                Case("SQLiteStorage.scan", lambda: list(store.scan(lo, hi)), ops=100),
                Case("raw sqlite3", raw_scan, ops=100),
            ],
            compare=("raw sqlite3",),
        ),
    ]


def groups(quick: bool) -> list[Group]:
    n = 10_000 if quick else 100_000
    directory = Path(tempfile.mkdtemp(prefix="dynamo-core-bench-"))
    return _memory_groups(n) + _sqlite_groups(n // 10, directory)
