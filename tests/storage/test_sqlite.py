"""SQLiteStorage specifics: options, foreign files, WAL, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dynamo_core import SQLiteStorage, StorageError


def test_wal_and_synchronous_are_applied(tmp_path: Path) -> None:
    for mode, level in (("FULL", 2), ("NORMAL", 1)):
        path = tmp_path / f"{mode}.db"
        with SQLiteStorage(path, synchronous=mode) as store:  # type: ignore[arg-type]
            store.put(b"k", b"v")
            conn = store._conn
            assert conn is not None
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == level


def test_default_is_full_sync(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "db") as store:
        assert store.synchronous == "FULL"


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStorage(tmp_path / "db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        SQLiteStorage(42)  # type: ignore[arg-type]
    assert not (tmp_path / "db").exists()


def test_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="not a dynamo_core SQLite store"):
        SQLiteStorage(path)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db"
    SQLiteStorage(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="schema version 99"):
        SQLiteStorage(path)


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="cannot open"):
        SQLiteStorage(path)


def test_blob_order_matches_bytes_order_for_long_shared_prefixes(tmp_path: Path) -> None:
    keys = [b"p" * 300 + bytes([b]) for b in (0, 1, 127, 128, 255)] + [b"p" * 300, b"p" * 301]
    with SQLiteStorage(tmp_path / "db") as store:
        store.write_batch((k, b"") for k in reversed(keys))
        assert [k for k, _ in store.scan()] == sorted(keys)


def test_a_failing_batch_rolls_back(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    def puts() -> object:
        yield (b"a", b"1")
        raise Boom

    with SQLiteStorage(tmp_path / "db") as store:
        store.put(b"z", b"0")
        with pytest.raises(Boom):
            store.write_batch(puts())  # type: ignore[arg-type]
        assert dict(store.scan()) == {b"z": b"0"}


def test_a_second_connection_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with SQLiteStorage(path) as writer, SQLiteStorage(path) as reader:
        writer.write_batch([(b"a", b"1"), (b"b", b"2")])
        assert dict(reader.scan()) == {b"a": b"1", b"b": b"2"}


def test_repr_says_state(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "db")
    assert "FULL" in repr(store)
    store.close()
    assert "closed" in repr(store)


def test_bad_timeout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout"):
        SQLiteStorage(tmp_path / "db", timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        SQLiteStorage(tmp_path / "db", timeout="5")  # type: ignore[arg-type]
    assert not (tmp_path / "db").exists()
