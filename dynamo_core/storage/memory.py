"""`MemoryStorage`: the in-memory reference `Storage`, on a `SortedDict`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from types import TracebackType
from typing import Self

from sortedcontainers import SortedDict

from dynamo_core._check import check_bytes
from dynamo_core.storage._common import closed_error, prepare_batch

__all__ = ["MemoryStorage"]

_SCAN_CHUNK = 256


class MemoryStorage:
    """An ordered in-memory key-value store of `bytes` to `bytes`. Not durable.

    It implements the [`Storage`][dynamo_core.interfaces.Storage] protocol and is the default
    wherever the library needs a store. `get`, `put` and `delete` are O(log n); `scan` yields
    k items in O(k + log n) and may run while the store is being written.

    Examples:
        >>> store = MemoryStorage()
        >>> store.write_batch([(b"b", b"2"), (b"a", b"1")])
        >>> list(store.scan())
        [(b'a', b'1'), (b'b', b'2')]
    """

    __slots__ = ("_closed", "_data")

    def __init__(self) -> None:
        self._data: SortedDict[bytes, bytes] = SortedDict()
        self._closed = False

    def _open_data(self) -> SortedDict[bytes, bytes]:
        if self._closed:
            raise closed_error("MemoryStorage")
        return self._data

    def __len__(self) -> int:
        """The number of keys stored."""
        return len(self._open_data())

    def get(self, key: bytes) -> bytes | None:
        """Return the value under `key`, or `None`. O(log n).

        Raises:
            TypeError: `key` is not `bytes`.
            StorageClosedError: the store is closed.
        """
        if type(key) is not bytes:
            check_bytes(key, "key")
        if self._closed:
            raise closed_error("MemoryStorage")
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`. O(log n).

        Raises:
            TypeError: `key` or `value` is not `bytes`.
            StorageClosedError: the store is closed.
        """
        if type(key) is not bytes:
            check_bytes(key, "key")
        if type(value) is not bytes:
            check_bytes(value, "value")
        if self._closed:
            raise closed_error("MemoryStorage")
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        """Remove `key` if present. O(log n).

        Raises:
            TypeError: `key` is not `bytes`.
            StorageClosedError: the store is closed.
        """
        check_bytes(key, "key")
        self._open_data().pop(key, None)

    def scan(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for ``start <= key < end`` in ascending order.

        Raises:
            TypeError: `start` or `end` is neither `None` nor `bytes`.
            StorageClosedError: the store is closed (when the iterator is created or resumed).
        """
        if start is not None:
            check_bytes(start, "start")
        if end is not None:
            check_bytes(end, "end")
        self._open_data()
        return self._scan(start, end)

    def _scan(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # Reads the keys in chunks and resumes after the last one seen, so writes between
        # chunks cannot invalidate the iterator or make it yield a key twice.
        lower, inclusive = start, True
        while True:
            data = self._open_data()
            keys = list(islice(data.irange(lower, end, inclusive=(inclusive, False)), _SCAN_CHUNK))
            for key in keys:
                value = data.get(key)
                if value is not None:
                    yield key, value
            if len(keys) < _SCAN_CHUNK:
                return
            lower, inclusive = keys[-1], False

    def write_batch(
        self, puts: Iterable[tuple[bytes, bytes]] = (), deletes: Iterable[bytes] = ()
    ) -> None:
        """Apply `puts` and `deletes` atomically: all items are checked before any is applied.

        Raises:
            TypeError: an item has the wrong type; nothing was applied.
            ValueError: a key is both put and deleted; nothing was applied.
            StorageClosedError: the store is closed.
        """
        data = self._open_data()
        put_map, delete_list = prepare_batch(puts, deletes)
        data.update(put_map)
        for key in delete_list:
            data.pop(key, None)

    def close(self) -> None:
        """Drop the data and refuse further use. Idempotent."""
        self._closed = True
        self._data = SortedDict()

    def __enter__(self) -> Self:
        self._open_data()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._data)} keys"
        return f"<MemoryStorage {state}>"
