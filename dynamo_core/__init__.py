"""dynamo_core: the Amazon Dynamo primitives as an importable, pure-Python library.

The public names are importable from here directly::

    from dynamo_core import HashRing, MerkleTree, SQLiteStorage, VectorClock

Names resolve on first use, so ``import dynamo_core`` costs almost nothing and
``from dynamo_core import HashRing`` loads the ring's modules and nothing else (no sqlite3, no
asyncio). `dynamo_core.testing`, `dynamo_core.strategies` and the asyncio runtime
(`dynamo_core.aio`) load only when imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dynamo_core import _lazy
from dynamo_core._version import __version__

if TYPE_CHECKING:
    from dynamo_core.dvv import Dot, DVVSet
    from dynamo_core.epochs import ActorEpochs
    from dynamo_core.errors import (
        DecodeError,
        DynamoError,
        EmptyRingError,
        LocalProtocolError,
        ProtocolError,
        RemoteProtocolError,
        StorageClosedError,
        StorageError,
        Unavailable,
    )
    from dynamo_core.failure import PhiAccrualDetector
    from dynamo_core.hashing import TokenRange, keyed_token, token, token_function
    from dynamo_core.hints import (
        DeliveryFailed,
        Handoff,
        Hint,
        HintBatch,
        HintsDelivered,
        HintsExpired,
        HintStore,
        SendHints,
    )
    from dynamo_core.interfaces import Clock, ReplicaState, Storage, Transport
    from dynamo_core.membership import Change, Membership, RingVersion, VersionRecord
    from dynamo_core.merkle import (
        ExchangeReport,
        MerkleExchange,
        MerkleTree,
        depth_for,
        item_digest,
        run_exchange,
    )
    from dynamo_core.messages import GetReply, PutReply, RequestFailed
    from dynamo_core.node import Node, NodeConfig, RingChanged, TransferDone
    from dynamo_core.quorum import (
        Complete,
        ConsistencyLevel,
        CoordinatorState,
        Fetched,
        GetCoordinator,
        GetResult,
        PutCoordinator,
        PutResult,
        QuorumPolicy,
        Refused,
        SendFetch,
        SendRepair,
        SendStore,
        Stored,
    )
    from dynamo_core.ring import HashRing, Transfer
    from dynamo_core.storage import MemoryStorage, SQLiteStorage
    from dynamo_core.streaming import RangeStream
    from dynamo_core.vclock import Ordering, VectorClock, Versioned, last_write_wins, reconcile

# Each public name and the module that defines it, resolved by `__getattr__` on first use.
_SOURCES: dict[str, str] = {
    "DVVSet": "dynamo_core.dvv",
    "Dot": "dynamo_core.dvv",
    "ActorEpochs": "dynamo_core.epochs",
    "DecodeError": "dynamo_core.errors",
    "DynamoError": "dynamo_core.errors",
    "EmptyRingError": "dynamo_core.errors",
    "LocalProtocolError": "dynamo_core.errors",
    "ProtocolError": "dynamo_core.errors",
    "RemoteProtocolError": "dynamo_core.errors",
    "StorageClosedError": "dynamo_core.errors",
    "StorageError": "dynamo_core.errors",
    "Unavailable": "dynamo_core.errors",
    "PhiAccrualDetector": "dynamo_core.failure",
    "TokenRange": "dynamo_core.hashing",
    "keyed_token": "dynamo_core.hashing",
    "token": "dynamo_core.hashing",
    "token_function": "dynamo_core.hashing",
    "DeliveryFailed": "dynamo_core.hints",
    "Handoff": "dynamo_core.hints",
    "Hint": "dynamo_core.hints",
    "HintBatch": "dynamo_core.hints",
    "HintStore": "dynamo_core.hints",
    "HintsDelivered": "dynamo_core.hints",
    "HintsExpired": "dynamo_core.hints",
    "SendHints": "dynamo_core.hints",
    "Clock": "dynamo_core.interfaces",
    "ReplicaState": "dynamo_core.interfaces",
    "Storage": "dynamo_core.interfaces",
    "Transport": "dynamo_core.interfaces",
    "Change": "dynamo_core.membership",
    "Membership": "dynamo_core.membership",
    "RingVersion": "dynamo_core.membership",
    "VersionRecord": "dynamo_core.membership",
    "ExchangeReport": "dynamo_core.merkle",
    "MerkleExchange": "dynamo_core.merkle",
    "MerkleTree": "dynamo_core.merkle",
    "depth_for": "dynamo_core.merkle",
    "item_digest": "dynamo_core.merkle",
    "run_exchange": "dynamo_core.merkle",
    "GetReply": "dynamo_core.messages",
    "PutReply": "dynamo_core.messages",
    "RequestFailed": "dynamo_core.messages",
    "Node": "dynamo_core.node",
    "NodeConfig": "dynamo_core.node",
    "RingChanged": "dynamo_core.node",
    "TransferDone": "dynamo_core.node",
    "Complete": "dynamo_core.quorum",
    "ConsistencyLevel": "dynamo_core.quorum",
    "CoordinatorState": "dynamo_core.quorum",
    "Fetched": "dynamo_core.quorum",
    "GetCoordinator": "dynamo_core.quorum",
    "GetResult": "dynamo_core.quorum",
    "PutCoordinator": "dynamo_core.quorum",
    "PutResult": "dynamo_core.quorum",
    "QuorumPolicy": "dynamo_core.quorum",
    "Refused": "dynamo_core.quorum",
    "SendFetch": "dynamo_core.quorum",
    "SendRepair": "dynamo_core.quorum",
    "SendStore": "dynamo_core.quorum",
    "Stored": "dynamo_core.quorum",
    "HashRing": "dynamo_core.ring",
    "Transfer": "dynamo_core.ring",
    "MemoryStorage": "dynamo_core.storage",
    "SQLiteStorage": "dynamo_core.storage",
    "RangeStream": "dynamo_core.streaming",
    "Ordering": "dynamo_core.vclock",
    "VectorClock": "dynamo_core.vclock",
    "Versioned": "dynamo_core.vclock",
    "last_write_wins": "dynamo_core.vclock",
    "reconcile": "dynamo_core.vclock",
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _SOURCES, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, __all__)


__all__ = [
    "ActorEpochs",
    "Change",
    "Clock",
    "Complete",
    "ConsistencyLevel",
    "CoordinatorState",
    "DVVSet",
    "DecodeError",
    "DeliveryFailed",
    "Dot",
    "DynamoError",
    "EmptyRingError",
    "ExchangeReport",
    "Fetched",
    "GetCoordinator",
    "GetReply",
    "GetResult",
    "Handoff",
    "HashRing",
    "Hint",
    "HintBatch",
    "HintStore",
    "HintsDelivered",
    "HintsExpired",
    "LocalProtocolError",
    "Membership",
    "MemoryStorage",
    "MerkleExchange",
    "MerkleTree",
    "Node",
    "NodeConfig",
    "Ordering",
    "PhiAccrualDetector",
    "ProtocolError",
    "PutCoordinator",
    "PutReply",
    "PutResult",
    "QuorumPolicy",
    "RangeStream",
    "Refused",
    "RemoteProtocolError",
    "ReplicaState",
    "RequestFailed",
    "RingChanged",
    "RingVersion",
    "SQLiteStorage",
    "SendFetch",
    "SendHints",
    "SendRepair",
    "SendStore",
    "Storage",
    "StorageClosedError",
    "StorageError",
    "Stored",
    "TokenRange",
    "Transfer",
    "TransferDone",
    "Transport",
    "Unavailable",
    "VectorClock",
    "VersionRecord",
    "Versioned",
    "__version__",
    "depth_for",
    "item_digest",
    "keyed_token",
    "last_write_wins",
    "reconcile",
    "run_exchange",
    "token",
    "token_function",
]
