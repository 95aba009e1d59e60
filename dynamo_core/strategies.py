"""Hypothesis strategies for dynamo_core's types, for your own property-based tests.

They live in `dynamo_core.testing.strategies`, beside the other test helpers; this module is
their short import path and documents them.

Needs the ``hypothesis`` extra. Importing this module registers every type for
``st.from_type``, as importing `dynamo_core.testing.strategies` does.
"""

from __future__ import annotations

from dynamo_core.testing.strategies import (
    changes,
    clock_skews,
    concurrent_dvv_pairs,
    dvv_replicas,
    dvv_sets,
    fault_plans,
    hints,
    item_digests,
    keys,
    merkle_trees,
    node_ids,
    node_messages,
    quorum_policies,
    register_type_strategies,
    request_results,
    rings,
    schedules,
    simulation_configs,
    strategy_for_type,
    token_ranges,
    tokens,
    vector_clocks,
    version_records,
    versioned,
    workloads,
)

__all__ = [
    "changes",
    "clock_skews",
    "concurrent_dvv_pairs",
    "dvv_replicas",
    "dvv_sets",
    "fault_plans",
    "hints",
    "item_digests",
    "keys",
    "merkle_trees",
    "node_ids",
    "node_messages",
    "quorum_policies",
    "register_type_strategies",
    "request_results",
    "rings",
    "schedules",
    "simulation_configs",
    "strategy_for_type",
    "token_ranges",
    "tokens",
    "vector_clocks",
    "version_records",
    "versioned",
    "workloads",
]
