"""SIGKILL a process that adds and delivers hints: every acknowledged add survives, counters too.

A child process runs a HintStore with its default state type (`DVVSet`) on SQLiteStorage: it adds
hints to three targets, with a cap small enough that some adds are dropped, and now and then
delivers the oldest hint of a target. It reports each operation on a pipe only after the call
returned. The parent kills it with SIGKILL at a random moment, reopens the store and checks it
against the acknowledged operations: every acknowledged write is in its hint (unless an
acknowledged delivery removed it), the counters are exact up to the one operation the kill may
have interrupted, and the store and the SQLite file are consistent.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from dynamo_core import DVVSet, SQLiteStorage
from dynamo_core.hints import HintStore
from dynamo_core.testing import kill_during

# Each write is a blind write by its own actor, so the hint for a key collects every write to it
# as a sibling: the values a hint holds are exactly the writes merged into it.
WRITER = r"""
import sys
from dynamo_core import DVVSet, SQLiteStorage
from dynamo_core.hints import HintStore

path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = HintStore(SQLiteStorage(path, synchronous=mode), max_hints_per_target=20, ttl=1e9)
targets = ["b", "c", "dd"]
out = sys.stdout
i = 0
while True:
    target = targets[(i * 7 + seed) % 3]
    if i % 9 == 4 and store.count(target):
        (hint,) = store.pending(target, limit=1)
        out.write(f"r {target} {hint.key}\n")
        out.flush()
        ok = store.remove(hint)
        out.write(f"R {target} {hint.key} {int(ok)}\n")
    else:
        key = f"k{(i * 31 + seed) % 29}"
        out.write(f"a {target} {key} d{i}\n")
        out.flush()
        ok = store.add(target, key, DVVSet().update(b"d%d" % i, f"w{i}"), float(i))
        out.write(f"A {target} {key} d{i} {int(ok)}\n")
    out.flush()
    i += 1
"""


def _values(state: DVVSet[bytes]) -> set[str]:
    return {value.decode() for value in state.values}


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
@pytest.mark.parametrize("seed", range(3))
def test_acknowledged_hints_survive_sigkill(tmp_path: Path, mode: str, seed: int) -> None:
    rng = random.Random(f"hints-{mode}-{seed}")
    path = tmp_path / "hints.db"
    kill_after = rng.randint(20, 300)  # acknowledged operations before the kill
    lines = kill_during(
        WRITER,
        str(path),
        mode,
        str(seed),
        after=kill_after,
        seed=f"hints-{mode}-{seed}",
        acknowledges=lambda line: line[0].isupper(),
        jitter=0.01,
    )

    # Replay the acknowledged operations into a model.
    must: dict[tuple[str, str], set[str]] = {}  # writes acknowledged since the key's last delivery
    attempted: dict[tuple[str, str], set[str]] = {}
    dropped: dict[str, int] = {}
    delivered: dict[str, int] = {}
    started: list[str] | None = None  # the operation the kill may have interrupted
    for line in lines:
        op = line.split(" ")
        if op[0] in ("a", "r"):
            started = op
            if op[0] == "a":
                attempted.setdefault((op[1], op[2]), set()).add(op[3])
            continue
        started = None
        target, key = op[1], op[2]
        if op[0] == "A":
            if op[4] == "1":
                must.setdefault((target, key), set()).add(op[3])
            else:
                dropped[target] = dropped.get(target, 0) + 1
        elif op[3] == "1":  # an acknowledged delivery removed everything the key had
            must.pop((target, key), None)
            delivered[target] = delivered.get(target, 0) + 1

    with SQLiteStorage(path) as storage:
        store = HintStore(storage, max_hints_per_target=20, ttl=1e9)
        store._check_invariants()
        stats = store.stats()
        for target in ("b", "c", "dd"):
            entry = stats.get(target)
            got_dropped = entry.dropped if entry else 0
            got_delivered = entry.delivered if entry else 0
            in_flight_add = started is not None and started[0] == "a" and started[1] == target
            in_flight_remove = started is not None and started[0] == "r" and started[1] == target
            assert dropped.get(target, 0) <= got_dropped <= dropped.get(target, 0) + in_flight_add
            assert (
                delivered.get(target, 0)
                <= got_delivered
                <= delivered.get(target, 0) + in_flight_remove
            )
            for pending in store.pending(target):
                assert isinstance(pending.key, str)
                assert _values(pending.state) <= attempted[(target, pending.key)], "never written"
        for (target, key), writes in must.items():
            hint = store.get(target, key)
            if hint is None:
                assert started == ["r", target, key], f"acknowledged hints for {target}/{key} lost"
                continue
            assert _values(hint.state) >= writes, f"acknowledged writes to {target}/{key} lost"
        # The reopened store keeps working.
        room = store.count("b") < 20
        assert store.add("b", "after-crash", DVVSet[bytes]().update(b"x", "z"), 1e6) is room
        store._check_invariants()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
