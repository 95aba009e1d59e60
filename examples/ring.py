"""A consistent-hash ring: where keys live, who the fallbacks are, and what moves on a join.

Run it: ``python examples/ring.py``.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice

from dynamo_core import HashRing, codec

NEW_ZONES = {"node-6": "az-a", "node-7": "az-b", "node-8": "az-c"}


def main() -> None:
    # Six nodes in three availability zones; replicas land in three different zones.
    ring = HashRing(replicas=3)  # Dynamo strategy 3: 4096 equal partitions
    zones = {f"node-{i}": zone for i, zone in enumerate(["az-a", "az-b", "az-c"] * 2)}
    ring.add_nodes(zones, zones=zones)  # or ring.add_node("node-0", zone="az-a"), ...

    key = "cart:alice"
    plist = ring.preference_list(key)
    print(f"{key!r} lives on {plist} (owner {ring.owner(key)})")
    print("  zones:", [ring.zone(node) for node in plist])
    # The nodes to try, in order, when some of the preference list is down (sloppy quorum):
    print("  fallbacks:", list(islice(ring.walk(key), 3, None)))

    shares = ring.ownership()
    print(f"primary share per node: {min(shares.values()):.4f} .. {max(shares.values()):.4f}")

    # Growth: copy the ring, change the copy, and ask what data must move. Adding one node per
    # zone in one call keeps the zones spaced, so only the new nodes receive data.
    before = ring.copy()
    ring.add_nodes(["node-6", "node-7", "node-8"], zones=NEW_ZONES)
    pairs = zip(before.segments(), ring.segments(), strict=True)
    took = Counter(new[1][0] for old, new in pairs if old[1][0] != new[1][0])
    print("partitions taken by the new nodes:", dict(sorted(took.items())))
    plan = before.transfers_to(ring)
    print(f"{len(plan)} transfers; ranges received:", dict(Counter(t.target for t in plan)))
    for transfer in plan[:2]:
        share = transfer.range.size / 2**64
        print(f"  {transfer.source} -> {transfer.target}: {transfer.range} ({share:.4%} of keys)")

    # Ship the ring to another process; compare versions cheaply with the fingerprint.
    wire = codec.dumps(ring.to_dict())
    copy = HashRing.from_dict(codec.loads(wire))
    assert copy == ring
    assert copy.preference_list(key) == ring.preference_list(key)
    print(f"encoded ring: {len(wire):,} bytes, fingerprint {ring.fingerprint}")

    # Users choose keys? Place them with a keyed hash, so nobody can aim keys at one node.
    keyed = HashRing(replicas=3, hash_key=b"a 32-byte cluster secret -------")
    for node in ring.nodes:
        keyed.add_node(node, zone=ring.zone(node))
    print(f"keyed placement of {key!r}: {keyed.preference_list(key)}")


if __name__ == "__main__":
    main()
