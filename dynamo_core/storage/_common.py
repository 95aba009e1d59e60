"""Validation shared by the storage backends, done before anything is written."""

from __future__ import annotations

from collections.abc import Iterable

from dynamo_core._check import check_bytes
from dynamo_core.errors import StorageClosedError


def prepare_batch(
    puts: Iterable[tuple[bytes, bytes]], deletes: Iterable[bytes]
) -> tuple[dict[bytes, bytes], list[bytes]]:
    """Check a whole batch and return it as ``(puts by key, deleted keys)``.

    A key put twice keeps its later value. Nothing is applied here, so a bad item anywhere in the
    batch leaves the store untouched.

    Raises:
        TypeError: an item is not a ``(bytes, bytes)`` pair or a delete is not `bytes`.
        ValueError: a key is both put and deleted.
    """
    put_map: dict[bytes, bytes] = {}
    for i, item in enumerate(puts):
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"puts[{i}] must be a (key, value) tuple, not {type(item).__name__}")
        key, value = item
        put_map[check_bytes(key, f"puts[{i}] key")] = check_bytes(value, f"puts[{i}] value")
    delete_list = [check_bytes(key, f"deletes[{i}]") for i, key in enumerate(deletes)]
    both = sorted(key for key in delete_list if key in put_map)
    if both:
        raise ValueError(f"key {both[0]!r} is both put and deleted in one batch")
    return put_map, delete_list


def closed_error(backend: str) -> StorageClosedError:
    """The error every operation on a closed store raises."""
    return StorageClosedError(f"{backend} is closed")
