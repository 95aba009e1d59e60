"""Fault plans: a timed list of crashes, restarts and partitions to run on a `SimulatedCluster`.

A [`FaultPlan`][dynamo_core.testing.FaultPlan] is plain data, so hypothesis can draw, shrink and
print it ([`fault_plans`][dynamo_core.strategies.fault_plans]); its repr is the constructor call
that rebuilds it. Apply it to a cluster, then drive your workload::

    plan = FaultPlan((Fault(0.5, "crash", ("n2",)), Fault(2.0, "restart", ("n2",))))
    cluster = SimulatedCluster(5, seed=7)
    plan.apply(cluster)
    ...  # puts and gets, cluster.run(...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, get_args

import attrs

from dynamo_core._check import check_node_id, check_time

if TYPE_CHECKING:
    from dynamo_core.testing.cluster import SimulatedCluster
    from dynamo_core.testing.world import World

__all__ = ["Fault", "FaultAction", "FaultPlan"]

FaultAction = Literal[
    "crash", "wipe", "restart", "isolate", "rejoin", "partition", "heal", "pause", "resume"
]
"""What a fault does: ``crash`` stops its nodes, ``wipe`` stops them and erases their storage
(amnesia), ``restart`` boots crashed nodes again, ``isolate`` cuts them off (still running),
``rejoin`` undoes that, ``partition`` splits its nodes from the rest, ``heal`` removes every
partition and isolation (its `nodes` is empty), ``pause`` stops them processing (a gray
failure: what reaches them waits) and ``resume`` lets them go on."""

_ACTIONS: tuple[str, ...] = get_args(FaultAction)


def _check_nodes(fault: Fault, _: attrs.Attribute[tuple[str, ...]], nodes: object) -> None:
    if type(nodes) is not tuple:
        raise TypeError(f"nodes must be a tuple of node names, not {type(nodes).__name__}")
    for node in nodes:
        check_node_id(node, "nodes[...]")
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must be distinct, got {nodes!r}")
    if (fault.action == "heal") != (not nodes):
        raise ValueError(f"a {fault.action!r} fault needs {'no' if nodes else 'some'} nodes")


def _check_action(_: Fault, __: attrs.Attribute[str], action: object) -> None:
    if action not in _ACTIONS:
        raise ValueError(f"action must be one of {', '.join(_ACTIONS)}; got {action!r}")


def _check_at(_: Fault, __: attrs.Attribute[float], at: object) -> None:
    check_time(at, "at")


@attrs.frozen
class Fault:
    """One fault: `action` on `nodes`, `at` seconds after the plan is applied.

    Raises:
        TypeError, ValueError: `at` is not a finite time ``>= 0``, `action` is not a
            [`FaultAction`][dynamo_core.testing.faults.FaultAction], or `nodes` is not a tuple
            of distinct node names (empty for ``heal`` only).
    """

    at: float = attrs.field(validator=_check_at)
    action: FaultAction = attrs.field(validator=_check_action)
    nodes: tuple[str, ...] = attrs.field(default=(), validator=_check_nodes)


def _check_faults(_: FaultPlan, __: attrs.Attribute[tuple[Fault, ...]], faults: object) -> None:
    if type(faults) is not tuple or not all(type(f) is Fault for f in faults):
        raise TypeError("faults must be a tuple of Fault")
    times = [fault.at for fault in faults]
    if times != sorted(times):
        raise ValueError("faults must be in order of their times")


@attrs.frozen
class FaultPlan:
    """Faults in time order, to apply to a `SimulatedCluster` or a `World`.

    Its `str` is the schedule one fault a line (``0.5s crash n2``), for a person to read.

    Raises:
        TypeError, ValueError: `faults` is not a tuple of `Fault` in order of `at`.
    """

    faults: tuple[Fault, ...] = attrs.field(default=(), validator=_check_faults)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node the plan names, sorted."""
        return tuple(sorted({node for fault in self.faults for node in fault.nodes}))

    @property
    def end(self) -> float:
        """The time of the last fault (0 for an empty plan)."""
        return self.faults[-1].at if self.faults else 0.0

    def __str__(self) -> str:
        return "\n".join(
            f"{fault.at:g}s {fault.action} {' '.join(fault.nodes)}".rstrip()
            for fault in self.faults
        )

    def apply(self, cluster: SimulatedCluster | World) -> None:
        """Schedule every fault on `cluster` (or world), relative to its current virtual time.

        A fault that does not fit the cluster's state when its time comes (a crash of a node
        that is already down, a restart of a running one) is skipped and recorded in the trace,
        so a plan stays valid beside a scenario of your own.

        Raises:
            ValueError: the plan names a node the cluster does not have (nothing is scheduled).
        """
        unknown = [node for node in self.nodes if node not in cluster.nodes]
        if unknown:
            raise ValueError(
                f"the fault plan names nodes the cluster lacks: {', '.join(unknown)} "
                f"(the cluster has {', '.join(cluster.nodes)})"
            )
        start = cluster.now
        for fault in self.faults:
            cluster.call_at(start + fault.at, _runner(cluster, fault), f"fault {fault.action}")


def _runner(cluster: SimulatedCluster | World, fault: Fault) -> Callable[[], None]:
    action = fault.action

    def run() -> None:
        if action == "partition":
            cluster.partition(fault.nodes)
        elif action == "heal":
            cluster.heal()
        for node in fault.nodes if action in ("crash", "wipe", "restart") else ():
            up = cluster.is_up(node)
            if up == (action == "restart"):
                cluster.record(f"skipped {action} {node}: it is {'up' if up else 'down'}")
            elif action == "restart":
                cluster.restart(node)
            else:
                cluster.crash(node, wipe=action == "wipe")
        for node in fault.nodes if action in ("isolate", "rejoin") else ():
            (cluster.isolate if action == "isolate" else cluster.rejoin)(node)
        for node in fault.nodes if action in ("pause", "resume") else ():
            want = "paused" if action == "resume" else "running"
            if not (cluster.is_up(node) and cluster.is_paused(node) == (action == "resume")):
                cluster.record(f"skipped {action} {node}: it is not {want}")
            else:
                (cluster.pause if action == "pause" else cluster.resume)(node)

    return run
