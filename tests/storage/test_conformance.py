"""Both reference backends pass the shipped conformance suite."""

from __future__ import annotations

from pathlib import Path

from dynamo_core import MemoryStorage, SQLiteStorage
from dynamo_core.testing import StorageConformance


class TestMemoryStorage(StorageConformance):
    def make_storage(self, directory: Path) -> MemoryStorage:
        return MemoryStorage()


class TestSQLiteStorage(StorageConformance):
    durable = True

    def make_storage(self, directory: Path) -> SQLiteStorage:
        return SQLiteStorage(directory / "store.db")


class TestSQLiteStorageNormalSync(StorageConformance):
    durable = True

    def make_storage(self, directory: Path) -> SQLiteStorage:
        return SQLiteStorage(directory / "store.db", synchronous="NORMAL")
