"""Versioning: vector clocks, siblings, dotted version vectors and actor epochs.

Run it: ``python examples/versioning.py``.
"""

from __future__ import annotations

import json

from dynamo_core import (
    ActorEpochs,
    DVVSet,
    Ordering,
    VectorClock,
    Versioned,
    last_write_wins,
    reconcile,
)
from dynamo_core.errors import DotCollision


def cart(*items: str) -> bytes:
    return json.dumps(sorted(items)).encode()


def items(value: bytes) -> set[str]:
    return set(json.loads(value))


# 1. The shopping cart of the Dynamo paper (figure 3), with vector clocks.
d1 = VectorClock().increment("Sx", now=1.0)  # write handled by Sx
d2 = d1.increment("Sx", now=2.0)  # overwritten by Sx
d3 = d2.increment("Sy", now=3.0)  # Sy and Sz then take writes based on D2, concurrently
d4 = d2.increment("Sz", now=4.0)
print("D3 vs D4:", d3.compare(d4).value)
versions = [
    Versioned(cart("book"), d1),
    Versioned(cart("book", "pen"), d2),
    Versioned(cart("book", "pen", "ink"), d3),
    Versioned(cart("book", "pen", "cap"), d4),
]
siblings = reconcile(versions)  # D1 and D2 are dominated; D3 and D4 both stay
print("siblings after reconcile:", [sorted(items(v.value)) for v in siblings])
# The application merges them (a set union keeps every item added) and writes with the merged
# context at Sx: the new version D5 supersedes both.
merged = set().union(*(items(v.value) for v in siblings))
context = VectorClock.merge_all(v.clock for v in siblings)
d5 = Versioned(cart(*merged), context.increment("Sx", now=5.0))
print("D5:", sorted(merged), dict(d5.clock.items()))
assert reconcile([*versions, d5]) == [d5]
assert d5.clock.compare(d3) is Ordering.AFTER

# Last-write-wins instead: one sibling survives; the other's items are lost.
lww = last_write_wins(siblings)
lost = sorted(merged - items(lww.value))
print("last-write-wins keeps:", sorted(items(lww.value)), "- acknowledged but lost:", lost)

# 2. Sibling explosion: two clients write in turn, each with the context of its previous write.
rounds = 100
clock, object_siblings = VectorClock(), []  # one per-server clock for the whole object
state: DVVSet[bytes] = DVVSet()
clock_ctx = {"alice": VectorClock(), "bob": VectorClock()}
dvv_ctx = {"alice": state.context, "bob": state.context}
most = 0
for i in range(rounds):
    for client in ("alice", "bob"):
        value = f"{client}-{i}".encode()
        if clock_ctx[client].descends(clock):
            object_siblings = [value]
        else:
            object_siblings.append(value)
        clock = clock.merge(clock_ctx[client]).increment("server", now=float(i))
        clock_ctx[client] = clock
        state = state.update(value, "server", dvv_ctx[client])
        dvv_ctx[client] = state.context
        most = max(most, len(state))
print(f"after {2 * rounds} writes: per-server clock keeps {len(object_siblings)} siblings,")
print(f"  DVVSet keeps {len(state)} (never more than {most}): {state.values}")

# 3. The cart with DVVSet across two replicas.
a = DVVSet[bytes]().update(cart("book"), "A")
b = DVVSet[bytes]().sync(a)  # replicated
ctx = a.context  # a client reads from A
a = a.update(cart("book", "pen"), "A", ctx)  # client 1 adds a pen at A
b = b.update(cart("book", "ink"), "B", ctx)  # client 2 adds ink at B, concurrently
both = a.sync(b)
print("replicas synced:", [sorted(items(v)) for v in both.values])
resolved = both.reconcile(lambda vs: cart(*set().union(*map(items, vs))), node="A")
print("reconciled:", [sorted(items(v)) for v in resolved.values], dict(resolved.context.items()))
assert a.sync(resolved) == resolved == resolved.sync(b)

# 4. KV679: a replica that lost its data must not reuse its dots.
epochs = ActorEpochs("A", epoch=0)
first = DVVSet[bytes]().update(b"acknowledged", epochs.actor_for(VectorClock()))
replica_b = DVVSet[bytes]().sync(first)
epochs = ActorEpochs("A", epoch=epochs.epoch)  # restart: data lost, the epoch counter kept
actor = epochs.actor_for(VectorClock())  # key not found locally: a fresh epoch
second = DVVSet[bytes]().update(b"new write", actor)
print(f"after restart A writes as {actor!r}:", replica_b.sync(second).values)
reused = DVVSet[bytes]().update(b"new write", "A#1")  # what reusing the old actor would do
try:
    replica_b.sync(reused)  # the same dot with two values: merging would lose one write
except DotCollision as error:
    print("without epochs the merge refuses:", error)

# 5. Pruning: opt-in, for the stored clock only.
big = VectorClock()
for n in range(12):
    big = big.increment(f"node-{n:02d}", now=1000.0 + n)
small = big.prune(10, min_age=20, now=5000.0)
print(f"pruned {len(big)} entries to {len(small)}: dropped", sorted(set(big) - set(small)))
