"""Dynamo in five questions: each answered by running the library.

Run it: ``python examples/five_questions.py`` (all five), or name one:
``python examples/five_questions.py hashing`` (``vclocks``, ``sloppy``, ``merkle``, ``nrw``).
The docs page "Dynamo in five questions" shows each part and the output it prints.
"""

from __future__ import annotations

import sys
from collections import Counter

from dynamo_core import (
    DVVSet,
    GetResult,
    HashRing,
    MerkleTree,
    PutResult,
    QuorumPolicy,
    Unavailable,
    VectorClock,
    item_digest,
    run_exchange,
    token,
)
from dynamo_core.testing import DotSet, QuorumHarness

KEYS = [f"user:{i}" for i in range(100_000)]


# --8<-- [start:hashing]
def moved_by_modulo(old: int, new: int) -> float:
    """The share of keys whose node changes when `hash % n` goes from `old` to `new` nodes."""
    return sum(token(k) % old != token(k) % new for k in KEYS) / len(KEYS)


def moved_by_ring(old: int, new: int) -> float:
    """The same for a consistent-hash ring (Dynamo strategy 3: 4,096 equal partitions)."""
    ring = HashRing(3)
    ring.add_nodes([f"n{i}" for i in range(old)])
    before = [ring.owner(k) for k in KEYS]
    ring.add_nodes([f"n{i}" for i in range(old, new)])
    return sum(a != ring.owner(k) for a, k in zip(before, KEYS, strict=True)) / len(KEYS)


def hashing() -> None:
    for old, new in [(4, 5), (10, 11)]:
        print(
            f"{old} -> {new} nodes: hash % n moves {moved_by_modulo(old, new):.1%} of the keys, "
            f"the ring {moved_by_ring(old, new):.1%} (ideal 1/{new} = {1 / new:.1%})"
        )
    # A node fails: who takes its keys? With one token per node, only its successor; with
    # many partitions (or virtual nodes) per node, every survivor takes a slice.
    for label, ring in [
        ("1 token per node", HashRing(3, vnodes=1)),
        ("4,096 partitions", HashRing(3)),
    ]:
        ring.add_nodes([f"n{i}" for i in range(10)])
        owners = [ring.owner(k) for k in KEYS]
        ring.remove_node("n3")
        heirs = Counter(ring.owner(k) for k, o in zip(KEYS, owners, strict=True) if o == "n3")
        print(f"{label}: n3's keys go to {len(heirs)} of 9 survivors, the most to one: ", end="")
        print(f"{max(heirs.values()) / sum(heirs.values()):.0%}")


# --8<-- [end:hashing]


# --8<-- [start:vclocks]
def vclocks() -> None:
    # The Dynamo paper's figure 3: Sx writes D1 and D2; Sy and Sz then each take a write based
    # on D2 without seeing the other's.
    d2 = VectorClock().increment("Sx", now=1).increment("Sx", now=2)
    d3, d4 = d2.increment("Sy", now=3), d2.increment("Sz", now=4)
    print("D2 vs D3:", d2.compare(d3).value, "| D3 vs D4:", d3.compare(d4).value)
    # The store keeps both (siblings) and returns them with one context. The *reader* resolves:
    # it merges the values (a cart: union) and writes back with the context, which covers both.
    state = DVVSet[bytes]().update(b"book", "Sx")
    context = state.context  # two clients read the same version ...
    state = state.update(b"book, pen", "Sy", context)  # ... and write concurrently
    state = state.update(b"book, ink", "Sz", context)
    print("siblings:", state.values)
    merged = state.update(b"book, ink, pen", "Sx", state.context)  # the application's merge
    print("after the reader's merge:", merged.values)  # one version again


# --8<-- [end:vclocks]


# --8<-- [start:sloppy]
def sloppy() -> None:
    nodes = ["a", "b", "c", "d", "e"]  # the key's walk: primaries a, b, c; fallbacks d, e
    for mode in (True, False):
        cluster: QuorumHarness[DotSet] = QuorumHarness(
            nodes, policy=QuorumPolicy(3, 2, 2, sloppy=mode), seed=0
        )
        cluster.suspect("a")
        cluster.suspect("b")  # two primaries are down
        cluster.script("c", delay=0.2)  # and the third is slow
        write = cluster.put("cart", DotSet.of(("alice", 1)))
        name = "sloppy" if mode else "strict"
        if isinstance(write, Unavailable):
            print(f"{name}: the write is refused: {write}")
            continue
        print(f"{name}: the write is acknowledged by {write.acked}, hints {write.hinted}")
        # What it costs: a and b come back before the hints are handed over, and a read
        # with R=2 asks them. R + W > N, yet the read misses the acknowledged write.
        cluster.trust("a")
        cluster.trust("b")
        read = cluster.get("cart")
        assert isinstance(read, GetResult)
        print(f"{name}: a read answered by {read.answered} finds it: {read.found}")
        cluster.run()  # c's copy arrives; read repair and handoff heal the rest
        again = cluster.get("cart")
        assert isinstance(again, GetResult)
        print(f"{name}: once c answers and read repair has run: {again.found}")


# --8<-- [end:sloppy]


# --8<-- [start:merkle]
def merkle() -> None:
    items = {k.encode(): item_digest(k.encode(), b"v1") for k in KEYS[:20_000]}
    ours, theirs = MerkleTree(14), MerkleTree(14)  # 2**14 segments over the whole ring
    for key, digest in items.items():
        ours.insert(key, digest)
        theirs.insert(key, digest)
    changed = KEYS[7].encode()  # one replica missed one write
    theirs.update(changed, items[changed], item_digest(changed, b"v2"))
    their_items = {**items, changed: item_digest(changed, b"v2")}
    report = run_exchange(ours, theirs, items, their_items)
    print(f"different keys: {[k.decode() for k in report.different]}")
    print(f"{report.round_trips} round trips, {report.digests} digests, {report.wire_bytes:,} B")
    every_digest = len(items) * 16
    print(f"shipping every key's digest instead: {every_digest:,} B of digests alone")


# --8<-- [end:merkle]


# --8<-- [start:nrw]
def latency(r: int, w: int) -> tuple[float | None, float | None]:
    """Put and get latency, in ms, with replicas 5, 20 and 80 ms away; None if refused."""
    cluster: QuorumHarness[DotSet] = QuorumHarness(["a", "b", "c"], policy=QuorumPolicy(3, r, w))
    for node, delay in [("a", 0.005), ("b", 0.020), ("c", 0.080)]:
        cluster.script(node, delay=delay / 2)  # one way
    start = cluster.now
    put = cluster.put("k", DotSet.of(("x", 1)))
    put_ms = (cluster.now - start) * 1000 if isinstance(put, PutResult) else None
    cluster.run()
    start = cluster.now
    get = cluster.get("k")
    get_ms = (cluster.now - start) * 1000 if isinstance(get, GetResult) else None
    return put_ms, get_ms


def survives(r: int, w: int, down: int) -> str:
    """Whether reads and writes still succeed (strict quorum) with `down` replicas down."""
    cluster: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c"], policy=QuorumPolicy(3, r, w, sloppy=False)
    )
    for node in ["a", "b", "c"][:down]:
        cluster.suspect(node)
    put = isinstance(cluster.put("k", DotSet.of(("x", 1))), PutResult)
    get = isinstance(cluster.get("k"), GetResult)
    return {(True, True): "both", (True, False): "writes", (False, True): "reads"}.get(
        (put, get), "none"
    )


def nrw() -> None:
    print("N R W  overlap  put ms  get ms  1 down  2 down")
    for r, w in [(1, 1), (1, 3), (3, 1), (2, 2), (1, 2), (3, 3)]:
        put_ms, get_ms = latency(r, w)
        print(
            f"3 {r} {w}  {'yes' if r + w > 3 else 'no ':7}  {put_ms:6.0f}  {get_ms:6.0f}  "
            f"{survives(r, w, 1):6}  {survives(r, w, 2)}"
        )


# --8<-- [end:nrw]

PARTS = {"hashing": hashing, "vclocks": vclocks, "sloppy": sloppy, "merkle": merkle, "nrw": nrw}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(PARTS):
        PARTS[name]()
