"""Test support for dynamo_core and for applications built on it.

The conformance suite needs pytest and hypothesis (the ``test`` extra) and loads only when
`StorageConformance` or `storage_state_machine` is asked for; run it with the pytest plugin
[`dynamo_core.testing.pytest_plugin`][dynamo_core.testing.pytest_plugin] on (installed with
dynamo-core) so its failures show values.

* [`StorageConformance`][dynamo_core.testing.StorageConformance] — the conformance suite every
  [`Storage`][dynamo_core.interfaces.Storage] backend must pass; subclass it in your own tests.
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
* [`kill_during`][dynamo_core.testing.kill_during] — SIGKILL a writer process in the middle of
  its work and collect what it acknowledged: the core of a durability (crash) test.
"""

from typing import TYPE_CHECKING

from dynamo_core.testing.clock import FakeClock
from dynamo_core.testing.cluster import NetworkConfig, SimulatedCluster
from dynamo_core.testing.crash import kill_during
from dynamo_core.testing.faults import Fault, FaultPlan
from dynamo_core.testing.history import SetCheck, SetHistory
from dynamo_core.testing.quorum import Behaviour, DotSet, QuorumHarness
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

if TYPE_CHECKING:
    from dynamo_core.testing.storage import StorageConformance, storage_state_machine

# The conformance suite needs pytest and hypothesis: it loads only when asked for.
_LAZY = {"StorageConformance": "storage", "storage_state_machine": "storage"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(f"dynamo_core.testing.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHURN_EVENTS",
    "FAULTS",
    "RESOLVERS",
    "Behaviour",
    "Cart",
    "DotSet",
    "FakeClock",
    "Fault",
    "FaultPlan",
    "NetworkConfig",
    "QuorumHarness",
    "SetCheck",
    "SetHistory",
    "SimulatedCluster",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "SimulationSummary",
    "StorageConformance",
    "kill_during",
    "run_simulations",
    "storage_state_machine",
]
