"""`SQLiteStorage`: a durable `Storage` on the standard library's `sqlite3`."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Literal, Self

from dynamo_core._check import check_bytes, check_time
from dynamo_core.errors import StorageError, StorageFull
from dynamo_core.storage._common import closed_error, prepare_batch

__all__ = ["SQLiteStorage"]

_SCHEMA_VERSION: Final = 1
_SCAN_CHUNK: Final = 512
_SYNCHRONOUS: Final = ("FULL", "NORMAL")


class SQLiteStorage:
    """A durable, ordered key-value store of `bytes` to `bytes` in one SQLite file.

    The file is opened in WAL mode. With the default ``synchronous="FULL"`` every write is on
    disk when the call returns, so an acknowledged write survives a crash of the process *and* of
    the machine. ``synchronous="NORMAL"`` is several times faster and still survives a crash of
    the process (SIGKILL), but the last transactions may be lost if the machine loses power.

    Keys are stored as BLOBs, which SQLite orders with ``memcmp`` — the same order as Python's
    `bytes`. Reopening a file keeps its data; a file written by another program, or by a newer
    schema, is refused with [`StorageError`][dynamo_core.errors.StorageError].

    The object may be shared between threads (calls are serialized by a lock), which lets an
    asyncio application run it in a worker thread. `get`, `put` and `delete` are O(log n) B-tree
    operations; `scan` reads in chunks of 512 rows and never holds a read transaction between
    chunks.

    Args:
        path: The database file. It is created if missing.
        synchronous: ``"FULL"`` (default) or ``"NORMAL"``.
        timeout: Seconds to wait for another connection's lock before failing.

    Raises:
        TypeError: `path` is not a `str` or path-like, or an option has the wrong type.
        ValueError: `synchronous` is not one of the allowed values.
        StorageError: the file cannot be opened or is not a dynamo_core store.
    """

    __slots__ = ("_conn", "_lock", "path", "synchronous")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
        timeout = check_time(timeout, "timeout")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self._lock = threading.Lock()
        try:
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        try:
            self._setup(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        except StorageError:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if version == 0 and not tables:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID"
            )
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        elif version != _SCHEMA_VERSION or "kv" not in tables:
            raise StorageError(
                f"{self.path!r} is not a dynamo_core SQLite store "
                f"(schema version {version}, expected {_SCHEMA_VERSION})"
            )

    def _live(self) -> sqlite3.Connection:
        """Return the open connection; call with the lock held."""
        if self._conn is None:
            raise closed_error("SQLiteStorage")
        return self._conn

    def _error(self, exc: sqlite3.Error) -> StorageError:
        # A full disk (SQLITE_FULL, or the OS's ENOSPC under it) may pass: a typed error the
        # node turns into a degraded mode. Anything else means the store stopped working.
        full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        kind = StorageFull if full else StorageError
        return kind(f"SQLite store {self.path!r}: {exc}")

    def _execute(self, sql: str, params: Sequence[bytes]) -> list[Any]:
        with self._lock:
            conn = self._live()
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def get(self, key: bytes) -> bytes | None:
        """Return the value under `key`, or `None`. O(log n).

        Raises:
            TypeError: `key` is not `bytes`.
            StorageClosedError: the store is closed.
            StorageError: SQLite failed.
        """
        if type(key) is not bytes:
            check_bytes(key, "key")
        rows = self._execute("SELECT v FROM kv WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`; durable when it returns (see `synchronous`). O(log n).

        Raises:
            TypeError: `key` or `value` is not `bytes`.
            StorageClosedError: the store is closed.
            StorageFull: the disk is full; nothing was written (it may pass).
            StorageError: SQLite failed; nothing was written.
        """
        if type(key) is not bytes:
            check_bytes(key, "key")
        if type(value) is not bytes:
            check_bytes(value, "value")
        self._execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def delete(self, key: bytes) -> None:
        """Remove `key` if present. O(log n).

        Raises:
            TypeError: `key` is not `bytes`.
            StorageClosedError: the store is closed.
            StorageError: SQLite failed.
        """
        check_bytes(key, "key")
        self._execute("DELETE FROM kv WHERE k = ?", (key,))

    def scan(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for ``start <= key < end`` in ascending byte order.

        Raises:
            TypeError: `start` or `end` is neither `None` nor `bytes`.
            StorageClosedError: the store is closed (when the iterator is created or resumed).
            StorageError: SQLite failed.
        """
        if start is not None:
            check_bytes(start, "start")
        if end is not None:
            check_bytes(end, "end")
        with self._lock:
            self._live()
        return self._scan(start, end)

    def _scan(self, start: bytes | None, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        lower, op = start, ">="
        while True:
            clauses, params = [], []
            if lower is not None:
                clauses.append(f"k {op} ?")
                params.append(lower)
            if end is not None:
                clauses.append("k < ?")
                params.append(end)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            sql = f"SELECT k, v FROM kv {where} ORDER BY k LIMIT {_SCAN_CHUNK}"  # noqa: S608
            rows = self._execute(sql, params)
            yield from rows
            if len(rows) < _SCAN_CHUNK:
                return
            lower, op = rows[-1][0], ">"

    def write_batch(
        self, puts: Iterable[tuple[bytes, bytes]] = (), deletes: Iterable[bytes] = ()
    ) -> None:
        """Apply `puts` and `deletes` in one transaction; durable when it returns.

        Every item is checked before the transaction starts, and a failure inside it rolls the
        whole batch back.

        Raises:
            TypeError: an item has the wrong type; nothing was applied.
            ValueError: a key is both put and deleted; nothing was applied.
            StorageClosedError: the store is closed.
            StorageFull: the disk is full; nothing was applied (it may pass).
            StorageError: SQLite failed; nothing was applied.
        """
        put_map, delete_list = prepare_batch(puts, deletes)
        with self._lock:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", put_map.items()
                    )
                    conn.executemany("DELETE FROM kv WHERE k = ?", ((k,) for k in delete_list))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.rollback()
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def close(self) -> None:
        """Close the database file. Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Self:
        with self._lock:
            self._live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else self.synchronous
        return f"<SQLiteStorage {self.path!r} {state}>"
