"""The answers to the exercises of the docs: run them and compare with your predictions.

Run it: ``python examples/exercises.py`` (all three), or name one:
``python examples/exercises.py growth`` (``lww``, ``choose``). The docs page "Exercises" shows
the expected output, produced by this script.
"""

from __future__ import annotations

import sys

from dynamo_core import GetResult, HashRing, PutResult, QuorumPolicy, token
from dynamo_core.testing import DotSet, QuorumHarness, Simulation, SimulationConfig


# --8<-- [start:growth]
def growth() -> None:
    """Exercise 1: how many keys move when a cluster grows by one node, or by half?"""
    keys = [f"user:{i}" for i in range(50_000)]
    for old, new in [(100, 101), (10, 15)]:
        modulo = sum(token(k) % old != token(k) % new for k in keys) / len(keys)
        ring = HashRing(3)
        ring.add_nodes([f"n{i}" for i in range(old)])
        before = [ring.owner(k) for k in keys]
        ring.add_nodes([f"n{i}" for i in range(old, new)])
        moved = sum(a != ring.owner(k) for a, k in zip(before, keys, strict=True)) / len(keys)
        ideal = (new - old) / new
        print(f"{old} -> {new}: % n {modulo:.1%}, ring {moved:.1%}, ideal {ideal:.1%}")


# --8<-- [end:growth]


# --8<-- [start:lww]
def lww() -> None:
    """Exercise 2: resolve siblings by last-write-wins and let the history checker catch it."""
    for resolver in ("union", "lww"):
        config = SimulationConfig(ops=150, faults="bisect,delay", resolver=resolver)
        result = Simulation(seed=3, config=config).run()
        print(
            f"{resolver:5}: {result.acknowledged} adds acknowledged, {result.lost} lost, "
            f"most siblings in a read {result.max_siblings}, ok={result.ok}"
        )
        for violation in result.violations[:1]:
            print(f"       first violation: {violation[:70]}...")


# --8<-- [end:lww]


# --8<-- [start:choose]
def measure(r: int, w: int, requests: int = 200) -> tuple[float, float, bool]:
    """Mean get and put latency (ms) with random 1-10 ms links, and writes with one node down."""
    cluster: QuorumHarness[DotSet] = QuorumHarness(
        ["a", "b", "c"], policy=QuorumPolicy(3, r, w), seed=7
    )
    puts = gets = 0.0
    for i in range(requests):
        start = cluster.now
        assert isinstance(cluster.put(f"k{i}", DotSet.of(("x", i + 1))), PutResult)
        puts += cluster.now - start
        start = cluster.now
        assert isinstance(cluster.get(f"k{i}"), GetResult)
        gets += cluster.now - start
    strict = QuorumHarness[DotSet](["a", "b", "c"], policy=QuorumPolicy(3, r, w, sloppy=False))
    strict.suspect("c")
    writable = isinstance(strict.put("k", DotSet.of(("x", 1))), PutResult)
    return gets / requests * 1000, puts / requests * 1000, writable


def choose() -> None:
    """Exercise 3: a session store: mostly reads, reads must see the last write, one node may fail.

    Requirements: R + W > N (a read overlaps the last acknowledged write's replicas), writes
    keep working with one of the three replicas down (even under a strict quorum), and among
    those the fastest reads.
    """
    print("R W  get ms  put ms  R+W>N  writable with 1 down")
    fits = []
    for r, w in [(1, 1), (1, 2), (1, 3), (2, 2), (3, 1)]:
        get_ms, put_ms, writable = measure(r, w)
        overlap = r + w > 3
        print(f"{r} {w}  {get_ms:6.1f}  {put_ms:6.1f}  {overlap!s:5}  {writable}")
        if overlap and writable:
            fits.append((get_ms, r, w))
    _, r, w = min(fits)
    print(f"choose R={r} W={w}")


# --8<-- [end:choose]

PARTS = {"growth": growth, "lww": lww, "choose": choose}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(PARTS):
        PARTS[name]()
