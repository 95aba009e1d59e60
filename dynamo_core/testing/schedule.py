"""Schedules for a `World`: faults, clock skews and a workload, as plain data.

A [`Schedule`][dynamo_core.testing.Schedule] says which fault hits which process when (a
[`FaultPlan`][dynamo_core.testing.FaultPlan]), whose clock jumps or drifts when
([`ClockSkew`][dynamo_core.testing.ClockSkew]) and which client operation goes to which process
when (a [`Workload`][dynamo_core.testing.Workload] of
[`Operation`][dynamo_core.testing.Operation]s). Being data, hypothesis draws and shrinks it
([`schedules`][dynamo_core.strategies.schedules]) and prints the shrunk one as the constructor
call that rebuilds it; its `str` is the events in time order, one a line, for a person::

    schedule.apply(world, lambda op: world.call(op.process, my_client(op)))
    world.run(schedule.end + 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from dynamo_core._check import check_node_id, check_positive_float, check_time
from dynamo_core.testing.faults import FaultPlan

if TYPE_CHECKING:
    from dynamo_core.testing.world import World

__all__ = ["ClockSkew", "Operation", "Schedule", "Workload"]


def _at(_: object, __: attrs.Attribute[float], value: object) -> None:
    check_time(value, "at")


def _name(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    check_node_id(value, attribute.name)


def _offset(_: object, __: attrs.Attribute[float], value: object) -> None:
    if type(value) is not int and type(value) is not float:
        raise TypeError(f"offset must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"offset must be a finite number of seconds, got {value!r}")


def _rate(_: object, __: attrs.Attribute[float], value: object) -> None:
    check_positive_float(value, "rate")


def _sorted_by_time(kind: type[object], what: str) -> Callable[[object, object, object], None]:
    def check(_: object, __: object, items: object) -> None:
        if type(items) is not tuple or not all(type(item) is kind for item in items):
            raise TypeError(f"{what} must be a tuple of {kind.__name__}")
        times = [item.at for item in items]
        if times != sorted(times):
            raise ValueError(f"{what} must be in order of their times")

    return check


@attrs.frozen
class ClockSkew:
    """At `at` seconds, the clock of `process` jumps by `offset` seconds and then runs at `rate`.

    See [`World.skew`][dynamo_core.testing.World.skew]: a backward jump makes the clock stand
    still until the world catches up; it never goes back.

    Raises:
        TypeError, ValueError: `at` is not a time ``>= 0``, `process` not a valid name,
            `offset` not finite or `rate` not positive.
    """

    at: float = attrs.field(validator=_at)
    process: str = attrs.field(validator=_name)
    offset: float = attrs.field(default=0.0, validator=_offset)
    rate: float = attrs.field(default=1.0, validator=_rate)

    def __str__(self) -> str:
        return f"{self.at:g}s skew {self.process} {self.offset:+g}s x{self.rate:g}"


@attrs.frozen
class Operation:
    """One client operation: `kind` on `key` through `process`, at `at` seconds.

    `value` is unique in its workload (its index), so a final state shows which operation put
    a value there — what [`SetHistory`][dynamo_core.testing.SetHistory] needs.
    """

    at: float = attrs.field(validator=_at)
    process: str = attrs.field(validator=_name)
    kind: str = attrs.field(validator=attrs.validators.instance_of(str))
    key: str = attrs.field(validator=attrs.validators.instance_of(str))
    value: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))

    def __str__(self) -> str:
        return f"{self.at:g}s {self.kind} {self.key}={self.value} via {self.process}"


@attrs.frozen
class Workload:
    """Client operations in time order.

    Raises:
        TypeError, ValueError: `operations` is not a tuple of `Operation` in order of `at`.
    """

    operations: tuple[Operation, ...] = attrs.field(
        default=(), validator=_sorted_by_time(Operation, "operations")
    )

    def apply(self, world: World, run: Callable[[Operation], object]) -> None:
        """Call ``run(operation)`` at each operation's time, relative to the world's now."""
        start = world.now
        for operation in self.operations:
            world.call_at(start + operation.at, _bind(run, operation), None)


def _bind(run: Callable[[Operation], object], operation: Operation) -> Callable[[], None]:
    def call() -> None:
        run(operation)

    return call


@attrs.frozen
class Schedule:
    """Faults, clock skews and a workload for one run of a `World`.

    Attributes:
        faults: Crashes, restarts, partitions, pauses, ... (a `FaultPlan`).
        skews: Clock skews in time order.
        workload: The client operations.

    Raises:
        TypeError, ValueError: a part has the wrong type, or the skews are out of order.
    """

    faults: FaultPlan = attrs.field(
        default=FaultPlan(), validator=attrs.validators.instance_of(FaultPlan)
    )
    skews: tuple[ClockSkew, ...] = attrs.field(
        default=(), validator=_sorted_by_time(ClockSkew, "skews")
    )
    workload: Workload = attrs.field(
        default=Workload(), validator=attrs.validators.instance_of(Workload)
    )

    @property
    def fault_events(self) -> int:
        """How many fault events (faults and skews) the schedule holds: what shrinking cuts."""
        return len(self.faults.faults) + len(self.skews)

    @property
    def end(self) -> float:
        """The time of the last event (0 for an empty schedule)."""
        times = [self.faults.end]
        times += [skew.at for skew in self.skews[-1:]]
        times += [operation.at for operation in self.workload.operations[-1:]]
        return max(times)

    def apply(self, world: World, run: Callable[[Operation], object]) -> None:
        """Schedule every event on `world`, relative to its current time.

        Faults go through [`FaultPlan.apply`][dynamo_core.testing.FaultPlan.apply], skews
        through [`World.skew`][dynamo_core.testing.World.skew] and each operation to
        ``run(operation)``, which gives it to the process (``world.call``).

        Raises:
            ValueError: the schedule names a process the world lacks (nothing is scheduled).
        """
        named = set(self.faults.nodes)
        named.update(skew.process for skew in self.skews)
        named.update(operation.process for operation in self.workload.operations)
        unknown = sorted(named.difference(world.names))
        if unknown:
            raise ValueError(
                f"the schedule names processes the world lacks: {', '.join(unknown)} "
                f"(the world has {', '.join(world.names)})"
            )
        start = world.now
        self.faults.apply(world)
        for skew in self.skews:
            world.call_at(start + skew.at, _skewer(world, skew), None)
        self.workload.apply(world, run)

    def __str__(self) -> str:
        events: list[tuple[float, int, str]] = [
            (fault.at, 0, f"{fault.at:g}s {fault.action} {' '.join(fault.nodes)}".rstrip())
            for fault in self.faults.faults
        ]
        events += [(skew.at, 1, str(skew)) for skew in self.skews]
        events += [(op.at, 2, str(op)) for op in self.workload.operations]
        return "\n".join(text for _, _, text in sorted(events, key=lambda e: (e[0], e[1])))


def _skewer(world: World, skew: ClockSkew) -> Callable[[], None]:
    def run() -> None:
        world.skew(skew.process, skew.offset, rate=skew.rate)

    return run
