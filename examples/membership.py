"""A node joins and another leaves a running, simulated cluster: ring versions and streams.

Run it: ``python examples/membership.py``. Everything runs in virtual time, deterministically.
"""

from dynamo_core import PutReply, TransferDone
from dynamo_core.testing import SimulatedCluster

cluster = SimulatedCluster(5, seed=7)  # n1..n5, N=3 R=2 W=2, 64 partitions
keys = [f"user:{i:04d}" for i in range(400)]
for key in keys:
    assert isinstance(cluster.put(key, key.encode()), PutReply)

streams: list[TransferDone] = []
cluster.observe(lambda now, node, e: streams.append(e) if isinstance(e, TransferDone) else None)


def wait_until_settled() -> None:
    assert cluster.run_while(lambda: not cluster.settled(), limit=60.0)


# A sixth node boots outside the ring (it learns the ring from its seeds by gossip), and an
# admin asks any node to add it. The claimant (the smallest node id) mints ring version 1.
newcomer = cluster.add_node("n6")
cluster.join("n6", via="n3")
wait_until_settled()
plan = newcomer.membership.plan
print(f"ring {newcomer.ring_version}: {len(plan)} transfers")
for transfer in plan[:4]:
    print(f"  {transfer.range}  {transfer.source} -> {transfer.target}")
print("  ...")
moved = len(newcomer.keys())
replicas = 3 * len(keys)
print(f"n6 received {moved} of {replicas} key replicas: {moved / replicas:.1%} (ideal 1/6 = 16.7%)")

# Now n2 leaves: it streams every range it held to the nodes that take it over, and only then
# drops its copies.
cluster.leave("n2", via="n5")
assert cluster.run_while(lambda: cluster.node("n2").status != "left", limit=60.0)
wait_until_settled()
print(f"ring {cluster.node('n1').ring_version}: members {', '.join(cluster.ring.nodes)}")
print(f"n2 is {cluster.node('n2').status} and holds {len(cluster.node('n2').keys())} keys")
print(f"{len(streams)} range streams completed, {sum(s.keys for s in streams)} keys streamed")

# Nothing was lost: every key reads back from the new placement.
assert all(cluster.get(key).ok for key in keys[:50])
print("every key still reads back")
