"""Reference implementations of the [`Storage`][dynamo_core.interfaces.Storage] protocol.

* [`MemoryStorage`][dynamo_core.storage.MemoryStorage] — in memory, on a `SortedDict`.
* [`SQLiteStorage`][dynamo_core.storage.SQLiteStorage] — durable, one SQLite file in WAL mode.

To plug in your own backend, implement the protocol and run the conformance suite from
[`dynamo_core.testing`][dynamo_core.testing] against it (see the storage how-to).
"""

from dynamo_core.storage.memory import MemoryStorage
from dynamo_core.storage.sqlite import SQLiteStorage

__all__ = ["MemoryStorage", "SQLiteStorage"]
