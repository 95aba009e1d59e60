"""Two SQLite databases reconciled over a real TCP socket with a Merkle exchange, then repaired.

Run it: ``python examples/sqlite_sync.py``. The last line is a JSON summary.

Two services each keep a SQLite database of records: a value, or a *tombstone* for a deleted key,
each stamped with the wall time of its write (wall time, because the stamp is persisted and
compared on another machine). They drift apart: each side updates, deletes and creates keys the
other never saw. Here the two databases hold a different number of keys, so `depth_for` gives
their trees different depths (11 and 12): the exchange settles on the shallower by itself.

The sync is sans-I/O plus a little glue:

* each side builds a `MerkleTree` from its rows (tombstones included: a delete is data);
* `MerkleExchange` runs on each side under the generic driver `dynamo_core.aio.Driver`; the
  effect handler writes frames to the socket and answers `LoadItems` from SQLite;
* the report names exactly the keys that differ; the initiator fetches the peer's records of
  those keys, keeps the newer of each pair (last writer wins, tombstones included) and sends the
  winners back, so both sides converge;
* a second exchange confirms the roots are equal.

Every byte crosses the socket as a length-prefixed frame, so `bytes_sent` is the real cost, set
beside `full_copy_bytes`, what copying the peer's whole database would have sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from dynamo_core import MerkleExchange, MerkleTree, SQLiteStorage, depth_for, item_digest
from dynamo_core.aio import Driver
from dynamo_core.merkle import (
    Done,
    ExchangeReport,
    ExchangeRole,
    Failed,
    LoadItems,
    Send,
    decode_message,
    encode_message,
)

KEYS = 4_000
rng = random.Random(11)


# -- records: a value or a tombstone, stamped with the wall time of the write ----------------


def record(value: bytes | None, stamp: float) -> bytes:
    """Encode a record; `None` is a tombstone."""
    body = {"at": stamp, "value": None if value is None else value.hex()}
    return json.dumps(body, sort_keys=True).encode()


def stamp_of(data: bytes) -> float:
    at: float = json.loads(data)["at"]
    return at


def newer(a: bytes, b: bytes) -> bytes:
    """Last writer wins; a tie goes to the larger encoding, so both sides choose alike."""
    return max(a, b, key=lambda r: (stamp_of(r), r))


def tree_of(db: SQLiteStorage) -> MerkleTree:
    rows = [(key, item_digest(key, data)) for key, data in db.scan()]
    return MerkleTree.from_items(rows, depth_for(len(rows)))


def build(path: Path, keys: int) -> SQLiteStorage:
    db = SQLiteStorage(path)
    db.write_batch((b"user:%05d" % i, record(b"profile %d" % i, 1_000.0)) for i in range(keys))
    return db


# -- frames: 4-byte length, 1-byte kind, payload ------------------------------------------------


class Wire:
    """A framed, counted connection: Merkle frames and the others go to separate queues."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = 0
        self.merkle: asyncio.Queue[bytes] = asyncio.Queue()
        self.control: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump())

    def send(self, kind: bytes, payload: bytes) -> None:
        """Queue one frame (never blocks)."""
        frame = (len(payload) + 1).to_bytes(4, "big") + kind + payload
        self.sent += len(frame)
        self.writer.write(frame)

    async def _pump(self) -> None:
        while True:
            try:
                size = int.from_bytes(await self.reader.readexactly(4), "big")
            except asyncio.IncompleteReadError:
                return  # the peer closed
            if not 1 <= size <= 64 * 2**20:
                raise ValueError(f"frame of {size} bytes refused")
            body = await self.reader.readexactly(size)
            if body[:1] == b"M":
                self.merkle.put_nowait(body[1:])
            else:
                self.control.put_nowait((body[:1], body[1:]))

    async def receive(self) -> tuple[bytes, bytes]:
        """The next frame that is not part of a Merkle exchange."""
        return await self.control.get()

    def close(self) -> None:
        """Stop reading and close the socket."""
        self.pump.cancel()
        self.writer.close()


def items_of(db: SQLiteStorage) -> list[tuple[bytes, bytes]]:
    """Answer LoadItems: every (key, digest); the exchange keeps the asked segments."""
    return [(key, item_digest(key, data)) for key, data in db.scan()]


async def exchange(side: ExchangeRole, db: SQLiteStorage, wire: Wire) -> ExchangeReport:
    """Run one side of a Merkle exchange over `wire` with the generic driver."""
    core = MerkleExchange(tree_of(db), side)
    reports: list[ExchangeReport] = []

    def handle(effect: Any) -> None:
        match effect:
            case Send(message=message):
                wire.send(b"M", encode_message(message))
            case LoadItems():
                loaded = items_of(db)
                driver.submit(lambda now: core.items_loaded(loaded, now))
            case Done(report=report):
                reports.append(report)
            case Failed(reason=reason):
                raise RuntimeError(f"exchange failed: {reason}")

    async def read() -> None:
        while True:
            message = decode_message(await wire.merkle.get())
            driver.submit(partial(core.receive, message))  # partial: binds this message now

    driver: Driver[Any] = Driver(core, handle)
    reader = asyncio.create_task(read())
    start: Callable[[float], Any] | None = core.start if side is ExchangeRole.INITIATOR else None
    await asyncio.wait_for(driver.run(start, until=lambda: core.finished), 30)
    reader.cancel()
    return reports[0]


# -- the two services --------------------------------------------------------------------------


async def responder(db: SQLiteStorage, reader: Any, writer: Any, sent: list[int]) -> None:
    wire = Wire(reader, writer)
    for _ in range(2):  # the sync, then the check
        await exchange(ExchangeRole.RESPONDER, db, wire)
        kind, payload = await wire.receive()
        if kind == b"F":  # fetch: the records of these keys (None where absent)
            keys = [bytes.fromhex(k) for k in json.loads(payload)]
            found = {k.hex(): (db.get(k) or b"").decode() or None for k in keys}
            wire.send(b"R", json.dumps(found).encode())
            kind, payload = await wire.receive()
        if kind == b"W":  # the winners: write them in one transaction
            winners = json.loads(payload)
            db.write_batch((bytes.fromhex(k), v.encode()) for k, v in winners.items())
            wire.send(b"K", b"")
    await writer.drain()
    wire.close()
    sent.append(wire.sent)


async def initiator(db: SQLiteStorage, port: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wire = Wire(reader, writer)
    report = await exchange(ExchangeRole.INITIATOR, db, wire)
    differing = sorted({*report.missing, *report.remote_missing, *report.different})
    wire.send(b"F", json.dumps([k.hex() for k in differing]).encode())
    kind, payload = await wire.receive()
    assert kind == b"R"
    theirs = {bytes.fromhex(k): (v or "").encode() for k, v in json.loads(payload).items()}
    winners: dict[bytes, bytes] = {}
    for key in differing:
        mine, other = db.get(key), theirs.get(key) or None
        winners[key] = newer(mine, other) if mine and other else (mine or other or b"")
    db.write_batch(winners.items())
    wire.send(b"W", json.dumps({k.hex(): v.decode() for k, v in winners.items()}).encode())
    assert (await wire.receive())[0] == b"K"
    check = await exchange(ExchangeRole.INITIATOR, db, wire)
    wire.send(b"W", b"{}")  # nothing more to write
    assert (await wire.receive())[0] == b"K"
    wire.close()
    tombstones = sum(1 for _, data in db.scan() if json.loads(data)["value"] is None)
    return {
        "compared_at_depth": report.depth,
        "differing": len(differing),
        "repaired": len(winners),
        "tombstones": tombstones,
        "in_sync": check.in_sync,
        "bytes_sent": wire.sent,
    }


async def main(tmp: Path) -> dict[str, Any]:
    a = build(tmp / "a.sqlite3", KEYS - 5)  # depth_for(3995) == 11
    b = build(tmp / "b.sqlite3", KEYS + 200)  # depth_for(4200) == 12
    print(f"a: {KEYS - 5} keys, tree depth {tree_of(a).depth}")
    print(f"b: {KEYS + 200} keys, tree depth {tree_of(b).depth}")
    keys = sorted(k for k, _ in a.scan())
    # Drift: a updates 10 keys, b deletes 6 (tombstones, newer than a's values), and b deletes
    # one key that a updated afterwards (a's write is newer: it must survive).
    for key in rng.sample(keys, 10):
        a.put(key, record(b"edited on a", 2_000.0))
    deleted = rng.sample(keys, 6)
    for key in deleted:
        b.put(key, record(None, 3_000.0))
    revived = keys[0]
    b.put(revived, record(None, 2_500.0))
    a.put(revived, record(b"re-created on a", 2_600.0))

    depths = [tree_of(a).depth, tree_of(b).depth]
    sent: list[int] = []
    server = await asyncio.start_server(lambda r, w: responder(b, r, w, sent), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        summary = await initiator(a, port)
        while not sent:
            await asyncio.sleep(0.01)
    summary["bytes_sent"] += sent[0]  # both directions
    summary["depths"] = depths
    full_copy = sum(len(k) + len(v) for k, v in b.scan())
    summary["full_copy_bytes"] = full_copy
    same = list(a.scan()) == list(b.scan())
    print(f"exchange found {summary['differing']} differing keys at depth {depths[0]}")
    print(f"repaired {summary['repaired']} keys; {summary['tombstones']} tombstones kept")
    print(f"sent {summary['bytes_sent']:,} bytes over TCP; a full copy is {full_copy:,} bytes")
    assert same, "the databases differ after the repair"
    assert json.loads(a.get(revived) or b"{}")["value"] is not None  # the newer write won
    assert all(json.loads(a.get(k) or b"{}")["value"] is None for k in deleted)
    a.close()
    b.close()
    summary["identical"] = same
    return summary


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(main(Path(tmp)))
    print(json.dumps(result, sort_keys=True))
