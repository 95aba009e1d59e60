"""Alice's shopping cart on a 5-node Dynamo cluster, simulated: the story of `dynamo-core demo`.

Every node is a real `dynamo_core.Node`; `SimulatedCluster` delivers their messages in virtual
time, so the whole run is deterministic and takes well under a second.
"""

from dynamo_core import GetReply, PutReply, QuorumPolicy, codec
from dynamo_core.testing import SimulatedCluster
from dynamo_core.testing.simulation import SIMULATION_NODE_CONFIG

CART = "cart:alice"


# -- the application: a cart is a set of items; concurrent versions merge by union ----------

# --8<-- [start:app]


def encode(items: frozenset[str]) -> bytes:
    return codec.dumps([*sorted(items)])


def decode(value: bytes) -> frozenset[str]:
    return frozenset(str(item) for item in codec.as_list(codec.loads(value), "cart"))


def add_item(cluster: SimulatedCluster, via: str, item: str) -> PutReply:
    """Read the cart, merge its siblings, add one item, write it back with the read's context."""
    read = cluster.get(CART, via=via)
    assert isinstance(read, GetReply), read
    items = frozenset().union(*map(decode, read.values)) | {item}
    written = cluster.put(CART, encode(items), read.context, via=via)
    assert isinstance(written, PutReply), written
    return written


def show(cluster: SimulatedCluster, via: str) -> list[frozenset[str]]:
    read = cluster.get(CART, via=via)
    assert isinstance(read, GetReply), read
    return [decode(value) for value in read.values]


# --8<-- [end:app]


def main() -> None:
    # --8<-- [start:cluster]
    cluster = SimulatedCluster(
        5, policy=QuorumPolicy(n=3, r=2, w=2), config=SIMULATION_NODE_CONFIG, seed=0
    )

    # --8<-- [end:cluster]

    # --8<-- [start:placement]
    # 1. Placement: the cart lives on the first three distinct nodes clockwise from its token.
    walk = list(cluster.ring.walk(CART))
    p1, p2, p3 = walk[:3]
    f1, f2 = walk[3:]
    print(f"{CART}: replicas {p1} {p2} {p3}, fallbacks {f1} {f2}")
    print("book  acknowledged by", add_item(cluster, "n1", "book").acked)  # n1 forwards to p1

    # --8<-- [end:placement]

    # --8<-- [start:crash]
    # 2. A replica crashes. After ~9 s of silence the phi-accrual detectors convict it, and the
    #    sloppy quorum writes its copy to the first fallback, with a hint naming it.
    cluster.crash(p3)
    cluster.run(10.0)
    reply = add_item(cluster, p1, "pen")
    print("pen   acknowledged by", reply.acked, "hinted", reply.hinted)
    cluster.run(0.5)
    print(f"{f1} keeps {cluster.node(f1).hints.count(p3)} hint(s) for {p3}")

    # --8<-- [end:crash]

    # --8<-- [start:partition]
    # 3. A partition. Both sides accept a write: two concurrent versions (siblings).
    cluster.partition([p1, f1], [p2, f2, p3])
    cluster.run(10.0)
    add_item(cluster, p1, "lamp")  # Alice's laptop
    add_item(cluster, p2, "mug")  # Alice's phone
    cluster.heal()
    cluster.run(2.0)
    siblings = show(cluster, p1)
    print("after the partition, siblings:", [sorted(s) for s in siblings])
    assert len(siblings) == 2

    # The application merges them: the next add reads both siblings and writes their union
    # with the read's context, which replaces exactly those two versions.
    add_item(cluster, p1, "socks")
    print("merged:", [sorted(s) for s in show(cluster, p2)])

    # --8<-- [end:partition]

    # --8<-- [start:handoff]
    # 4. The crashed replica returns: the fallbacks hand their hints over.
    cluster.restart(p3)
    cluster.run(3.0)
    state = cluster.node(p3).state_of(CART)
    assert state is not None
    print(f"{p3} is back and holds", [sorted(decode(v)) for v in state.values])
    assert cluster.pending_hints() == 0

    # --8<-- [end:handoff]

    # --8<-- [start:repair]
    # 5. A replica loses its disk. Anti-entropy compares Merkle trees and repairs it.
    cluster.crash(p2, wipe=True)
    cluster.restart(p2)
    print(f"{p2} restarts with an empty disk: {cluster.node(p2).state_of(CART)}")
    cluster.run(10.0)
    repaired = cluster.node(p2).state_of(CART)
    assert repaired is not None
    print(f"{p2} after anti-entropy:", [sorted(decode(v)) for v in repaired.values])
    assert cluster.divergent_keys([CART]) == []
    assert cluster.divergent_ranges() == []

    # --8<-- [end:repair]

    # --8<-- [start:final]
    final = show(cluster, "n1")
    assert final == [frozenset({"book", "pen", "lamp", "mug", "socks"})], final
    print("final cart:", sorted(final[0]), "- every acknowledged add is there")
    # --8<-- [end:final]


if __name__ == "__main__":
    main()
