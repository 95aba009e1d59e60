"""Schedules (faults, clock skews, a workload) as data, their strategies, and applying them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import find, given, settings

from dynamo_core.strategies import clock_skews, schedules, workloads
from dynamo_core.testing import (
    ClockSkew,
    Fault,
    FaultPlan,
    Operation,
    Schedule,
    Workload,
    World,
)
from dynamo_core.testing.world import Send

NAMES = ("a", "b", "c")


def ANY(value: Any) -> Any:  # a cast, for values of the wrong type
    return value


class Counter:
    """A process that counts what it is given and forwards nothing."""

    def __init__(self, disk: dict[str, int], now: float) -> None:
        self.disk = disk
        disk.setdefault("ops", 0)

    def receive(self, source: str, message: object, now: float) -> list[object]:
        return []

    def deadline(self) -> None:
        return None

    def on_timer(self, now: float) -> list[object]:
        return []

    def op(self) -> list[object]:
        self.disk["ops"] += 1
        return [Send("a", "hello")]


def world_of(names: tuple[str, ...] = NAMES) -> World:
    world = World(seed=1, start=5.0, record_trace=True)
    for name in names:
        world.spawn(name, Counter)
    return world


@settings(max_examples=50, deadline=None)
@given(schedules(NAMES, max_skews=3, max_operations=8, duration=3.0, kinds=("put", "get")))
def test_a_drawn_schedule_runs_each_event_at_its_time(schedule: Schedule) -> None:
    world = world_of()
    ran: list[tuple[float, Operation]] = []
    schedule.apply(world, lambda op: ran.append((world.now - 5.0, op)))
    world.run(schedule.end + 1.0)
    assert [op for _, op in ran] == list(schedule.workload.operations)
    assert all(abs(at - op.at) < 1e-9 for at, op in ran)
    ops = schedule.workload.operations
    assert [op.value for op in ops] == list(range(len(ops)))  # unique, in time order
    assert {op.kind for op in ops} <= {"put", "get"}
    assert world.trace_lines is not None
    skews = [line.split(" ", 1)[1] for line in world.trace_lines if " skew " in line]
    assert len(skews) == len(schedule.skews)
    for skew in schedule.skews:
        assert -1.0 <= skew.offset <= 1.0 and 0.5 <= skew.rate <= 1.5
    assert schedule.fault_events == len(schedule.faults.faults) + len(schedule.skews)
    assert len(str(schedule).splitlines()) == schedule.fault_events + len(ops)


def test_a_skew_moves_the_process_clock() -> None:
    world = world_of()
    Schedule(skews=(ClockSkew(1.0, "b", 2.0, 2.0),)).apply(world, lambda op: None)
    world.run(2.0)
    # b's clock: 6 at the skew, +2 jump, then twice as fast for 1 s
    assert world.local_time("b") == pytest.approx(10.0)
    assert world.local_time("a") == pytest.approx(7.0)


def test_operations_reach_their_processes_and_faults_apply() -> None:
    world = world_of()
    schedule = Schedule(
        FaultPlan((Fault(0.5, "crash", ("b",)),)),
        workload=Workload((Operation(0.2, "b", "put", "k", 0), Operation(1.0, "b", "put", "k", 1))),
    )

    def run(op: Operation) -> None:
        world.call(op.process, lambda counter, now: counter.op())

    schedule.apply(world, run)
    world.run(2.0)
    assert world.disk("b")["ops"] == 1  # the second put found b down
    assert not world.is_up("b")
    assert str(schedule) == "0.2s put k=0 via b\n0.5s crash b\n1s put k=1 via b"
    assert schedule.end == 1.0


def test_a_schedule_naming_an_unknown_process_schedules_nothing() -> None:
    world = world_of()
    schedule = Schedule(
        FaultPlan((Fault(0.5, "crash", ("a",)),)),
        workload=Workload((Operation(0.1, "zz", "put", "k"),)),
    )
    with pytest.raises(ValueError, match="lacks: zz"):
        schedule.apply(world, lambda op: None)
    world.run(1.0)
    assert world.is_up("a")


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: ClockSkew(-1.0, "a"), ValueError, "at"),
        (lambda: ClockSkew(0.0, "a", float("nan")), ValueError, "finite"),
        (lambda: ClockSkew(0.0, "a", ANY("1")), TypeError, "offset must be a number"),
        (lambda: ClockSkew(0.0, "a", 0.0, 0.0), ValueError, "rate"),
        (lambda: ClockSkew(0.0, ""), ValueError, "process"),
        (lambda: Operation(0.0, "a", "put", "k", ANY("1")), TypeError, "value"),
        (
            lambda: Workload((Operation(1.0, "a", "put", "k"), Operation(0.5, "a", "put", "k"))),
            ValueError,
            "in order",
        ),
        (lambda: Workload(ANY([Operation(1.0, "a", "put", "k")])), TypeError, "tuple of Operation"),
        (lambda: Schedule(faults=ANY(())), TypeError, "faults"),
        (lambda: Schedule(skews=(ClockSkew(2, "a"), ClockSkew(1, "a"))), ValueError, "order"),
    ],
)
def test_bad_values_are_refused(build: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()  # type: ignore[operator]


def test_the_strategies_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="processes must be distinct"):
        clock_skews(("a", "a"))
    with pytest.raises(ValueError, match="max_drift"):
        clock_skews(max_drift=1.0)
    with pytest.raises(ValueError, match="max_offset"):
        clock_skews(max_offset=-1)
    with pytest.raises(ValueError, match="max_skews"):
        clock_skews(max_skews=-1)
    with pytest.raises(ValueError, match="keys must be distinct"):
        workloads(keys=())
    with pytest.raises(ValueError, match="max_operations"):
        workloads(max_operations=10_001)
    with pytest.raises(ValueError, match="duration"):
        workloads(duration=0)


def test_schedules_shrink_to_a_few_round_events() -> None:
    smallest = find(
        schedules(NAMES, max_skews=2),
        lambda s: bool(s.skews) and bool(s.workload.operations) and bool(s.faults.faults),
        settings=settings(database=None, derandomize=True),
    )
    assert smallest.skews == (ClockSkew(0.0, "a", 0.0, 1.0),)
    assert smallest.workload == Workload((Operation(0.0, "a", "put", "k", 0),))
    assert len(smallest.faults.faults) == 1 and smallest.faults.faults[0].at == 0.0
