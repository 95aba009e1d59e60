"""Quorum coordination: Dynamo's get and put paths as pure, sans-I/O state machines.

A [`QuorumPolicy`][dynamo_core.quorum.QuorumPolicy] says how many replicas hold a key (`n`) and
how many must answer a read (`r`) or acknowledge a write (`w`).
[`PutCoordinator`][dynamo_core.quorum.PutCoordinator] and
[`GetCoordinator`][dynamo_core.quorum.GetCoordinator] run one request each: they decide whom to
ask, when the request has succeeded or can no longer succeed, which fallback takes a failed
replica's place (sloppy quorum and hints), and which replicas need read repair.

They never touch a socket, a clock or a random number generator. A *driver* — the deterministic
simulation, the asyncio runtime, or your own code — feeds them inputs and carries out the effects
they return::

    coordinator = PutCoordinator(policy, "cart:alice", candidates, state)
    effects = coordinator.start(now)              # SendStore(...) x n, SetTimer(at)
    effects = coordinator.receive("b", Stored(), now)
    effects = coordinator.on_timer(now)           # when coordinator.deadline() has passed

Every input method returns a list of effects: [`SendStore`][dynamo_core.quorum.SendStore],
[`SendFetch`][dynamo_core.quorum.SendFetch], [`SendRepair`][dynamo_core.quorum.SendRepair],
[`SetTimer`][dynamo_core.quorum.SetTimer] and, exactly once,
[`Complete`][dynamo_core.quorum.Complete] with the request's result or an
[`Unavailable`][dynamo_core.errors.Unavailable] error. Misuse raises
[`LocalProtocolError`][dynamo_core.errors.LocalProtocolError] (the caller's fault) or
[`RemoteProtocolError`][dynamo_core.errors.RemoteProtocolError] (a peer's fault, such as a reply
from a node that was never asked) and changes nothing.

The coordinators are generic over the replica state: anything that satisfies
[`ReplicaState`][dynamo_core.interfaces.ReplicaState] (`sync`, `descends`, `to_dict`), with
[`DVVSet`][dynamo_core.DVVSet] as the library's default. They take the key's candidate nodes as a
plain sequence (``ring.walk(key)`` minus the nodes believed down) and never import the ring.
"""

from __future__ import annotations

from dynamo_core.effects import SetTimer
from dynamo_core.quorum.coordinators import (
    DEFAULT_TIMEOUT,
    CoordinatorEvent,
    CoordinatorState,
    GetCoordinator,
    PutCoordinator,
    Transition,
)
from dynamo_core.quorum.messages import (
    Complete,
    Fetched,
    GetEffect,
    GetResult,
    Key,
    PutEffect,
    PutResult,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.quorum.policy import ConsistencyLevel, QuorumPolicy

__all__ = [
    "DEFAULT_TIMEOUT",
    "Complete",
    "ConsistencyLevel",
    "CoordinatorEvent",
    "CoordinatorState",
    "Fetched",
    "GetCoordinator",
    "GetEffect",
    "GetResult",
    "Key",
    "PutCoordinator",
    "PutEffect",
    "PutResult",
    "QuorumPolicy",
    "Refused",
    "SendFetch",
    "SendRepair",
    "SendStore",
    "SetTimer",
    "Stored",
    "Transition",
]
