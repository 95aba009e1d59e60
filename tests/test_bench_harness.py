"""The benchmark harness: round-robin order, medians and ratios (with a fake timer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.baseline import compare, format_comparison, load
from benchmarks.harness import (
    Case,
    CaseResult,
    Group,
    GroupResult,
    format_table,
    measure,
    write_json,
)


class StepTimer:
    """A timer that advances by the cost of whatever case ran last."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_round_robin_medians_and_ratios(tmp_path: Path) -> None:
    timer = StepTimer()
    order: list[str] = []

    def make(name: str, cost: float) -> Case:
        def fn() -> None:
            order.append(name)
            timer.now += cost

        return Case(name, fn)

    group = Group("g", [make("fast", 1e-3), make("slow", 4e-3)], compare=("slow",))
    result = measure(group, repeats=3, min_time=0.01, timer=timer)
    fast, slow = result.cases
    assert fast.seconds_per_op == pytest.approx(1e-3)
    assert slow.seconds_per_op == pytest.approx(4e-3)
    assert fast.ratios["slow"] == pytest.approx(4.0)
    assert slow.ratios["slow"] == pytest.approx(1.0)
    # after calibration, samples alternate between the cases
    timed = order[-(10 + 3) :]
    assert "fast" in timed and "slow" in timed
    table = format_table(result)
    assert "| fast | 1 ms | 1,000 | 4.00 |" in table
    write_json([result], tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data[0]["cases"][0]["ratios"]["slow"] == pytest.approx(4.0)


def test_ops_per_call_divides_time() -> None:
    timer = StepTimer()

    def fn() -> None:
        timer.now += 1e-3

    result = measure(
        Group("g", [Case("batch", fn, ops=100)]), repeats=1, min_time=0.001, timer=timer
    )
    assert result.cases[0].seconds_per_op == pytest.approx(1e-5)


def test_group_validation() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Group("g", [Case("a", int), Case("a", int)])
    with pytest.raises(ValueError, match="unknown"):
        Group("g", [Case("a", int)], compare=("b",))
    with pytest.raises(ValueError, match="repeats"):
        measure(Group("g", [Case("a", int)]), repeats=0)


def _group(title: str, times: dict[str, float], compare: tuple[str, ...] = ()) -> GroupResult:
    cases = tuple(
        CaseResult(name, t, (t,), {ref: times[ref] / t for ref in compare})
        for name, t in times.items()
    )
    return GroupResult(title, compare, cases)


def test_baseline_comparison_ratios_and_marks(tmp_path: Path) -> None:
    saved = [
        _group("g", {"ours": 2e-6, "floor": 1e-6, "old": 5e-6}, ("floor",)),
        _group("gone group", {"x": 1e-3}),
    ]
    write_json(saved, tmp_path / "base.json")
    # The machine is twice as slow now (the floor doubled); "ours" only 1.5x slower, so it
    # gained on its floor; "new" was not in the baseline, "old" is no longer run.
    now = [_group("g", {"ours": 3e-6, "floor": 2e-6, "new": 1e-6}, ("floor",))]
    rows = {(r.group, r.case): r for r in compare(load(tmp_path / "base.json"), now)}
    ours = rows["g", "ours"]
    assert ours.speedup == pytest.approx(2 / 3)
    assert ours.ref_drift == pytest.approx((2 / 3) / (1 / 2))
    assert rows["g", "floor"].ref_drift == pytest.approx(1.0)
    assert rows["g", "floor"].speedup == pytest.approx(0.5)
    assert rows["g", "new"].baseline is None and rows["g", "new"].speedup is None
    assert rows["g", "old"].now is None
    assert rows["gone group", "x"].now is None
    assert ours.slower(1.25)  # 1.5x slower in absolute time
    assert not ours.slower(2.0)
    table = format_comparison(list(rows.values()), tolerance=1.25)
    assert "| g | ours | 2 µs | 3 µs | 0.67 | 1.33 | SLOWER |" in table
    assert "| g | new | — | 1 µs | — | — | new |" in table
    assert "| g | old | 5 µs | — | — | — | gone |" in table


def test_baseline_drift_catches_a_regression_hidden_by_a_faster_machine() -> None:
    base: list[dict[str, object]] = [
        {
            "title": "g",
            "cases": [
                {"name": "ours", "seconds_per_op": 2e-6},
                {"name": "floor", "seconds_per_op": 1e-6},
            ],
        }
    ]
    # Everything ran twice as fast, but ours fell from 0.5x to 0.25x its floor.
    now = [_group("g", {"ours": 2e-6, "floor": 0.5e-6}, ("floor",))]
    (row, _) = compare(base, now)
    assert row.speedup == pytest.approx(1.0)
    assert row.ref_drift == pytest.approx(0.5)
    assert row.slower(1.25)


def test_baseline_load_refuses_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"title": "g"}')
    with pytest.raises(ValueError, match="not a benchmark results file"):
        load(path)
