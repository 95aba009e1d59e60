"""Test support for dynamo_core and for applications built on it.

Needs no extra: the names load on first use. Only the storage conformance suite
(`StorageConformance`, `storage_state_machine`) needs pytest and hypothesis
(``pip install dynamo-core[hypothesis]`` plus pytest); run it with the pytest plugin
[`dynamo_core.testing.pytest_plugin`][dynamo_core.testing.pytest_plugin] on (installed
with dynamo-core) so its failures show values.

* [`StorageConformance`][dynamo_core.testing.StorageConformance] — the conformance suite every
  [`Storage`][dynamo_core.interfaces.Storage] backend must pass; subclass it in your own tests.
* [`ReplicaStateLaws`][dynamo_core.testing.ReplicaStateLaws] — the laws every
  [`ReplicaState`][dynamo_core.interfaces.ReplicaState] must satisfy, as a test class to
  subclass ([`check_replica_state_laws`][dynamo_core.testing.check_replica_state_laws] checks
  three given states); needs hypothesis.
* [`storage_state_machine`][dynamo_core.testing.storage_state_machine] — a hypothesis stateful
  test that runs a backend beside a dict model.
* [`FakeClock`][dynamo_core.testing.FakeClock] — a [`Clock`][dynamo_core.interfaces.Clock] that
  moves only when told to.
* [`QuorumHarness`][dynamo_core.testing.QuorumHarness] — the quorum coordinators wired to
  in-memory replicas over a seeded, virtual-time network (delays, drops, refusals, silent
  nodes), with [`DotSet`][dynamo_core.testing.DotSet], a minimal replica state.
* [`SetHistory`][dynamo_core.testing.SetHistory] — Jepsen's set-full checker: which acknowledged
  writes were lost, which unacknowledged ones survived, what appeared from nowhere.
* [`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] — whole
  [`Node`][dynamo_core.node.Node]s in one thread and virtual time, over a seeded network
  ([`NetworkConfig`][dynamo_core.testing.NetworkConfig]) that delays, drops, duplicates and
  reorders, with partitions, crashes, restarts and amnesia: script a scenario with it.
* [`Simulation`][dynamo_core.testing.Simulation] — one seeded run of a shopping-cart workload
  under random faults, judged by the history checker
  ([`SimulationConfig`][dynamo_core.testing.SimulationConfig],
  [`SimulationResult`][dynamo_core.testing.SimulationResult]);
  [`run_simulations`][dynamo_core.testing.run_simulations] runs many seeds into a
  [`SimulationSummary`][dynamo_core.testing.SimulationSummary].
* [`FaultPlan`][dynamo_core.testing.FaultPlan] — crashes, restarts and partitions at set times,
  to apply to a `SimulatedCluster`; hypothesis draws them with
  [`fault_plans`][dynamo_core.strategies.fault_plans].
* [`World`][dynamo_core.testing.World] — the generic deterministic simulator: processes of any
  sans-I/O protocol over the same seeded, faulty network, with crashes (and what survives on
  disk), amnesia, pauses and clock skew; `SimulatedCluster` runs the library's nodes in it.
* Checkers returning a [`Verdict`][dynamo_core.testing.Verdict]:
  [`set_full`][dynamo_core.testing.set_full], [`converged`][dynamo_core.testing.converged] /
  [`converge`][dynamo_core.testing.converge],
  [`ReadYourWrites`][dynamo_core.testing.ReadYourWrites], and yours, run together by
  [`check_all`][dynamo_core.testing.check_all].
* [`Schedule`][dynamo_core.testing.Schedule] — a whole run's faults, clock skews
  ([`ClockSkew`][dynamo_core.testing.ClockSkew]) and client operations
  ([`Workload`][dynamo_core.testing.Workload] of [`Operation`][dynamo_core.testing.Operation]s)
  as data, to apply to a `World`; hypothesis draws and shrinks them with
  [`schedules`][dynamo_core.strategies.schedules].
* [`kill_during`][dynamo_core.testing.kill_during] — SIGKILL a writer process in the middle of
  its work and collect what it acknowledged: the core of a durability (crash) test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dynamo_core import _lazy

if TYPE_CHECKING:
    from dynamo_core.testing.checks import (
        ReadYourWrites,
        Verdict,
        check_all,
        converge,
        converged,
        set_full,
    )
    from dynamo_core.testing.clock import FakeClock
    from dynamo_core.testing.cluster import SimulatedCluster
    from dynamo_core.testing.crash import kill_during
    from dynamo_core.testing.faults import Fault, FaultPlan
    from dynamo_core.testing.history import SetCheck, SetHistory
    from dynamo_core.testing.laws import ReplicaStateLaws, check_replica_state_laws
    from dynamo_core.testing.quorum import Behaviour, DotSet, QuorumHarness
    from dynamo_core.testing.schedule import ClockSkew, Operation, Schedule, Workload
    from dynamo_core.testing.simulation import (
        CHURN_EVENTS,
        FAULTS,
        RESOLVERS,
        Cart,
        Simulation,
        SimulationConfig,
        SimulationResult,
        SimulationSummary,
        run_simulations,
    )
    from dynamo_core.testing.storage import StorageConformance, storage_state_machine
    from dynamo_core.testing.world import NetworkConfig, World

# Each public name and the submodule that defines it. Names resolve on first use, so
# ``from dynamo_core.testing import Simulation`` needs neither pytest nor hypothesis: only the
# conformance suite (`dynamo_core.testing.storage`) imports them.
_SOURCES = {
    name: f"dynamo_core.testing.{module}"
    for name, module in {
        "FakeClock": "clock",
        "NetworkConfig": "world",
        "SimulatedCluster": "cluster",
        "kill_during": "crash",
        "Fault": "faults",
        "FaultPlan": "faults",
        "SetCheck": "history",
        "SetHistory": "history",
        "Behaviour": "quorum",
        "DotSet": "quorum",
        "QuorumHarness": "quorum",
        "ClockSkew": "schedule",
        "Operation": "schedule",
        "Schedule": "schedule",
        "Workload": "schedule",
        "CHURN_EVENTS": "simulation",
        "FAULTS": "simulation",
        "RESOLVERS": "simulation",
        "Cart": "simulation",
        "Simulation": "simulation",
        "SimulationConfig": "simulation",
        "SimulationResult": "simulation",
        "SimulationSummary": "simulation",
        "run_simulations": "simulation",
        "ReplicaStateLaws": "laws",
        "check_replica_state_laws": "laws",
        "StorageConformance": "storage",
        "storage_state_machine": "storage",
        "World": "world",
        "ReadYourWrites": "checks",
        "Verdict": "checks",
        "check_all": "checks",
        "converge": "checks",
        "converged": "checks",
        "set_full": "checks",
    }.items()
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _SOURCES, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, __all__)


__all__ = [
    "CHURN_EVENTS",
    "FAULTS",
    "RESOLVERS",
    "Behaviour",
    "Cart",
    "ClockSkew",
    "DotSet",
    "FakeClock",
    "Fault",
    "FaultPlan",
    "NetworkConfig",
    "Operation",
    "QuorumHarness",
    "ReadYourWrites",
    "ReplicaStateLaws",
    "Schedule",
    "SetCheck",
    "SetHistory",
    "SimulatedCluster",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "SimulationSummary",
    "StorageConformance",
    "Verdict",
    "Workload",
    "World",
    "check_all",
    "check_replica_state_laws",
    "converge",
    "converged",
    "kill_during",
    "run_simulations",
    "set_full",
    "storage_state_machine",
]
