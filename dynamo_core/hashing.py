"""The token hash and token ranges: where a key sits on the 64-bit ring.

A *token* is an unsigned 64-bit integer in ``[0, 2**64)``. The ring places nodes and keys by
token, and Merkle trees group keys into segments by token, so both use the functions here and
agree on every key.

Two hash functions are offered:

* [`token`][dynamo_core.hashing.token] (the default) — the low 64 bits of MurmurHash3 x64 128-bit
  with seed 0 over the key's bytes (a `str` key is its UTF-8 encoding). This is ``h1`` of the
  reference ``MurmurHash3_x64_128``, read as an unsigned little-endian 64-bit integer, so other
  languages reproduce placement exactly. It is fast (tens of nanoseconds) but *public*: anyone
  can compute it, and so grind keys that all land on one node.
* [`keyed_token`][dynamo_core.hashing.keyed_token] — BLAKE2b with an 8-byte digest, keyed with a
  cluster secret of 16 to 64 bytes, read as an unsigned little-endian integer. Use it when users
  choose keys and you cannot trust them to spread out (about 5x slower than the default).

Neither depends on `hash()`, `PYTHONHASHSEED`, the process or the machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import partial
from typing import Final, Self, TypeAlias

import attrs
import mmh3

from dynamo_core import codec
from dynamo_core._check import check_key

__all__ = [
    "TOKEN_BITS",
    "TOKEN_SPACE",
    "TokenFn",
    "TokenRange",
    "coalesce",
    "keyed_token",
    "murmur3_128",
    "token",
    "token_function",
]

TOKEN_BITS: Final = 64
TOKEN_SPACE: Final = 2**TOKEN_BITS
"""The number of tokens on the ring; tokens are in ``[0, TOKEN_SPACE)``."""

_MASK: Final = TOKEN_SPACE - 1
_hash128 = mmh3.hash128


murmur3_128: Final[Callable[[bytes], int]] = mmh3.mmh3_x64_128_uintdigest
"""The raw MurmurHash3 x64-128 (seed 0) of `bytes`, as an unsigned 128-bit integer.

A key's default token is its low 64 bits: ``token(key) == murmur3_128(key_bytes) & (2**64 - 1)``.
It checks nothing — pass `bytes` only (mmh3 crashes the interpreter on a `str` holding a lone
surrogate) — so it is for hot loops over keys that were already checked; it saves the argument
parsing of ``mmh3.hash128(data, 0, True, False)`` on every call.
"""

TokenFn: TypeAlias = Callable[[str | bytes], int]
"""A function from a key to its token."""

MIN_SECRET_BYTES: Final = 16
MAX_SECRET_BYTES: Final = 64


def token(key: str | bytes) -> int:
    """Return the default (MurmurHash3) token of `key`. Cost: O(len(key)).

    Args:
        key: A `str` (hashed as UTF-8) or `bytes`.

    Returns:
        An integer in ``[0, 2**64)``.

    Raises:
        TypeError: `key` is neither `str` nor `bytes`.
        ValueError: `key` is a `str` that cannot be encoded as UTF-8 (a lone surrogate).
    """
    check_key(key)
    if type(key) is str:
        key = key.encode("utf-8")
    return _hash128(key, 0, True, False) & _MASK


def _check_secret(secret: object) -> bytes:
    if type(secret) is not bytes:
        raise TypeError(f"hash_key must be bytes, not {type(secret).__name__}")
    if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"hash_key must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes long, got {len(secret)}"
        )
    return secret


def keyed_token(key: str | bytes, secret: bytes) -> int:
    """Return the keyed (BLAKE2b) token of `key` under `secret`. Cost: O(len(key)).

    Without the secret, an attacker cannot predict which node a key lands on.

    Args:
        key: A `str` (hashed as UTF-8) or `bytes`.
        secret: The cluster secret, 16 to 64 bytes. Every node of a cluster must use the same one.

    Returns:
        An integer in ``[0, 2**64)``.

    Raises:
        TypeError: `key` is neither `str` nor `bytes`, or `secret` is not `bytes`.
        ValueError: `secret` has the wrong length, or `key` cannot be encoded as UTF-8.
    """
    check_key(key)
    _check_secret(secret)
    return _keyed(secret, key)


def _keyed(secret: bytes, key: str | bytes) -> int:
    data = key.encode("utf-8") if isinstance(key, str) else key
    digest = hashlib.blake2b(data, digest_size=8, key=secret).digest()
    return int.from_bytes(digest, "little")


def token_function(hash_key: bytes | None = None) -> TokenFn:
    """Return the token function for a cluster: the default, or keyed with `hash_key`.

    The returned function does not re-check `key`'s type on every call beyond what the
    hash needs; pass `str` or `bytes`.

    Raises:
        TypeError: `hash_key` is neither `None` nor `bytes`.
        ValueError: `hash_key` is not 16 to 64 bytes long.
    """
    if hash_key is None:
        return token
    return partial(_keyed, _check_secret(hash_key))


# -- token ranges ------------------------------------------------------------------------------


def _check_start(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int token, not {type(value).__name__}")
    if not 0 <= value < TOKEN_SPACE:
        raise ValueError(f"{attribute.name} must be in [0, 2**64), got {value}")


def _check_end(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int token, not {type(value).__name__}")
    if not 0 < value <= TOKEN_SPACE:
        raise ValueError(f"{attribute.name} must be in (0, 2**64], got {value}")


@attrs.frozen
class TokenRange:
    """A half-open range ``[start, end)`` of tokens on the 64-bit circle.

    ``start`` is in ``[0, 2**64)`` and ``end`` in ``(0, 2**64]``. When ``start < end`` the range
    is the plain interval; when ``start >= end`` it wraps past the top of the circle and covers
    ``[start, 2**64)`` and ``[0, end)``. So ``TokenRange(0, 2**64)`` is the whole circle, and
    ``TokenRange(t, t)`` is the whole circle read from ``t``. A range is never empty.

    Raises:
        TypeError: `start` or `end` is not an `int`.
        ValueError: `start` or `end` is outside its bounds.
    """

    start: int = attrs.field(validator=_check_start)
    end: int = attrs.field(validator=_check_end)

    @classmethod
    def whole(cls) -> TokenRange:
        """Return the whole circle, ``[0, 2**64)``."""
        return cls(0, TOKEN_SPACE)

    @property
    def wraps(self) -> bool:
        """Whether the range runs past the top of the circle back to 0."""
        return self.start >= self.end

    @property
    def size(self) -> int:
        """The number of tokens in the range, in ``1 .. 2**64``."""
        if self.start < self.end:
            return self.end - self.start
        return TOKEN_SPACE - self.start + self.end

    def __contains__(self, tok: object) -> bool:
        if type(tok) is not int:
            return False
        if self.start < self.end:
            return self.start <= tok < self.end
        return (self.start <= tok < TOKEN_SPACE) or (0 <= tok < self.end)

    def pieces(self) -> tuple[TokenRange, ...]:
        """Return the range as one or two ranges that do not wrap, in token order."""
        if self.start < self.end:
            return (self,)
        # A wrapping range has 0 < end <= start < 2**64, so both pieces are non-empty.
        return (TokenRange(0, self.end), TokenRange(self.start, TOKEN_SPACE))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as ``{"type": "token_range", "v": 1, "start": ..., "end": ...}``."""
        return codec.envelope("token_range", {"start": self.start, "end": self.end})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode what [`to_dict`][dynamo_core.hashing.TokenRange.to_dict] produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded token range.
        """
        obj = codec.open_envelope(data, "token_range", required=("start", "end"))
        start = codec.as_int(obj["start"], "token_range.start", lo=0, hi=TOKEN_SPACE - 1)
        end = codec.as_int(obj["end"], "token_range.end", lo=1, hi=TOKEN_SPACE)
        return cls(start, end)

    def __repr__(self) -> str:
        return f"TokenRange({self.start:#018x}, {self.end:#x})"


def coalesce(ranges: Iterable[TokenRange]) -> list[TokenRange]:
    """Merge ranges that touch or overlap into maximal ranges. Cost: O(k log k) for k ranges.

    Wrapping ranges are first split into their pieces. The result is sorted by ``start``, its
    ranges do not wrap and no two of them touch.

    Returns:
        The coalesced ranges.
    """
    pieces = sorted((piece.start, piece.end) for rng in ranges for piece in rng.pieces())
    out: list[TokenRange] = []
    cur_start = cur_end = -1
    for start, end in pieces:
        if start <= cur_end:
            cur_end = max(cur_end, end)
            continue
        if cur_end >= 0:
            out.append(TokenRange(cur_start, cur_end))
        cur_start, cur_end = start, end
    if cur_end >= 0:
        out.append(TokenRange(cur_start, cur_end))
    return out
