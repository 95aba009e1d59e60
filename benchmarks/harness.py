"""The benchmark harness every benchmark module uses.

A benchmark module defines ``groups(quick: bool) -> list[Group]``. Each `Group` holds the cases to
compare — ours, the peer a user would otherwise pick, and a bare-Python floor — and names the
cases the others are compared against. The harness runs the cases of a group **round-robin in one
process** (case A, B, C, then A, B, C again, ...), so drift on a shared machine hits every case
alike, takes the **median** of the repeats, and prints a table of time per operation and of
ratios against the named references. Only ratios from one run are comparable; absolute times on a
shared machine drift.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Case",
    "CaseResult",
    "Group",
    "GroupResult",
    "format_table",
    "format_time",
    "measure",
    "write_json",
]

Timer = Callable[[], float]


@dataclass(frozen=True)
class Case:
    """One thing to time.

    Attributes:
        name: Short label, unique within its group (``"ours"``, ``"uhashring"``, ``"floor"``).
        fn: Does `ops` operations per call; its return value is ignored.
        ops: How many operations one call of `fn` performs (time is reported per operation).
    """

    name: str
    fn: Callable[[], object]
    ops: int = 1


@dataclass(frozen=True)
class Group:
    """Cases doing the same work, and the names of the cases to report ratios against.

    Attributes:
        title: What is measured (``"owner(key), 10 nodes"``).
        cases: The cases, in the order they are printed.
        compare: Names of cases in `cases`; each gets a column ``x <name>`` holding
            ``time(name) / time(case)``, so a value above 1 means the case is faster.
    """

    title: str
    cases: Sequence[Case]
    compare: Sequence[str] = ()

    def __post_init__(self) -> None:
        names = [case.name for case in self.cases]
        if len(set(names)) != len(names):
            raise ValueError(f"group {self.title!r} has duplicate case names: {names}")
        missing = [name for name in self.compare if name not in names]
        if missing:
            raise ValueError(f"group {self.title!r} compares against unknown cases {missing}")


@dataclass(frozen=True)
class CaseResult:
    """The median time per operation of one case, and its ratios against the references."""

    name: str
    seconds_per_op: float
    samples: tuple[float, ...]
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def ops_per_second(self) -> float:
        """Operations per second at the median."""
        return 1.0 / self.seconds_per_op if self.seconds_per_op > 0 else float("inf")


@dataclass(frozen=True)
class GroupResult:
    """The results of one group, in the group's case order."""

    title: str
    compare: tuple[str, ...]
    cases: tuple[CaseResult, ...]


def _calibrate(case: Case, min_time: float, timer: Timer) -> int:
    """Return how many calls of `case` make one sample last about `min_time` seconds."""
    calls = 1
    while True:
        started = timer()
        for _ in range(calls):
            case.fn()
        elapsed = timer() - started
        if elapsed >= min_time or calls >= 1 << 24:
            return calls
        calls = max(calls * 2, int(calls * min_time / max(elapsed, 1e-9)))


def measure(
    group: Group, *, repeats: int = 7, min_time: float = 0.02, timer: Timer = time.perf_counter
) -> GroupResult:
    """Time every case of `group`, round-robin, and return medians and ratios.

    Args:
        group: The cases to compare.
        repeats: Samples per case; the median is reported.
        min_time: Target duration of one sample, in seconds.
        timer: The clock (injectable for tests).

    Returns:
        The group's results.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    calls = {case.name: _calibrate(case, min_time, timer) for case in group.cases}
    samples: dict[str, list[float]] = {case.name: [] for case in group.cases}
    for _ in range(repeats):
        for case in group.cases:
            n = calls[case.name]
            started = timer()
            for _ in range(n):
                case.fn()
            samples[case.name].append((timer() - started) / (n * case.ops))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    results = []
    for case in group.cases:
        mine = medians[case.name]
        ratios = {ref: medians[ref] / mine if mine > 0 else float("inf") for ref in group.compare}
        results.append(CaseResult(case.name, mine, tuple(samples[case.name]), ratios))
    return GroupResult(group.title, tuple(group.compare), tuple(results))


def format_time(seconds: float) -> str:
    """Render a duration with three significant digits and a unit (s, ms, µs or ns)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_table(result: GroupResult) -> str:
    """Render one group's results as a Markdown table."""
    header = ["case", "time/op", "ops/s", *(f"x {ref}" for ref in result.compare)]
    rows = [header, ["---"] * len(header)]
    for case in result.cases:
        ratios = [f"{case.ratios[ref]:.2f}" for ref in result.compare]
        rows.append(
            [case.name, format_time(case.seconds_per_op), f"{case.ops_per_second:,.0f}", *ratios]
        )
    lines = [f"### {result.title}", ""]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(results: Sequence[GroupResult], path: Path) -> None:
    """Write all results to `path` as JSON (times in seconds per operation)."""
    payload = [
        {
            "title": result.title,
            "compare": list(result.compare),
            "cases": [
                {
                    "name": case.name,
                    "seconds_per_op": case.seconds_per_op,
                    "ops_per_second": case.ops_per_second,
                    "samples": list(case.samples),
                    "ratios": case.ratios,
                }
                for case in result.cases
            ],
        }
        for result in results
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
