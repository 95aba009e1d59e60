"""Hinted handoff: a fallback keeps writes for a node that is down and delivers them later.

Node ``d`` stands in for node ``b`` while ``b`` is down (a sloppy quorum). It keeps the writes
as hints in SQLite, so they survive its own restart, and when ``b`` is back a `Handoff` delivers
them in batches — through a lost message, a timeout and a retry — deleting each hint only once
``b`` acknowledged it. Then a node stays away past its hint window: the writes it misses are
counted and it is flagged for anti-entropy repair.

Run it: ``python examples/hinted_handoff.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import assert_never

from dynamo_core import (
    DeliveryFailed,
    DVVSet,
    Handoff,
    HintBatch,
    HintsDelivered,
    HintsExpired,
    HintStore,
    SendHints,
    SQLiteStorage,
    codec,
)
from dynamo_core.hints import HandoffEffect


def receive(replica: dict[str | bytes, DVVSet[bytes]], wire: bytes) -> int:
    """What node b does with a batch: merge each hinted state into its own, return the id."""
    batch = HintBatch.from_dict(codec.loads(wire))
    for hint in batch.hints:
        replica[hint.key] = replica.get(hint.key, DVVSet[bytes]()).sync(hint.state)
    return batch.batch_id


def deliver(store: HintStore[DVVSet[bytes]], replica: dict[str | bytes, DVVSet[bytes]]) -> None:
    """Drive a Handoff to b over a network that loses the first batch."""
    handoff = Handoff(store, max_batch_hints=2, timeout=5.0, backoff=1.0)
    now = 100.0
    lose_next = True
    effects: list[HandoffEffect] = handoff.target_up("b", now)
    while effects or store.count("b"):
        acks: list[int] = []
        for effect in effects:
            match effect:
                case SendHints(target=target, batch=batch, nbytes=nbytes):
                    keys = [hint.key for hint in batch.hints]
                    if lose_next:
                        lose_next = False
                        print(f"  t={now:5.1f} send batch {batch.batch_id} {keys} -> lost")
                        continue
                    print(f"  t={now:5.1f} send batch {batch.batch_id} {keys} ({nbytes} B)")
                    acks.append(receive(replica, codec.dumps(batch.to_dict())))
                    print(f"  t={now:5.1f} {target} merged batch {batch.batch_id}, acks it")
                case HintsDelivered(batch_id=batch_id, removed=removed):
                    print(f"  t={now:5.1f} ack for batch {batch_id}: {removed} hint(s) deleted")
                case DeliveryFailed(batch_id=batch_id, reason=reason, retry_at=retry_at):
                    print(f"  t={now:5.1f} batch {batch_id} {reason}; retry at t={retry_at}")
                case HintsExpired(count=count):
                    print(f"  t={now:5.1f} {count} hints expired")
                case _:
                    assert_never(effect)
        effects = []
        for batch_id in acks:
            effects += handoff.on_ack("b", batch_id, now)
        if not effects and store.count("b"):
            deadline = handoff.deadline()
            assert deadline is not None
            now = max(now, deadline)
            effects = handoff.on_timer(now)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hints.db"
        with SQLiteStorage(path) as storage:
            store = HintStore(storage)  # DVVSet states; 3 h TTL and window by default
            # Alice's cart is written three times while b is down (each write read the last),
            # Bob's once: the three cart writes merge into one hint.
            cart = DVVSet[bytes]()
            for now, item in enumerate([b"1 book", b"1 book, 2 pens", b"2 pens"]):
                cart = cart.update(item, "d", cart.context)
                store.add("b", "cart:alice", cart, float(now))
            store.add("b", "cart:bob", DVVSet[bytes]().update(b"1 lamp", "d"), 3.0)
            store.add("b", b"\x00session", DVVSet[bytes]().update(b"token", "d"), 4.0)
            print("d holds hints for", store.targets(), "- pending:", store.count("b"))

        # d restarts; its hints are still there.
        with SQLiteStorage(path) as storage:
            store = HintStore(storage)
            print("after d restarts:", [hint.key for hint in store.pending("b")])
            replica_b: dict[str | bytes, DVVSet[bytes]] = {}
            print("b is back:")
            deliver(store, replica_b)
            stats = store.stats().get("b")
            assert stats is not None
            print(f"b has {replica_b['cart:alice'].values}; delivered {stats.delivered}, left 0")

    # A long outage: c stays away past its hint window.
    store = HintStore(max_hints_per_target=2, ttl=600.0, window=60.0)
    for now in range(0, 120, 10):
        store.add("c", f"item:{now % 40}", DVVSet[bytes]().update(b"x", "d"), float(now))
    stats = store.stats().get("c")
    assert stats is not None
    print(
        f"c: {stats.hints} hints kept, {stats.dropped} writes dropped "
        f"(caps and window), needs repair: {store.needs_repair()}"
    )
    lost = stats.lost
    # ... anti-entropy (a Merkle exchange with c) runs here and repairs what was dropped ...
    store.clear_repair("c", lost=lost)
    print("after anti-entropy:", store.needs_repair())


if __name__ == "__main__":
    main()
