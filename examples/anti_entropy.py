"""Two replicas drift apart; a Merkle exchange finds exactly what differs, and they repair.

Run it: ``python examples/anti_entropy.py``.

Each replica keeps its values, the 16-byte `item_digest` of each value (computed once per write)
and a `MerkleTree` over its token range. The exchange below is driven by hand, the way a network
driver would: every effect is dispatched with `match`, every message crosses as bytes.
"""

from __future__ import annotations

from typing import assert_never

from dynamo_core import MerkleExchange, MerkleTree, depth_for, item_digest
from dynamo_core.merkle import (
    Done,
    Effect,
    ExchangeReport,
    Failed,
    LoadItems,
    Nodes,
    Send,
    decode_message,
    encode_message,
)

KEYS = 20_000


class Replica:
    """A toy store: values, their digests, and the Merkle tree over them."""

    def __init__(self, name: str, depth: int) -> None:
        self.name = name
        self.values: dict[bytes, bytes] = {}
        self.digests: dict[bytes, bytes] = {}
        self.tree = MerkleTree(depth)

    # --8<-- [start:put]
    def put(self, key: bytes, value: bytes) -> None:
        """Store a value and fold its digest into the tree."""
        new = item_digest(key, value)  # once per write
        old = self.digests.get(key)
        if old is None:
            self.tree.insert(key, new)
        else:
            self.tree.update(key, old, new)  # O(1): one XOR of old ^ new
        self.values[key], self.digests[key] = value, new

    # --8<-- [end:put]

    def delete(self, key: bytes) -> None:
        """Delete a key and XOR its digest out of the tree."""
        self.tree.remove(key, self.digests.pop(key))
        del self.values[key]

    def items_of(self, request: LoadItems) -> list[tuple[bytes, bytes]]:
        """Answer a LoadItems effect: the (key, digest) pairs of the asked segments."""
        wanted = set(request.segments)
        return [(k, d) for k, d in self.digests.items() if self.tree.segment(k) in wanted]


def exchange(local: Replica, remote: Replica) -> ExchangeReport:
    """Run one exchange, local initiating; messages cross as encoded bytes."""
    sides = {
        local.name: (MerkleExchange(local.tree, confirm_delay=0.0), local),
        remote.name: (MerkleExchange(remote.tree, "responder"), remote),
    }
    inbox: list[tuple[str, bytes]] = []
    report: ExchangeReport | None = None

    def handle(name: str, effects: list[Effect]) -> None:
        nonlocal report
        protocol, replica = sides[name]
        peer = remote.name if name == local.name else local.name
        for effect in effects:
            match effect:
                case Send(message=message):
                    inbox.append((peer, encode_message(message)))
                case LoadItems():
                    handle(name, protocol.items_loaded(replica.items_of(effect), now=0.0))
                case Done(report=done):
                    if name == local.name:
                        report = done
                case Failed(reason=reason):
                    raise SystemExit(f"exchange failed: {reason}")
                case _:
                    assert_never(effect)

    handle(local.name, sides[local.name][0].start(now=0.0))
    while inbox:
        name, data = inbox.pop(0)
        handle(name, sides[name][0].receive(decode_message(data), now=0.0))
    assert report is not None
    return report


def main() -> None:
    depth = depth_for(KEYS)  # as Cassandra does: about one key per segment
    a, b = Replica("a", depth), Replica("b", depth)
    for i in range(KEYS):
        key, value = b"cart:%05d" % i, b"v1:%d" % i
        a.put(key, value)
        b.put(key, value)
    print(f"{KEYS:,} keys on each replica, trees of depth {depth} ({a.tree.segments:,} segments)")
    print("in sync:", a.tree.root == b.tree.root, " root", a.tree.root.hex())

    # Drift: b misses two writes (a dropped hint), a loses a key (a replaced disk), and a
    # delete reaches only b.
    a.put(b"cart:00042", b"v2:42")
    a.put(b"cart:12345", b"v2:12345")
    a.delete(b"cart:00007")
    b.delete(b"cart:19999")
    print("\nafter drift, differing token ranges:")
    for rng in a.tree.diff(b.tree):
        print(f"  [{rng.start:#018x}, {rng.end:#018x})")

    report = exchange(a, b)
    every_leaf = len(encode_message(Nodes(0, bytes(16 * a.tree.segments))))
    print("\nexchange (a initiates, differences confirmed twice):")
    print("  missing on a:       ", [k.decode() for k in report.missing])
    print("  missing on b:       ", [k.decode() for k in report.remote_missing])
    print("  different:          ", [k.decode() for k in report.different])
    print(
        f"  round trips {report.round_trips}, messages {report.messages}, node digests "
        f"{report.digests}, items {report.items}, bytes {report.wire_bytes:,}"
    )
    print(f"  (sending every leaf instead: {a.tree.segments:,} digests, {every_leaf:,} bytes)")

    # Repair: copy what is missing; for different keys, say the newer version (v2) wins. (A
    # real node would merge by vector clock; the delete of cart:19999 would travel as a
    # tombstone, and here it comes back.)
    for key in report.missing:
        a.put(key, b.values[key])
    for key in report.remote_missing:
        b.put(key, a.values[key])
    for key in report.different:
        newest = max(a.values[key], b.values[key])
        a.put(key, newest)
        b.put(key, newest)
    again = exchange(a, b)
    print("\nafter repair: in sync =", again.in_sync, f"({again.round_trips} round trip)")
    assert again.in_sync
    assert a.values == b.values


if __name__ == "__main__":
    main()
