"""The benchmark harness: round-robin order, medians and ratios (with a fake timer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.harness import Case, Group, format_table, measure, write_json


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
