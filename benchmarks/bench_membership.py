"""Membership: range-stream throughput on a join, beside bare scan-and-copy floors.

No Python peer streams token ranges between replicas (uhashring and friends only compute
placement), so the comparison is with two floors doing the same data movement inlined: a bare
``scan`` + ``put`` copy of the raw records (no merge, no cursor, no messages), and the same scan
with the decode + ``sync`` + encode + one atomic batch per chunk that a safe stream must do.
"ours" is the real path: three source nodes answer ``StreamPull`` messages from storage, and
the joining node's ``RangeStream``s merge the batches and persist their cursors atomically,
until every transfer of the ring version is complete.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Case, Group
from dynamo_core import DVVSet, HashRing, MemoryStorage, Node, NodeConfig, codec
from dynamo_core.membership import Change, Membership, VersionRecord
from dynamo_core.node import Send

CONFIG = NodeConfig(stream_batch_bytes=64 * 1024, stream_rate=1e12, gossip_interval=1e6)
_MEMBERSHIP = b"m/membership"


def _setup(n: int) -> tuple[VersionRecord, dict[str, MemoryStorage], int]:
    ring = HashRing(3, partitions=256)
    for name in ("a", "b", "c", "d"):
        ring.add_node(name)
    claimant = Membership("a", VersionRecord(0, ring), min_members=3)
    claimant.request(Change("bench/0/1", "join", "e"))
    record = claimant.mint()
    assert record is not None
    storages = {}
    for name in ("a", "b", "c", "d"):
        storage = MemoryStorage()
        state = Membership(name, record, min_members=3)
        storage.put(_MEMBERSHIP, codec.dumps(state.to_dict()))
        storages[name] = storage
    loader = {name: Node(name, ring, storage=storages[name], config=CONFIG) for name in storages}
    for i in range(n):
        key = b"user:%08d" % i
        value = DVVSet[bytes]().update(b"v" * 100, "w#1")
        for name in record.previous.preference_list(key) if record.previous else ():
            loader[name]._node.replica.merge(key, value)
    moved = sum(1 for i in range(n) if "e" in record.ring.preference_list(b"user:%08d" % i))
    return record, storages, moved


def _join(record: VersionRecord, sources: dict[str, Node]) -> int:
    storage = MemoryStorage()
    storage.put(_MEMBERSHIP, codec.dumps(Membership("e", record, min_members=3).to_dict()))
    target = Node("e", record.ring, storage=storage, config=CONFIG)
    queue: list[tuple[str, Send]] = [("e", e) for e in target.on_timer(0.0) if isinstance(e, Send)]
    while queue:
        sender, send = queue.pop()
        receiver = target if send.target == "e" else sources.get(send.target)
        if receiver is None:
            continue
        out: list[Any] = receiver.receive(sender, send.message, 0.0)
        queue.extend((send.target, e) for e in out if isinstance(e, Send))
        if not queue and target.busy():
            queue.extend(("e", e) for e in target.on_timer(1e9) if isinstance(e, Send))
    assert target.membership.settled or not target.membership.pending_transfers
    return len(target.keys())


def _floors(record: VersionRecord, storages: dict[str, MemoryStorage]) -> tuple[Any, Any]:
    plan = [t for t in record.plan if t.target == "e"]

    def bounds(t: Any) -> list[tuple[bytes, bytes]]:
        out = []
        for piece in t.range.pieces():
            lo = b"d/" + piece.start.to_bytes(8, "big")
            hi = b"d0" if piece.end == 2**64 else b"d/" + piece.end.to_bytes(8, "big")
            out.append((lo, hi))
        return out

    def copy() -> int:
        dst = MemoryStorage()
        count = 0
        for t in plan:
            src = storages[t.source]
            for lo, hi in bounds(t):
                for key, raw in src.scan(lo, hi):
                    dst.put(key, raw)
                    count += 1
        return count

    def merge() -> int:
        dst = MemoryStorage()
        count = 0
        for t in plan:
            src = storages[t.source]
            for lo, hi in bounds(t):
                batch = []
                for key, raw in src.scan(lo, hi):
                    incoming = DVVSet.from_dict(codec.loads(raw))
                    old = dst.get(key)
                    state = (
                        incoming
                        if old is None
                        else DVVSet.from_dict(codec.loads(old)).sync(incoming)
                    )
                    batch.append((key, codec.dumps(state.to_dict())))
                    count += 1
                    if len(batch) == 500:
                        dst.write_batch(batch)
                        batch = []
                dst.write_batch(batch)
        return count

    return copy, merge


def groups(quick: bool) -> list[Group]:
    n = 4_000 if quick else 20_000
    record, storages, moved = _setup(n)
    sources = {
        name: Node(name, record.ring, storage=s, config=CONFIG) for name, s in storages.items()
    }
    copy, merge = _floors(record, storages)
    got = _join(record, sources)
    assert got == moved, (got, moved)
    return [
        Group(
            f"join: stream {moved:,} keys of {n:,} to the new node (keys/s)",
            [
                Case("ours (RangeStream + Node)", lambda: _join(record, sources), ops=moved),
                Case("scan+decode+sync+batch floor", merge, ops=moved),
                Case("scan+put floor", copy, ops=moved),
            ],
            compare=("scan+decode+sync+batch floor", "scan+put floor"),
        )
    ]


def report(quick: bool) -> str:
    """Moved data on a join, measured on many keys: keys whose replicas change / ideal."""
    n = 20_000 if quick else 100_000
    keys = [b"user:%08d" % i for i in range(n)]
    lines = ["join moves (keys that gain the new node as a replica / keys x (n+1)):", ""]
    lines.append("| ring | members | keys | moved replicas | fraction | vs ideal 1/(n+1) |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for partitions in (64, 4096):
        for before in (5, 10):
            ring = HashRing(3, partitions=partitions)
            for i in range(before):
                ring.add_node(f"n{i}")
            new = ring.copy()
            new.add_node("joiner")
            moved = sum(1 for key in keys if "joiner" in new.preference_list(key))
            fraction = moved / (3 * n)
            lines.append(
                f"| Q={partitions} | {before} -> {before + 1} | {n:,} | {moved:,} | "
                f"{fraction:.4f} | {fraction * (before + 1):.3f} |"
            )
    return "\n".join(lines)
