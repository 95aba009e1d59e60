"""Hinted handoff: a bounded, durable store of hints, and the sans-I/O delivery core.

When a write for key *k* cannot reach one of *k*'s home replicas, a sloppy quorum writes it to a
fallback node instead, together with a **hint** naming the node the data belongs to. The fallback
keeps its hints in a [`HintStore`][dynamo_core.hints.HintStore] and, once the home node is
reachable again, a [`Handoff`][dynamo_core.hints.Handoff] delivers them and deletes each one
only after the target acknowledged it.

* [`Hint(target, key, state, created_at)`][dynamo_core.hints.Hint] — one hinted replica state.
* [`HintStore`][dynamo_core.hints.HintStore] — hints on any
  [`Storage`][dynamo_core.interfaces.Storage], at most one per (target, key) (later writes merge
  into it), capped per target in count and bytes, expired after a TTL, with a hint window per
  target, exact counters of what was dropped, expired and delivered, and a flag for every target
  whose lost hints anti-entropy must repair.
* [`Handoff`][dynamo_core.hints.Handoff] — the delivery protocol as a pure state machine: batches
  bounded by count and bytes, a bytes-per-second token bucket, one batch in flight per target,
  timeouts with exponential backoff. It returns effects
  ([`SendHints`][dynamo_core.hints.SendHints],
  [`HintsDelivered`][dynamo_core.hints.HintsDelivered],
  [`DeliveryFailed`][dynamo_core.hints.DeliveryFailed],
  [`HintsExpired`][dynamo_core.hints.HintsExpired]) for a driver to carry out.

The package has three modules: `store` (the store), `handoff` (the delivery core and the
[`HintSource`][dynamo_core.hints.HintSource] protocol it reads hints through, which `HintStore`
implements) and `wire` (the [`Hint`][dynamo_core.hints.Hint] record and the messages that carry
hints: [`HintBatch`][dynamo_core.hints.HintBatch] and [`HintAck`][dynamo_core.hints.HintAck]).
Every public name is importable from here.

The hinted state is any [`ReplicaState`][dynamo_core.interfaces.ReplicaState] with a
``from_dict`` decoder; [`DVVSet`][dynamo_core.DVVSet] is the default. Redelivering a hint is
harmless because the receiver merges it with ``sync``.
"""

from __future__ import annotations

from dynamo_core._check import MAX_KEY_BYTES
from dynamo_core.hints.handoff import (
    DeliveryFailed,
    Handoff,
    HandoffEffect,
    HintsDelivered,
    HintsExpired,
    HintSource,
    SendHints,
)
from dynamo_core.hints.store import (
    HintStats,
    HintStore,
    TargetStats,
)
from dynamo_core.hints.wire import (
    MAX_BATCH_HINTS,
    Hint,
    HintAck,
    HintBatch,
)

__all__ = [
    "MAX_BATCH_HINTS",
    "MAX_KEY_BYTES",
    "DeliveryFailed",
    "Handoff",
    "HandoffEffect",
    "Hint",
    "HintAck",
    "HintBatch",
    "HintSource",
    "HintStats",
    "HintStore",
    "HintsDelivered",
    "HintsExpired",
    "SendHints",
    "TargetStats",
]
