"""Bulk build beside merkletools, run by run: ``python -m benchmarks.merkle_runs [N] [RUNS]``.

The target "at least 2x merkletools in every run" is about the spread between runs, which the
harness's medians hide: this prints each run's ratio. Each run builds, once each and in turn,
`MerkleTree.from_items` at the default depth and at ``depth_for(N)``, and merkletools' tree, from
the same items as `benchmarks.bench_merkle` (default: 1,000,000 items, 5 runs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchmarks.bench_merkle import _items, _peers
from dynamo_core.merkle import MerkleTree, depth_for


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1_000_000
    runs = int(argv[1]) if len(argv) > 1 else 5
    _, merkletools_build = _peers()
    items = _items(n)
    hex_leaves = [digest.hex() for _, digest in items]
    fitted = depth_for(n)
    cases: dict[str, Callable[[], object]] = {
        "depth 16": lambda: MerkleTree.from_items(items).root,
        f"depth_for(n) = {fitted}": lambda: MerkleTree.from_items(items, fitted).root,
        "merkletools": lambda: merkletools_build(hex_leaves),
    }
    print(f"bulk build of {n:,} items; x merkletools = time(merkletools) / time(case)")
    for run in range(1, runs + 1):
        seconds = {}
        for name, build in cases.items():
            started = time.perf_counter()
            build()
            seconds[name] = time.perf_counter() - started
        ratios = ", ".join(
            f"{name}: {seconds['merkletools'] / value:.2f}x"
            for name, value in seconds.items()
            if name != "merkletools"
        )
        print(f"run {run}: {ratios} (merkletools {seconds['merkletools'] * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
