"""SIGKILL a writer mid-write: every acknowledged write survives and the file opens cleanly.

A child process writes unique keys through SQLiteStorage (single puts and batches) and reports
each acknowledged key on a pipe only after the call returned. The parent kills it with SIGKILL at
a random moment, reopens the file, and checks every acknowledged key against its value.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import pytest

from dynamo_core import SQLiteStorage
from dynamo_core.testing import kill_during

WRITER = r"""
import hashlib, sys
from dynamo_core import SQLiteStorage

path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])

def value(key):
    return hashlib.sha256(key).digest() * (1 + key[-1] % 7)

store = SQLiteStorage(path, synchronous=mode)
i = 0
while True:
    if (i + seed) % 3 == 0:
        keys = [b"batch-%08d-%d" % (i, j) for j in range(5)]
        store.write_batch([(k, value(k)) for k in keys])
    else:
        keys = [b"put-%08d" % i]
        store.put(keys[0], value(keys[0]))
    sys.stdout.write("".join(k.decode() + "\n" for k in keys))
    sys.stdout.flush()
    i += 1
"""


def _value(key: bytes) -> bytes:
    return hashlib.sha256(key).digest() * (1 + key[-1] % 7)


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
@pytest.mark.parametrize("seed", range(4))
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, mode: str, seed: int) -> None:
    rng = random.Random(f"{mode}-{seed}")
    path = tmp_path / "crash.db"
    kill_after = rng.randint(1, 200)  # acknowledged writes before the kill
    # Every line is an acknowledged key, including those still in the pipe at the kill.
    lines = kill_during(WRITER, str(path), mode, str(seed), after=kill_after, seed=f"{mode}-{seed}")
    acknowledged = [line.encode() for line in lines]

    with SQLiteStorage(path) as store:
        for key in acknowledged:
            assert store.get(key) == _value(key), f"acknowledged key {key!r} lost or damaged"
        # Whatever else is there is a whole, correctly valued write (batches are atomic).
        stored = dict(store.scan())
        for key, value in stored.items():
            assert value == _value(key)
        batches: dict[bytes, int] = {}
        for key in stored:
            if key.startswith(b"batch-"):
                prefix = key.rsplit(b"-", 1)[0]
                batches[prefix] = batches.get(prefix, 0) + 1
        assert all(count == 5 for count in batches.values()), "a batch was half-applied"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
