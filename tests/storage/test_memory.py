"""MemoryStorage specifics."""

from __future__ import annotations

import pytest

from dynamo_core import MemoryStorage, StorageClosedError


def test_len_and_repr() -> None:
    store = MemoryStorage()
    store.write_batch([(b"a", b"1"), (b"b", b"2")])
    assert len(store) == 2
    assert "2 keys" in repr(store)
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(StorageClosedError):
        len(store)


def test_scan_is_lazy_and_chunked() -> None:
    store = MemoryStorage()
    store.write_batch((b"%04d" % i, b"") for i in range(1000))
    iterator = store.scan()
    first = next(iterator)
    store.delete(b"0500")
    rest = [k for k, _ in iterator]
    assert first[0] == b"0000"
    assert b"0500" not in rest
    assert len(rest) == 998
