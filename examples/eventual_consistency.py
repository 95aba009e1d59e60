"""Eventual consistency, made visible: stale reads on a simulated 5-node cluster, then convergence.

Run it: ``python examples/eventual_consistency.py``. Every node is a real `dynamo_core.Node`;
the network is simulated in virtual time, so the run is deterministic.

Alice's profile is written (v1) while every node is up. Then the network splits the key's
replicas: its coordinator ``p1`` and the first fallback on one side, the two other replicas on
the other. Alice writes v2 through ``p1`` and reads it back through the other side.
"""

from __future__ import annotations

from dynamo_core import GetReply, PutReply, QuorumPolicy, RequestFailed
from dynamo_core.testing import SimulatedCluster
from dynamo_core.testing.simulation import SIMULATION_NODE_CONFIG

KEY = "profile:alice"


def read(cluster: SimulatedCluster, via: str) -> str:
    reply = cluster.get(KEY, via=via)
    if isinstance(reply, RequestFailed):
        return f"refused ({reply.required} replicas needed)"
    assert isinstance(reply, GetReply)
    return " and ".join(value.decode() for value in reply.values) or "not found"


def run(r: int, w: int, *, sloppy: bool = True) -> None:
    policy = QuorumPolicy(3, r, w, sloppy=sloppy)
    cluster = SimulatedCluster(5, policy=policy, config=SIMULATION_NODE_CONFIG, seed=1)
    p1, p2, p3, f1, f2 = cluster.ring.walk(KEY)  # replicas p1 p2 p3, then fallbacks
    print(f"N=3 R={r} W={w} {'sloppy' if sloppy else 'strict'}: replicas {p1} {p2} {p3}")
    assert isinstance(cluster.put(KEY, b"v1", via=p1), PutReply)
    cluster.run(1.0)

    # --8<-- [start:split]
    cluster.partition([p1, f1], [p2, p3, f2])
    cluster.run(10.0)  # the failure detectors on each side convict the other side
    first = cluster.get(KEY, via=p1)  # Alice reads v1, then writes v2 with its context
    context = first.context if isinstance(first, GetReply) else None
    write = cluster.put(KEY, b"v2", context, via=p1)
    acked = isinstance(write, PutReply)
    if isinstance(write, PutReply):
        print(f"  v2 acknowledged by {', '.join(write.acked)}; hinted {write.hinted}")
    elif isinstance(write, RequestFailed):
        print(f"  v2 refused: {write.reason}")
    for via, note in [(p2, "not read-your-writes"), (p1, ""), (p3, "not monotonic")]:
        seen = read(cluster, via)
        stale = acked and seen == "v1"
        print(f"  read through {via}: {seen}" + (f"   <- stale: {note}" if stale else ""))
    # --8<-- [end:split]

    # --8<-- [start:heal]
    cluster.heal()
    print(f"  healed, at once, through {p2}: {read(cluster, p2)}")
    cluster.run(5.0)  # heartbeats resume: hints are handed over, anti-entropy runs
    reads = {node: read(cluster, node) for node in (p1, p2, p3)}
    print(f"  5 s later: {reads}; divergent keys: {cluster.divergent_keys([KEY])}")
    # --8<-- [end:heal]


if __name__ == "__main__":
    run(1, 1)  # fast and always writeable, and reads may be stale
    run(2, 2)  # R + W > N, but the sloppy quorum counts a fallback: still stale
    run(2, 2, sloppy=False)  # strict: no stale read on this side, but no service either
