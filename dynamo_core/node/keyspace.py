"""The layout of a node's storage namespace: every record prefix, key encoder and decoder.

A node keeps everything in one [`Storage`][dynamo_core.interfaces.Storage]:

| prefix | record |
| --- | --- |
| ``d/`` + token (8) + key | a replica state; filed by token so a token range is one scan |
| ``h/`` | the hint store's namespace |
| ``m/epoch`` | the actor epoch (KV679 guard) |
| ``m/membership`` | the membership state |
| ``m/life`` | a random id of this node's life (stored once) |
| ``m/served/`` + epoch (8) + index (8) | this node began serving that transfer's stream |
| ``m/dirty/`` + token (8) + key | a replica written after serving began |
| ``m/stream/`` + epoch (8) + index (8) | an incoming stream's cursor |
| ``q/`` + storage key | a corrupt node record, moved aside |

A *position* is token (8) + key: the part of a data key after its prefix, the cursor of a
range stream and the body of a dirty marker.
"""

from __future__ import annotations

from typing import Final

from dynamo_core.hashing import TOKEN_SPACE, TokenRange

DATA: Final = b"d/"
DATA_END: Final = b"d0"  # b"d/" + 1: the end of the data records
EPOCH_KEY: Final = b"m/epoch"
HINTS_NS: Final = b"h/"
HINTS_END: Final = b"h0"  # b"h/" + 1: the end of the hint store's records
MEMBERSHIP_KEY: Final = b"m/membership"
LIFE_KEY: Final = b"m/life"
SERVED: Final = b"m/served/"
SERVED_END: Final = b"m/served0"
DIRTY: Final = b"m/dirty/"
DIRTY_END: Final = b"m/dirty0"
STREAM: Final = b"m/stream/"
STREAM_END: Final = b"m/stream0"
QUARANTINE: Final = b"q/"

_TOKEN: Final = 8  # bytes of a big-endian token or counter
_KEY_AT: Final = len(DATA) + _TOKEN


def _u64(value: int) -> bytes:
    return value.to_bytes(_TOKEN, "big")


def data_key(key: bytes, token: int) -> bytes:
    """The storage key of `key`'s replica record (`token` is the key's ring token)."""
    return DATA + _u64(token) + key


def key_of(skey: bytes) -> bytes:
    """The user key of a replica record."""
    return skey[_KEY_AT:]


def token_of(skey: bytes) -> int:
    """The ring token a replica record is filed under."""
    return int.from_bytes(skey[len(DATA) : _KEY_AT], "big")


def position_of(skey: bytes) -> bytes:
    """A replica record's position (token + key): a stream cursor, a dirty marker's body."""
    return skey[len(DATA) :]


def data_key_at(position: bytes) -> bytes:
    """The storage key of the replica record at a position."""
    return DATA + position


def dirty_key(skey: bytes) -> bytes:
    """The marker that a replica record was written after this node began serving it."""
    return DIRTY + position_of(skey)


def data_bounds(piece: TokenRange, after: bytes | None = None) -> tuple[bytes, bytes]:
    """The scan bounds of the replica records in a non-wrapping `piece` (after a position)."""
    lo = DATA + (after + b"\x00" if after is not None else _u64(piece.start))
    hi = DATA_END if piece.end == TOKEN_SPACE else DATA + _u64(piece.end)
    return lo, hi


def served_key(epoch: int, index: int) -> bytes:
    """The record that this node began serving transfer `index` of ring version `epoch`."""
    return SERVED + _u64(epoch) + _u64(index)


def served_of(key: bytes) -> tuple[int, int]:
    """The ``(epoch, index)`` of a served-stream record."""
    body = key[len(SERVED) :]
    return int.from_bytes(body[:_TOKEN], "big"), int.from_bytes(body[_TOKEN : 2 * _TOKEN], "big")


def stream_key(epoch: int, index: int) -> bytes:
    """The cursor record of incoming transfer `index` of ring version `epoch`."""
    return STREAM + _u64(epoch) + _u64(index)


def stream_epoch(key: bytes) -> int:
    """The ring version a stream cursor record belongs to."""
    return int.from_bytes(key[len(STREAM) : len(STREAM) + _TOKEN], "big")


def quarantine_key(key: bytes) -> bytes:
    """Where a corrupt node record stored under `key` is moved aside."""
    return QUARANTINE + key


def encode_life(life: int) -> bytes:
    """The ``m/life`` record."""
    return _u64(life)


def decode_life(raw: bytes) -> int | None:
    """The life id of an ``m/life`` record, `None` if it is not one."""
    return int.from_bytes(raw, "big") if len(raw) == _TOKEN else None
