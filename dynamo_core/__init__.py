"""dynamo_core: the Amazon Dynamo primitives as an importable, pure-Python library.

The public names are importable from here directly::

    from dynamo_core import MemoryStorage, SQLiteStorage, TokenRange, token

Importing the package pulls in neither hypothesis nor asyncio; `dynamo_core.testing`,
`dynamo_core.strategies` and the drivers load only when imported.
"""

from dynamo_core._version import __version__
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
from dynamo_core.hashing import TokenRange, keyed_token, token, token_function
from dynamo_core.interfaces import Clock, ReplicaState, Storage, Transport
from dynamo_core.storage import MemoryStorage, SQLiteStorage

__all__ = [
    "Clock",
    "DecodeError",
    "DynamoError",
    "EmptyRingError",
    "LocalProtocolError",
    "MemoryStorage",
    "ProtocolError",
    "RemoteProtocolError",
    "ReplicaState",
    "SQLiteStorage",
    "Storage",
    "StorageClosedError",
    "StorageError",
    "TokenRange",
    "Transport",
    "Unavailable",
    "__version__",
    "keyed_token",
    "token",
    "token_function",
]
