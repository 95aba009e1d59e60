"""Run the benchmarks: ``python -m benchmarks [--quick] [--only TEXT] [--baseline PATH]``.

Every ``benchmarks/bench_*.py`` module is imported and its ``groups(quick)`` measured. Tables go to
stdout, all numbers to a JSON file. With ``--baseline``, a JSON file an earlier run wrote, every
case is also printed beside its baseline figure (see `benchmarks.baseline`).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from pathlib import Path

from benchmarks.baseline import DEFAULT_TOLERANCE, compare, format_comparison, load
from benchmarks.harness import GroupResult, format_table, measure, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--only", default="", help="run only modules whose name contains this")
    parser.add_argument("--repeats", type=int, default=None, help="samples per case (median)")
    parser.add_argument("--json", type=Path, default=Path(".bench/results.json"))
    parser.add_argument(
        "--baseline", type=Path, default=None, help="a results JSON to compare this run with"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="mark cases slower than baseline by more than this factor (default %(default)s)",
    )
    parser.add_argument(
        "--fail-slower",
        action="store_true",
        help="exit 1 when a case is marked slower than the baseline",
    )
    args = parser.parse_args(argv)
    baseline = load(args.baseline) if args.baseline is not None else None
    repeats = args.repeats or (3 if args.quick else 7)

    here = Path(__file__).parent
    modules = sorted(p.stem for p in here.glob("bench_*.py") if args.only in p.stem)
    if not modules:
        print(f"no benchmark module matches {args.only!r}", file=sys.stderr)
        return 2
    print(f"# dynamo_core benchmarks — Python {platform.python_version()}, {platform.machine()}")
    print(f"# medians of {repeats} round-robin samples; ratios are `x ref` = time(ref)/time(case)")
    results: list[GroupResult] = []
    for name in modules:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n## {name}\n")
        for group in module.groups(args.quick):
            result = measure(group, repeats=repeats)
            results.append(result)
            print(format_table(result), end="\n\n", flush=True)
        if hasattr(module, "report"):  # figures that are not timings (sizes, counts)
            print(module.report(args.quick), end="\n\n", flush=True)
    write_json(results, args.json)
    print(f"results written to {args.json}")
    if baseline is not None:
        rows = compare(baseline, results)
        print(f"\n{format_comparison(rows, tolerance=args.tolerance)}\n")
        if args.fail_slower and any(row.slower(args.tolerance) for row in rows):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
