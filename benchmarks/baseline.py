"""Compare a benchmark run with a saved one (``python -m benchmarks --baseline PATH``).

A baseline is the JSON file an earlier run wrote (``--json``). Cases are matched by group title
and case name. Each matched case gets two figures:

* ``x baseline`` = time(baseline) / time(now): above 1 means faster than the baseline. This
  compares absolute times from two runs, so on a shared machine it drifts by tens of percent.
* ``ref drift`` = the case's ratio against its group's first reference now, divided by the same
  ratio in the baseline. Both ratios come from one run each, so machine drift cancels: below 1
  means the case lost ground against its floor or peer. The reference itself reads 1.00.

A case whose ``x baseline`` or ``ref drift`` is below ``1 / tolerance`` is marked ``SLOWER``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import GroupResult, format_time

__all__ = ["Comparison", "compare", "format_comparison", "load"]

DEFAULT_TOLERANCE = 1.25


@dataclass(frozen=True)
class Comparison:
    """One case of the current run beside the same case of the baseline.

    Attributes:
        group: The group title.
        case: The case name.
        baseline: Seconds per operation in the baseline, `None` when the case is new.
        now: Seconds per operation now, `None` when the case is gone.
        speedup: ``baseline / now`` (above 1: faster now), `None` unless both exist.
        ref_drift: The case's ratio against its group's first reference now, over the same in
            the baseline; `None` without a reference present in both runs.
    """

    group: str
    case: str
    baseline: float | None
    now: float | None
    speedup: float | None
    ref_drift: float | None

    def slower(self, tolerance: float = DEFAULT_TOLERANCE) -> bool:
        """Whether either figure says the case got slower by more than `tolerance`."""
        return any(x is not None and x * tolerance < 1.0 for x in (self.speedup, self.ref_drift))


def load(path: Path) -> list[dict[str, object]]:
    """Read a results file written by `benchmarks.harness.write_json`.

    Raises:
        ValueError: The file is not a list of groups with cases.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(
        isinstance(g, dict) and isinstance(g.get("title"), str) and isinstance(g.get("cases"), list)
        for g in data
    ):
        raise ValueError(f"{path} is not a benchmark results file (a list of groups)")
    return data


def _times(group: dict[str, object]) -> dict[str, float]:
    cases = group["cases"]
    assert isinstance(cases, list)
    out: dict[str, float] = {}
    for case in cases:
        if isinstance(case, dict) and isinstance(case.get("name"), str):
            seconds = case.get("seconds_per_op")
            if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0:
                out[case["name"]] = float(seconds)
    return out


def compare(
    baseline: Sequence[dict[str, object]], current: Sequence[GroupResult]
) -> list[Comparison]:
    """Match the current run's cases with the baseline's, in the current run's order.

    Cases only in the baseline follow their group's current cases (with ``now`` `None`);
    groups only in the baseline come last.

    Returns:
        One `Comparison` per case of either run.
    """
    saved = {str(g["title"]): g for g in baseline}
    out: list[Comparison] = []
    for result in current:
        group = saved.pop(result.title, None)
        old = _times(group) if group is not None else {}
        now = {case.name: case.seconds_per_op for case in result.cases}
        ref = result.compare[0] if result.compare else None
        for name, seconds in now.items():
            before = old.get(name)
            speedup = drift = None
            if before is not None:
                speedup = before / seconds
                if ref is not None and ref in old:
                    # the ratio against ref is time(ref) / time(case): now over baseline
                    drift = (now[ref] / seconds) / (old[ref] / before)
            out.append(Comparison(result.title, name, before, seconds, speedup, drift))
        gone = [name for name in old if name not in now]
        out.extend(Comparison(result.title, name, old[name], None, None, None) for name in gone)
    for title, group in saved.items():
        out.extend(
            Comparison(title, name, t, None, None, None) for name, t in _times(group).items()
        )
    return out


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _time(seconds: float | None) -> str:
    return "—" if seconds is None else format_time(seconds)


def format_comparison(rows: Sequence[Comparison], *, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Render the comparison as one Markdown table, marking cases slower than `tolerance`."""
    lines = [
        "### Against the baseline",
        "",
        "| group | case | baseline | now | x baseline | ref drift | |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row.now is None:
            mark = "gone"
        elif row.baseline is None:
            mark = "new"
        else:
            mark = "SLOWER" if row.slower(tolerance) else ""
        lines.append(
            f"| {row.group} | {row.case} | {_time(row.baseline)} | {_time(row.now)} "
            f"| {_figure(row.speedup)} | {_figure(row.ref_drift)} | {mark} |"
        )
    return "\n".join(lines)
