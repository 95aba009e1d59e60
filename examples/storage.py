"""Plug-in storage: the same code runs on the in-memory and the durable SQLite backend.

Run it: ``python examples/storage.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dynamo_core import MemoryStorage, SQLiteStorage, Storage, StorageClosedError


def fill_and_scan(store: Storage) -> list[tuple[bytes, bytes]]:
    """Write a few carts atomically, delete one, and read a key range back in order."""
    store.write_batch(
        [(b"cart:carol", b"3 apples"), (b"cart:alice", b"1 book"), (b"user:alice", b"Alice")]
    )
    store.put(b"cart:bob", b"2 pens")
    store.delete(b"cart:carol")
    # Every key that starts with b"cart:" lies in [b"cart:", b"cart;"), since ";" follows ":".
    return list(store.scan(b"cart:", b"cart;"))


def main() -> None:
    with MemoryStorage() as memory:
        print("memory:", fill_and_scan(memory))

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "carts.db"
        with SQLiteStorage(path) as durable:  # WAL, synchronous=FULL: on disk when put() returns
            print("sqlite:", fill_and_scan(durable))
        with SQLiteStorage(path) as reopened:  # the data is still there after reopening
            print("reopened:", reopened.get(b"cart:bob"))
        try:
            reopened.get(b"cart:bob")
        except StorageClosedError as exc:
            print("after close:", exc)


if __name__ == "__main__":
    main()
