"""dynamo_core: the Amazon Dynamo primitives as an importable, pure-Python library.

The public names are importable from here directly::

    from dynamo_core import MemoryStorage, SQLiteStorage, TokenRange, token

Importing the package pulls in neither hypothesis nor asyncio; `dynamo_core.testing`,
`dynamo_core.strategies` and the drivers load only when imported.
"""

from dynamo_core._version import __version__
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
