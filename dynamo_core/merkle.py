"""Merkle trees for anti-entropy: incremental tictac trees, exact diffs and a frugal exchange.

Replicas drift — a hint is dropped, a write half-lands, a disk is replaced — and must find the few
keys that differ without shipping everything. Dynamo keeps one Merkle tree per key range and
compares trees top-down; this module provides the tree and the comparison protocol.

* [`MerkleTree`][dynamo_core.merkle.MerkleTree] covers one token range split into ``2**depth``
  *segments*. Each leaf is the XOR of the strong per-item digests of the keys in its segment (a
  *tictac* leaf, as in Riak), so a write updates its leaf in O(1) with no rescan, in any order,
  and trees over disjoint data merge by XOR. Inner nodes are BLAKE2b-128 hashes, domain-separated
  from leaves and bound to their height; the root binds the tree's depth, range and token
  function, so trees of different shape never compare equal.
* [`item_digest`][dynamo_core.merkle.item_digest] computes the per-item digest once per write
  (BLAKE2b-128 over the length-prefixed key and the value bytes); the tree only XORs it.
* [`MerkleTree.diff`][dynamo_core.merkle.MerkleTree.diff] returns the maximal differing token
  ranges, exact at segment granularity.
* [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] is a sans-I/O protocol between two
  replicas: it descends several levels per round trip into differing subtrees only, then fetches
  the ``(key, digest)`` lists of the differing segments and reports the keys that are missing on
  either side or different.
* [`depth_for`][dynamo_core.merkle.depth_for] chooses a tree's depth from its key count, as
  Cassandra does: a node with 1,000 ranges and 1M keys keeps its trees under 20 MiB (36 MiB at
  worst), within a 64 MiB budget.

Hash layout (all BLAKE2b with a 16-byte digest and a library personalization):

```text
item digest   = BLAKE2b-128(person="dynamo-core/item", len(key) as 8 bytes BE || key || value)
leaf (h = 0)  = XOR of the item digests of the segment's keys   (16 zero bytes when empty)
node (h >= 1) = BLAKE2b-128(person="dynamo-core/tree", 0x01 || h || left || right)
root          = BLAKE2b-128(person="dynamo-core/tree", 0x02 || format || depth || start
                            || end - 1 || token-function fingerprint || top node)
```
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import struct
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Final, Self, TypeAlias, assert_never

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_KEY_BYTES, check_key, check_positive_int, check_time, key_bytes
from dynamo_core.effects import SetTimer
from dynamo_core.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from dynamo_core.hashing import (
    TOKEN_SPACE,
    TokenFn,
    TokenRange,
    coalesce,
    murmur3_128,
    token,
)

__all__ = [
    "DEFAULT_DEPTH",
    "DIGEST_SIZE",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "MAX_LEVELS_PER_ROUND",
    "Abort",
    "Close",
    "Done",
    "Effect",
    "ExchangeReport",
    "ExchangeRole",
    "ExchangeState",
    "Failed",
    "GetItems",
    "GetNodes",
    "Hello",
    "InSync",
    "ItemSource",
    "Items",
    "LoadItems",
    "MerkleExchange",
    "MerkleTree",
    "Message",
    "Nodes",
    "Send",
    "SetTimer",
    "UseDepth",
    "decode_message",
    "depth_for",
    "encode_message",
    "item_digest",
    "message_from_dict",
    "run_exchange",
    "tree_memory",
]

DIGEST_SIZE: Final = 16
"""Bytes in an item digest, a leaf and an inner node (BLAKE2b-128)."""

MAX_DEPTH: Final = 20
"""The deepest tree allowed (``2**20`` segments, 32 MiB), Cassandra's cap."""

DEFAULT_DEPTH: Final = 16
"""The default depth: 65,536 segments, 2 MiB per tree."""

MAX_LEVELS_PER_ROUND: Final = 8
"""The most levels one exchange request may descend (at most 256 digests per differing node)."""

_MASK: Final = TOKEN_SPACE - 1
_ZERO: Final = bytes(DIGEST_SIZE)
_FORMAT: Final = 1
_PROBE: Final = b"dynamo-core/merkle/token-fingerprint"
_TREE_PERSON: Final = b"dynamo-core/tree"
_ITEM_PERSON: Final = b"dynamo-core/item"
_ITEM_HASHER: Final = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_ITEM_PERSON)
_ROOT_HASHER: Final = hashlib.blake2b(b"\x02", digest_size=DIGEST_SIZE, person=_TREE_PERSON)
# _NODE_HASHERS[h] has already absorbed the prefix 0x01 || h: copying it and feeding the two
# children is the fastest way to hash a node from Python (no argument parsing per call).
_NODE_HASHERS: Final = [
    hashlib.blake2b(bytes((1, height)), digest_size=DIGEST_SIZE, person=_TREE_PERSON)
    for height in range(MAX_DEPTH + 1)
]
_LANES: Final = struct.Struct("=QQ").unpack  # a digest as two native uint64 lanes (XOR is bytewise)
_SHAPE: Final = struct.Struct(">BBQQQ")
_RECORD: Final = 4 + DIGEST_SIZE  # a non-empty leaf in to_dict: 4-byte index, then its value
_OBJECT_OVERHEAD: Final = 4096  # object, lists, buffer headers, views: ~1.6 KiB measured


def _node_hash(height: int, pair: bytes | bytearray) -> bytes:
    hasher = _NODE_HASHERS[height].copy()
    hasher.update(pair)
    return hasher.digest()


# _EMPTY[h] is the digest of an empty subtree of height h: fresh trees and sparse rebuilds use it.
_EMPTY: Final = [_ZERO]
for _height in range(1, MAX_DEPTH + 1):
    _EMPTY.append(_node_hash(_height, _EMPTY[-1] * 2))
_EMPTY_PAIR: Final = [digest * 2 for digest in _EMPTY]


# -- helpers -----------------------------------------------------------------------------------


def _check_digest(digest: object, name: str = "digest") -> bytes:
    if type(digest) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(digest).__name__}")
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"{name} must be {DIGEST_SIZE} bytes (see item_digest), got {len(digest)}")
    if digest == _ZERO:
        raise ValueError(f"{name} must not be all zero bytes: XORing it would change nothing")
    return digest


def _zero_digest() -> int:
    raise ValueError("digest must not be all zero bytes: XORing it would change nothing")


def _check_depth(depth: object, name: str = "depth", maximum: int = MAX_DEPTH) -> int:
    if type(depth) is not int:
        raise TypeError(f"{name} must be an int, not {type(depth).__name__}")
    if not 0 <= depth <= maximum:
        raise ValueError(f"{name} must be 0..{maximum}, got {depth}")
    return depth


def item_digest(key: str | bytes, value: bytes | bytearray | memoryview) -> bytes:
    """Return the strong digest of one item: what a write XORs into its tree. Cost: O(len).

    BLAKE2b-128, personalized for dynamo_core items, over the key's length (8 bytes, big-endian),
    the key's bytes (a `str` is its UTF-8 encoding) and the value's bytes. The length prefix binds
    the split between key and value, so ``("ab", b"c")`` and ``("a", b"bc")`` differ. Compute it
    once per write and store it beside the value: the tree never hashes items itself, and a later
    `update` or `remove` needs the old digest.

    `value` can be the stored value or anything that changes whenever the value does — Riak
    hashes the key with its version vector, which is smaller than the value.

    Args:
        key: The item's key.
        value: The bytes that identify this version of the item.

    Returns:
        A 16-byte digest.

    Raises:
        TypeError: `key` is not `str` or `bytes`, or `value` is not bytes-like.
        ValueError: `key` is a `str` that cannot be encoded as UTF-8.
    """
    data = key_bytes(key, max_len=None)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
    hasher = _ITEM_HASHER.copy()
    hasher.update(len(data).to_bytes(8, "big") + data)
    hasher.update(value)
    return hasher.digest()


def depth_for(key_count: int, *, max_depth: int = MAX_DEPTH, keys_per_segment: int = 1) -> int:
    """Choose a tree's depth from the number of keys it will hold. Cost: O(1).

    Like Cassandra, the depth grows with ``log2`` of the key count, so a segment holds about
    `keys_per_segment` keys whatever the range's size, and a damaged key streams its segment-mates
    along with it (Cassandra's old fixed depth 15 streamed ~30 partitions per damaged one).
    Cassandra rounds up; this rounds down — ``floor(log2(key_count / keys_per_segment))`` — so a
    tree never has more segments than keys. A node's trees then take at most
    ``32 bytes x its key count`` plus at most 4 KiB per tree
    ([`tree_memory`][dynamo_core.merkle.tree_memory]), however the keys spread over its ranges:
    1,000 ranges holding 1M keys take at most 36 MiB (about 20 MiB when spread evenly).

    Args:
        key_count: Keys in the range (an estimate is fine; ``0`` gives depth 0).
        max_depth: The deepest tree to return, ``0 .. MAX_DEPTH``.
        keys_per_segment: The target number of keys per segment, ``>= 1``. Larger values give
            smaller trees and coarser diffs.

    Returns:
        A depth in ``0 .. max_depth``.

    Raises:
        TypeError: An argument is not an `int`.
        ValueError: `key_count` is negative, or another argument is out of range.
    """
    if type(key_count) is not int:
        raise TypeError(f"key_count must be an int, not {type(key_count).__name__}")
    if key_count < 0:
        raise ValueError(f"key_count must be >= 0, got {key_count}")
    _check_depth(max_depth, "max_depth")
    check_positive_int(keys_per_segment, "keys_per_segment")
    segments = key_count // keys_per_segment
    if segments <= 1:
        return 0
    return min(max_depth, segments.bit_length() - 1)


def tree_memory(depth: int) -> int:
    """Return an upper bound, in bytes, on the memory one tree of `depth` uses. Cost: O(1).

    A tree keeps its leaves and inner nodes in flat buffers: ``16 * 2**depth`` bytes of leaves and
    ``16 * (2**depth - 1)`` of inner nodes, plus at most 4 KiB for the object itself. The size
    does not depend on how many keys the tree holds.

    Raises:
        TypeError: `depth` is not an `int`.
        ValueError: `depth` is not in ``0 .. MAX_DEPTH``.
    """
    _check_depth(depth)
    return 2 * DIGEST_SIZE * (1 << depth) - DIGEST_SIZE + _OBJECT_OVERHEAD


# -- the tree ----------------------------------------------------------------------------------


class MerkleTree:
    """A tictac Merkle tree over one token range, split into ``2**depth`` equal segments.

    A key belongs to the segment that holds its token (the shared token hash, or `token_fn`).
    Each leaf is the XOR of the 16-byte digests ([`item_digest`][dynamo_core.merkle.item_digest])
    of the items in its segment, so writes update the tree in O(1), in any order, and removing an
    item is XORing its digest again. Inner nodes are recomputed lazily, when the root, a node or a
    diff is next needed, at O(depth) hashes per changed leaf (shared ancestors hashed once).

    Because XOR is its own inverse, the tree holds a *set* of ``(key, digest)`` items only if
    each is inserted once: inserting the same item twice cancels it. Keep one digest per key and
    use [`update`][dynamo_core.merkle.MerkleTree.update] when its value changes.

    Memory is fixed by the depth: ``32 * 2**depth`` bytes plus at most 4 KiB
    ([`tree_memory`][dynamo_core.merkle.tree_memory]).

    Args:
        depth: ``0 .. MAX_DEPTH`` (20); the tree has ``2**depth`` segments.
        start: The first token of the range, in ``[0, 2**64)``.
        end: One past the last token, in ``(0, 2**64]``; ``start >= end`` wraps past the top of
            the circle (as [`TokenRange`][dynamo_core.hashing.TokenRange]).
        token_fn: The function from a key to its token: one from
            [`token_function`][dynamo_core.hashing.token_function] for a keyed ring, or ``None``
            for the default [`token`][dynamo_core.hashing.token]. Both replicas of an exchange
            must use the same one; its fingerprint is bound into the root.

    Raises:
        TypeError: An argument has the wrong type, or `token_fn` does not return an `int`.
        ValueError: `depth` is out of range, the range has fewer than ``2**depth`` tokens, or
            `token_fn` returns a value outside ``[0, 2**64)``.
    """

    __slots__ = (
        "_depth",
        "_dirty",
        "_end",
        "_fingerprint",
        "_lanes",
        "_levels",
        "_root",
        "_shape",
        "_shift",
        "_size",
        "_stale",
        "_start",
        "_token_fn",
    )

    __hash__ = None  # type: ignore[assignment]  # mutable: equal trees may not stay equal

    def __init__(
        self,
        depth: int = DEFAULT_DEPTH,
        *,
        start: int = 0,
        end: int = TOKEN_SPACE,
        token_fn: TokenFn | None = None,
    ) -> None:
        _check_depth(depth)
        rng = TokenRange(start, end)
        if rng.size < (1 << depth):
            raise ValueError(
                f"the range [start, end) holds {rng.size} tokens, fewer than the 2**{depth} "
                "segments of a tree of that depth: use a smaller depth"
            )
        if token_fn is None:
            token_fn = token
        elif not callable(token_fn):
            raise TypeError(f"token_fn must be callable or None, not {type(token_fn).__name__}")
        fingerprint = token_fn(_PROBE)
        if type(fingerprint) is not int:
            raise TypeError(f"token_fn must return an int, not {type(fingerprint).__name__}")
        if not 0 <= fingerprint < TOKEN_SPACE:
            raise ValueError(f"token_fn must return a token in [0, 2**64), got {fingerprint}")
        self._depth = depth
        self._start = start
        self._end = end
        self._size = rng.size
        bits = self._size.bit_length() - 1
        self._shift: int | None = bits - depth if self._size == 1 << bits else None
        self._token_fn: TokenFn = token_fn
        self._fingerprint = fingerprint
        self._shape = _SHAPE.pack(_FORMAT, depth, start, end - 1, fingerprint)
        leaves = bytearray(DIGEST_SIZE << depth)
        self._levels: list[bytearray] = [leaves]
        self._levels += [bytearray(_EMPTY[h] * (1 << (depth - h))) for h in range(1, depth + 1)]
        self._lanes = memoryview(leaves).cast("Q")
        self._dirty: list[int] = []  # leaves changed since the inner nodes were last hashed
        self._stale = False  # True: too many changes, rehash every level
        self._root: bytes | None = None

    # -- shape -------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """The depth: the tree has ``2**depth`` segments."""
        return self._depth

    @property
    def segments(self) -> int:
        """The number of segments (leaves), ``2**depth``."""
        return 1 << self._depth

    @property
    def start(self) -> int:
        """The first token of the tree's range."""
        return self._start

    @property
    def end(self) -> int:
        """One past the last token of the tree's range."""
        return self._end

    @property
    def range(self) -> TokenRange:
        """The token range the tree covers."""
        return TokenRange(self._start, self._end)

    @property
    def token_fn(self) -> TokenFn:
        """The function from a key to its token."""
        return self._token_fn

    @property
    def fingerprint(self) -> int:
        """The token function's output for a fixed probe: a fingerprint bound into the root.

        Trees built with different token functions (a keyed ring with another secret, say) have
        different fingerprints, so they never compare equal and an exchange refuses to pair them.
        """
        return self._fingerprint

    @property
    def nbytes(self) -> int:
        """Bytes held in the tree's digest buffers (``32 * 2**depth - 16``)."""
        return sum(len(level) for level in self._levels)

    def same_shape(self, other: MerkleTree) -> bool:
        """Whether `other` has the same depth, range and token function. Cost: O(1)."""
        return self._shape == other._shape

    def _check_shape(self, other: object) -> MerkleTree:
        if not isinstance(other, MerkleTree):
            raise TypeError(f"other must be a MerkleTree, not {type(other).__name__}")
        if self._shape != other._shape:
            hint = ""
            if (self._start, self._end, self._fingerprint) == (
                other._start,
                other._end,
                other._fingerprint,
            ):
                common = min(self._depth, other._depth)
                hint = f" (compare at one depth: fold the deeper tree with fold({common}))"
            raise ValueError(
                "cannot compare Merkle trees of different shapes: "
                f"{self._describe_shape()} vs {other._describe_shape()}{hint}"
            )
        return other

    def _describe_shape(self) -> str:
        return (
            f"depth={self._depth} range=[{self._start:#x}, {self._end:#x}) "
            f"token fingerprint={self._fingerprint:#x}"
        )

    # -- keys to segments --------------------------------------------------------------------

    def _segment_of(self, tok: int, key: object) -> int:
        offset = (tok - self._start) & _MASK
        if offset >= self._size:
            raise ValueError(
                f"key {key!r:.80} has token {tok:#x}, outside the tree's range "
                f"[{self._start:#x}, {self._end:#x})"
            )
        if self._shift is not None:
            return offset >> self._shift
        return (offset << self._depth) // self._size

    def _token(self, key: object) -> int:
        fn = self._token_fn
        if fn is token:
            return token(key)  # type: ignore[arg-type]  # token() checks the key's type
        check_key(key)
        tok = fn(key)  # type: ignore[arg-type]
        if type(tok) is not int or not 0 <= tok < TOKEN_SPACE:
            raise ValueError(f"token_fn returned {tok!r:.40} for key {key!r:.80}, not a token")
        return tok

    def segment(self, key: str | bytes) -> int:
        """Return the index of the segment that holds `key`. Cost: O(len(key)).

        Raises:
            TypeError: `key` is not `str` or `bytes`.
            ValueError: `key`'s token is outside the tree's range.
        """
        return self._segment_of(self._token(key), key)

    def segment_of_token(self, tok: int) -> int:
        """Return the index of the segment that holds token `tok`. Cost: O(1).

        Raises:
            TypeError: `tok` is not an `int`.
            ValueError: `tok` is not a token in the tree's range.
        """
        if type(tok) is not int:
            raise TypeError(f"tok must be an int token, not {type(tok).__name__}")
        if not 0 <= tok < TOKEN_SPACE:
            raise ValueError(f"tok must be in [0, 2**64), got {tok}")
        return self._segment_of(tok, tok)

    def _offset(self, index: int) -> int:
        # The first offset (from start) of segment `index`: ceil(index * size / 2**depth).
        return -((-index * self._size) >> self._depth)

    def segment_range(self, index: int) -> TokenRange:
        """Return the token range of segment `index`. Cost: O(1).

        Segment ``i`` holds the tokens whose offset from `start` is in
        ``[ceil(i * size / 2**depth), ceil((i + 1) * size / 2**depth))``.

        Raises:
            TypeError: `index` is not an `int`.
            ValueError: `index` is not in ``0 .. 2**depth - 1``.
        """
        self._check_index(index, 0)
        first = (self._start + self._offset(index)) & _MASK
        end = (self._start + self._offset(index + 1)) & _MASK
        return TokenRange(first, end or TOKEN_SPACE)

    def _check_index(self, index: object, height: int) -> int:
        if type(index) is not int:
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if not 0 <= index < 1 << (self._depth - height):
            raise ValueError(f"index must be 0..{(1 << (self._depth - height)) - 1}, got {index}")
        return index

    # -- mutation ----------------------------------------------------------------------------

    def _touch(self, index: int) -> None:
        self._root = None
        if self._stale:
            return
        dirty = self._dirty
        dirty.append(index)
        if len(dirty) > (1 << self._depth):
            self._stale = True
            dirty.clear()

    def insert(self, key: str | bytes, digest: bytes) -> None:
        """Add an item: XOR its digest into the leaf of its key's segment. Cost: O(len(key)).

        The inner nodes are rehashed lazily (see the class docstring), so a burst of writes costs
        one XOR each. Inserting an item that is already in the tree removes it.

        Args:
            key: The item's key.
            digest: Its [`item_digest`][dynamo_core.merkle.item_digest].

        Raises:
            TypeError: `key` is not `str`/`bytes` or `digest` is not `bytes`.
            ValueError: `digest` is not 16 bytes or is all zero, or `key` is outside the tree's
                range. Nothing changes.
        """
        index = self.segment(key)
        high, low = _LANES(_check_digest(digest))
        lanes = self._lanes
        lane = index + index
        lanes[lane] ^= high
        lanes[lane + 1] ^= low
        self._touch(index)

    def remove(self, key: str | bytes, digest: bytes) -> None:
        """Remove an item: XOR its digest out of its leaf. Cost: O(len(key)).

        The digest must be the one that was inserted; removing an item that is not in the tree
        adds it instead (XOR cannot tell the difference).

        Raises:
            TypeError: `key` is not `str`/`bytes` or `digest` is not `bytes`.
            ValueError: `digest` is not 16 bytes or is all zero, or `key` is outside the tree's
                range. Nothing changes.
        """
        self.insert(key, digest)

    def update(self, key: str | bytes, old_digest: bytes, new_digest: bytes) -> None:
        """Replace an item's digest after a write: one XOR of ``old ^ new``. Cost: O(len(key)).

        Raises:
            TypeError: `key` is not `str`/`bytes` or a digest is not `bytes`.
            ValueError: A digest is not 16 bytes, or `key` is outside the tree's range. Nothing
                changes.
        """
        index = self.segment(key)
        old_high, old_low = _LANES(_check_digest(old_digest, "old_digest"))
        new_high, new_low = _LANES(_check_digest(new_digest, "new_digest"))
        lanes = self._lanes
        lane = index + index
        lanes[lane] ^= old_high ^ new_high
        lanes[lane + 1] ^= old_low ^ new_low
        self._touch(index)

    def insert_many(self, items: Iterable[tuple[str | bytes, bytes]]) -> int:
        """Insert many ``(key, digest)`` items at once. Cost: O(n) plus one rehash.

        All items are checked before the tree changes: on an error, nothing is inserted.

        Returns:
            The number of items inserted.

        Raises:
            TypeError: An item is not a ``(key, digest)`` pair of the right types.
            ValueError: A digest is not 16 bytes, or a key is outside the tree's range.
        """
        if not isinstance(items, Sized):
            items = list(items)
        acc = [0] * (1 << self._depth)
        from_bytes = int.from_bytes  # big-endian by default: leaves XOR bytewise
        if self._token_fn is token and self._start == 0 and self._size == TOKEN_SPACE:
            # The whole circle split evenly: a segment is the top `depth` bits of the token, the
            # low 64 bits of MurmurHash3-128. Inlined and kept lean: the hot loop of a bulk
            # build (every check is still made; `or` reaches _zero_digest only for a zero one).
            shift, low, murmur = 64 - self._depth, (1 << self._depth) - 1, murmur3_128
            for key, digest in items:
                if len(digest) != DIGEST_SIZE or type(digest) is not bytes:
                    _check_digest(digest)
                if type(key) is not bytes:
                    key = key_bytes(key, max_len=None)  # noqa: PLW2901 - normalize in place, hot loop
                acc[(murmur(key) >> shift) & low] ^= from_bytes(digest) or _zero_digest()
        else:
            segment = self.segment
            for key, digest in items:
                if type(digest) is not bytes or len(digest) != DIGEST_SIZE or digest == _ZERO:
                    _check_digest(digest)
                acc[segment(key)] ^= from_bytes(digest)
        count = len(items)
        self._xor_leaves(acc)
        return count

    def _xor_leaves(self, acc: list[int]) -> None:
        # acc[i] is an int to XOR into leaf i (big-endian bytes, so bytewise XOR).
        touched = [index for index, value in enumerate(acc) if value]
        if not touched:
            return
        leaves = self._levels[0]
        packed = b"".join([value.to_bytes(DIGEST_SIZE, "big") if value else _ZERO for value in acc])
        if leaves.count(0) == len(leaves):
            leaves[:] = packed
        else:
            size = len(leaves)
            merged = int.from_bytes(leaves, "big") ^ int.from_bytes(packed, "big")
            leaves[:] = merged.to_bytes(size, "big")
        self._root = None
        if self._stale or len(self._dirty) + len(touched) > (1 << self._depth) // 4:
            self._stale = True
            self._dirty.clear()
        else:
            self._dirty += touched

    @classmethod
    def from_items(
        cls,
        items: Iterable[tuple[str | bytes, bytes]],
        depth: int = DEFAULT_DEPTH,
        *,
        start: int = 0,
        end: int = TOKEN_SPACE,
        token_fn: TokenFn | None = None,
    ) -> Self:
        """Build a tree from ``(key, digest)`` pairs in one pass. Cost: O(n + 2**depth).

        Leaves are accumulated as Python ints and XORed, then every inner level is hashed once,
        level by level (empty subtrees are not hashed). Same result as inserting one by one.

        Args:
            items: ``(key, item_digest(key, value))`` pairs, each key once (``dict.items()``).
            depth: As for the constructor.
            start: As for the constructor.
            end: As for the constructor.
            token_fn: As for the constructor.

        Returns:
            The tree, with its root computed.

        Raises:
            TypeError: An argument or an item has the wrong type.
            ValueError: As for the constructor and [`insert`][dynamo_core.merkle.MerkleTree.insert].
        """
        tree = cls(depth, start=start, end=end, token_fn=token_fn)
        tree.insert_many(items)
        tree._refresh()
        return tree

    def merge(self, other: MerkleTree) -> None:
        """XOR `other`'s items into this tree. Cost: O(2**depth) plus a rehash.

        For trees over *disjoint* data (two vnodes' shares of one range, say) the result is the
        tree of the union; an item present in both cancels out.

        Raises:
            TypeError: `other` is not a `MerkleTree`.
            ValueError: `other` has a different shape. Nothing changes.
        """
        self._check_shape(other)
        leaves = self._levels[0]
        merged = int.from_bytes(leaves, "big") ^ int.from_bytes(other._levels[0], "big")
        leaves[:] = merged.to_bytes(len(leaves), "big")
        self._root = None
        self._stale = True
        self._dirty.clear()

    def copy(self) -> MerkleTree:
        """Return an independent copy with the same shape, token function and items. O(2**depth)."""
        clone = MerkleTree.__new__(MerkleTree)
        for name in ("_depth", "_start", "_end", "_size", "_shift", "_token_fn", "_fingerprint"):
            setattr(clone, name, getattr(self, name))
        clone._shape = self._shape
        clone._levels = [bytearray(level) for level in self._levels]
        clone._lanes = memoryview(clone._levels[0]).cast("Q")
        clone._dirty = list(self._dirty)
        clone._stale = self._stale
        clone._root = self._root
        return clone

    def fold(self, depth: int) -> MerkleTree:
        """Return the tree of the same items at a shallower `depth`. Cost: O(2**self.depth).

        A leaf is the XOR of its segment's item digests, and a segment at depth ``d - k`` is
        exactly ``2**k`` adjacent segments at depth ``d``, so each new leaf is the XOR of those
        leaves: the result equals the tree built at `depth` from the same items (same root).
        This is how two peers whose trees have different depths compare at the shallower one.

        Args:
            depth: ``0 .. self.depth``.

        Returns:
            A new, independent tree (a copy when `depth` is this tree's depth).

        Raises:
            TypeError: `depth` is not an int.
            ValueError: `depth` is negative or deeper than this tree.
        """
        _check_depth(depth, "depth", self._depth)
        if depth == self._depth:
            return self.copy()
        out = MerkleTree(depth, start=self._start, end=self._end, token_fn=self._token_fn)
        source = self._levels[0]
        group = DIGEST_SIZE << (self._depth - depth)
        leaves = out._levels[0]
        for index in range(1 << depth):
            first = index * group
            acc = 0
            for offset in range(first, first + group, DIGEST_SIZE):
                acc ^= int.from_bytes(source[offset : offset + DIGEST_SIZE], "big")
            if acc:
                leaves[index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE] = acc.to_bytes(
                    DIGEST_SIZE, "big"
                )
        out._stale = True
        return out

    def _check_foldable(self, other: object) -> MerkleTree:
        """`other` covers the same range with the same token function (any depth)."""
        if not isinstance(other, MerkleTree):
            raise TypeError(f"other must be a MerkleTree, not {type(other).__name__}")
        if (self._start, self._end, self._fingerprint) != (
            other._start,
            other._end,
            other._fingerprint,
        ):
            raise ValueError(
                "cannot compare Merkle trees over different ranges or token functions: "
                f"{self._describe_shape()} vs {other._describe_shape()}"
            )
        return other

    # -- hashing -----------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Bring the inner nodes and the root up to date with the leaves."""
        if self._root is not None:
            return
        dirty = self._dirty
        if self._stale or (len(dirty) > 1 and len(set(dirty)) * self._depth >= (1 << self._depth)):
            self._rehash_all()
        elif self._dirty:
            self._rehash_paths()
        self._stale = False
        self._dirty.clear()
        hasher = _ROOT_HASHER.copy()
        hasher.update(self._shape)
        hasher.update(self._levels[self._depth])
        self._root = hasher.digest()

    def _rehash_paths(self) -> None:
        levels = self._levels
        dirty = self._dirty
        if len(dirty) == 1:  # the common case of one write between reads: one path, no sets
            index = dirty[0]
            below = levels[0]
            for level, base in zip(levels[1:], _NODE_HASHERS[1:], strict=False):
                index >>= 1
                offset = index << 5
                hasher = base.copy()
                hasher.update(below[offset : offset + 2 * DIGEST_SIZE])
                offset >>= 1
                level[offset : offset + DIGEST_SIZE] = hasher.digest()
                below = level
            return
        parents = {index >> 1 for index in dirty}
        for height in range(1, self._depth + 1):
            below = levels[height - 1]
            level = levels[height]
            copy = _NODE_HASHERS[height].copy
            for index in parents:
                hasher = copy()
                hasher.update(below[index << 5 : (index + 1) << 5])
                level[index << 4 : (index + 1) << 4] = hasher.digest()
            parents = {index >> 1 for index in parents}

    def _rehash_all(self) -> None:
        levels = self._levels
        below = bytes(levels[0])
        for height in range(1, self._depth + 1):
            copy = _NODE_HASHERS[height].copy
            empty_pair = _EMPTY_PAIR[height - 1]
            empty = _EMPTY[height]
            out: list[bytes] = []
            append = out.append
            for offset in range(0, len(below), 2 * DIGEST_SIZE):
                pair = below[offset : offset + 2 * DIGEST_SIZE]
                if pair == empty_pair:
                    append(empty)
                else:
                    hasher = copy()
                    hasher.update(pair)
                    append(hasher.digest())
            below = b"".join(out)
            levels[height][:] = below

    @property
    def root(self) -> bytes:
        """The 16-byte root digest. Cost: O(1) when unchanged; else O(changed leaves x depth).

        It binds the depth, the range, the token function's fingerprint and every leaf: two
        trees have the same root exactly when they have the same shape and the same leaves
        (barring a BLAKE2b-128 collision).
        """
        self._refresh()
        assert self._root is not None
        return self._root

    def node(self, height: int, index: int) -> bytes:
        """Return the digest of a node: a leaf value at height 0, an inner hash above.

        Height ``depth`` is the top node (the root is that node bound to the tree's shape).
        Cost: O(1) when the tree is unchanged.

        Raises:
            TypeError: `height` or `index` is not an `int`.
            ValueError: `height` is not in ``0 .. depth`` or `index` not in
                ``0 .. 2**(depth - height) - 1``.
        """
        _check_depth(height, "height", self._depth)
        self._check_index(index, height)
        if height:
            self._refresh()
        return bytes(self._levels[height][index << 4 : (index + 1) << 4])

    def leaf(self, index: int) -> bytes:
        """Return the value of leaf `index`: the XOR of its items' digests. Cost: O(1).

        Raises:
            TypeError: `index` is not an `int`.
            ValueError: `index` is not in ``0 .. 2**depth - 1``.
        """
        return self.node(0, index)

    def _level(self, height: int) -> bytearray:
        if height:
            self._refresh()
        return self._levels[height]

    # -- comparison --------------------------------------------------------------------------

    def diff_segments(self, other: MerkleTree) -> list[int]:
        """Return the indices of the segments whose leaves differ, ascending.

        Descends from the top only into differing subtrees. Cost: O(k x (depth - log2 k)) node
        comparisons for k differing segments, plus any pending rehash.

        Raises:
            TypeError: `other` is not a `MerkleTree`.
            ValueError: `other` has a different depth, range or token function.
        """
        self._check_shape(other)
        if self.root == other.root:
            return []
        frontier = [0]
        for height in range(self._depth, 0, -1):
            mine = self._levels[height - 1]
            theirs = other._levels[height - 1]
            below: list[int] = []
            append = below.append
            for index in frontier:
                left = index << 5
                middle = left + DIGEST_SIZE
                right = middle + DIGEST_SIZE
                if mine[left:middle] != theirs[left:middle]:
                    append(index << 1)
                if mine[middle:right] != theirs[middle:right]:
                    append((index << 1) | 1)
            frontier = below
        return frontier

    def diff(self, other: MerkleTree) -> list[TokenRange]:
        """Return the maximal token ranges where this tree and `other` differ.

        Exact at segment granularity: every segment whose leaves differ is covered and no equal
        segment is. Adjacent differing segments are coalesced
        ([`coalesce`][dynamo_core.hashing.coalesce]): the result is sorted, its ranges do not
        wrap (a differing run across the top of the circle comes back as two pieces) and no two
        of them touch. Cost: as [`diff_segments`][dynamo_core.merkle.MerkleTree.diff_segments].

        Returns:
            The differing ranges; empty when the trees are equal.

        Raises:
            TypeError: `other` is not a `MerkleTree`.
            ValueError: `other` has a different depth, range or token function.
        """
        return self.ranges_of(self.diff_segments(other))

    def ranges_of(self, segments: Iterable[int]) -> list[TokenRange]:
        """Return the coalesced token ranges covering the given segments. Cost: O(k log k).

        Raises:
            TypeError: A segment index is not an `int`.
            ValueError: A segment index is out of range.
        """
        indices = sorted({self._check_index(index, 0) for index in segments})
        runs: list[TokenRange] = []
        start = self._start
        position = 0
        while position < len(indices):
            first = last = indices[position]
            position += 1
            while position < len(indices) and indices[position] == last + 1:
                last = indices[position]
                position += 1
            begin = (start + self._offset(first)) & _MASK
            end = (start + self._offset(last + 1)) & _MASK
            runs.append(TokenRange(begin, end or TOKEN_SPACE))
        if self._start < self._end:
            return runs  # runs of a range that does not wrap are already sorted and apart
        return coalesce(runs)

    def __eq__(self, other: object) -> bool:
        """Trees are equal when they have the same shape and the same leaves. Cost: O(2**depth).

        Trees of different shapes are never equal (use
        [`diff`][dynamo_core.merkle.MerkleTree.diff], which raises `ValueError` for them, to
        compare contents).
        """
        if not isinstance(other, MerkleTree):
            return NotImplemented
        return self._shape == other._shape and self._levels[0] == other._levels[0]

    def __repr__(self) -> str:
        """``MerkleTree.from_dict({...})``: the call that rebuilds the tree (shape and leaves).

        A tree with its own `token_fn` ends with ``token_fn=...``: pass the function to
        `from_dict`. Cost: O(2**depth).
        """
        custom = "" if self._token_fn is token else ", token_fn=..."
        return f"MerkleTree.from_dict({self.to_dict()!r}{custom})"

    # -- encoding ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode the tree: its shape and its non-empty leaves. Cost: O(2**depth).

        Inner nodes are not sent; the decoder rehashes them. The leaves travel as one base64
        string of 20-byte records (a 4-byte big-endian segment index, then the 16-byte leaf), in
        increasing index order, so a sparse tree encodes small and equal trees encode equally.

        Returns:
            ``{"type": "merkle_tree", "v": 1, "depth", "start", "end", "fingerprint",
            "leaves"}``.
        """
        leaves = self._levels[0]
        records = [
            index.to_bytes(4, "big") + leaves[offset : offset + DIGEST_SIZE]
            for index, offset in enumerate(range(0, len(leaves), DIGEST_SIZE))
            if leaves[offset : offset + DIGEST_SIZE] != _ZERO
        ]
        return codec.envelope(
            "merkle_tree",
            {
                "depth": self._depth,
                "start": self._start,
                "end": self._end,
                "fingerprint": self._fingerprint,
                "leaves": codec.encode_bytes(b"".join(records)),
            },
        )

    @classmethod
    def from_dict(
        cls, data: object, *, token_fn: TokenFn | None = None, max_depth: int = MAX_DEPTH
    ) -> Self:
        """Decode what [`to_dict`][dynamo_core.merkle.MerkleTree.to_dict] produced.

        Cost: O(len(data)) plus O(k x depth) hashes for k non-empty leaves; the tree allocated is
        ``32 * 2**depth`` bytes, so pass the smallest `max_depth` you expect.

        Args:
            data: The decoded JSON value.
            token_fn: The token function the tree was built with (``None``: the default). Its
                fingerprint must match the encoded one.
            max_depth: The deepest tree accepted, ``0 .. MAX_DEPTH``.

        Returns:
            The tree.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded tree, is deeper than
                `max_depth`, or was built with a different token function.
        """
        _check_depth(max_depth, "max_depth")
        obj = codec.open_envelope(
            data, "merkle_tree", required=("depth", "start", "end", "fingerprint", "leaves")
        )
        depth = codec.as_int(obj["depth"], "merkle_tree.depth", lo=0, hi=max_depth)
        start = codec.as_int(obj["start"], "merkle_tree.start", lo=0, hi=TOKEN_SPACE - 1)
        end = codec.as_int(obj["end"], "merkle_tree.end", lo=1, hi=TOKEN_SPACE)
        fingerprint = codec.as_int(
            obj["fingerprint"], "merkle_tree.fingerprint", lo=0, hi=TOKEN_SPACE - 1
        )
        if TokenRange(start, end).size < (1 << depth):
            raise DecodeError("merkle_tree range holds fewer tokens than the tree has segments")
        records = codec.as_bytes(obj["leaves"], "merkle_tree.leaves", max_len=_RECORD << depth)
        if len(records) % _RECORD:
            raise DecodeError(
                f"merkle_tree.leaves must be a whole number of {_RECORD}-byte records"
            )
        tree = cls(depth, start=start, end=end, token_fn=token_fn)
        if tree._fingerprint != fingerprint:
            raise DecodeError(
                "merkle_tree was built with a different token function "
                f"(fingerprint {fingerprint:#x}, this one gives {tree._fingerprint:#x})"
            )
        leaves = tree._levels[0]
        previous = -1
        for offset in range(0, len(records), _RECORD):
            index = int.from_bytes(records[offset : offset + 4], "big")
            value = records[offset + 4 : offset + _RECORD]
            if index <= previous or index >= tree.segments:
                raise DecodeError(
                    f"merkle_tree.leaves record {offset // _RECORD} has index {index}: indices "
                    f"must increase and be below {tree.segments}"
                )
            if value == _ZERO:
                raise DecodeError(f"merkle_tree.leaves record {offset // _RECORD} is empty")
            leaves[index << 4 : (index + 1) << 4] = value
            tree._touch(index)
            previous = index
        tree._refresh()
        return tree

    # -- invariants --------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Assert the tree's internal consistency; rehashes pending changes first (tests only)."""
        depth = self._depth
        assert type(depth) is int
        assert 0 <= depth <= MAX_DEPTH
        rng = TokenRange(self._start, self._end)
        assert self._size == rng.size >= 1 << depth
        if self._shift is not None:
            assert self._size == 1 << (self._shift + depth)
        else:
            assert self._size & (self._size - 1)
        assert self._fingerprint == self._token_fn(_PROBE)
        assert self._shape == _SHAPE.pack(
            _FORMAT, depth, self._start, self._end - 1, self._fingerprint
        )
        assert len(self._levels) == depth + 1
        for height, level in enumerate(self._levels):
            assert type(level) is bytearray
            assert len(level) == DIGEST_SIZE << (depth - height)
        assert self._lanes.obj is self._levels[0]
        assert len(self._lanes) == 2 << depth
        assert all(0 <= index < 1 << depth for index in self._dirty)
        assert not (self._stale and self._dirty)
        assert len(self._dirty) <= 1 << depth
        if self._root is not None:
            assert not self._stale
            assert not self._dirty
        # Every inner node must equal a full rehash of the leaves, and the root its shape + top.
        self._refresh()
        expected = bytes(self._levels[0])
        for height in range(1, depth + 1):
            expected = b"".join(
                _node_hash(height, expected[offset : offset + 2 * DIGEST_SIZE])
                for offset in range(0, len(expected), 2 * DIGEST_SIZE)
            )
            assert self._levels[height] == expected, f"stale inner node at height {height}"
        hasher = _ROOT_HASHER.copy()
        hasher.update(self._shape + expected)
        assert self._root == hasher.digest()
        # Segment boundaries tile the range exactly.
        assert self._offset(0) == 0
        assert self._offset(1 << depth) == self._size


# -- exchange messages -------------------------------------------------------------------------

_MAX_SEGMENTS: Final = 1 << MAX_DEPTH


def _int_field(lo: int, hi: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int:
            raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise ValueError(f"{attribute.name} must be in {lo}..{hi}, got {value}")

    return check


def _digests_field(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes, not {type(value).__name__}")
    if len(value) % DIGEST_SIZE:
        raise ValueError(f"{attribute.name} must be a whole number of {DIGEST_SIZE}-byte digests")


def _increasing_ints(_: object, attribute: attrs.Attribute[tuple[int, ...]], value: object) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    previous = -1
    for item in value:
        if type(item) is not int or not previous < item < _MAX_SEGMENTS:
            raise ValueError(f"{attribute.name} must be increasing ints below 2**{MAX_DEPTH}")
        previous = item


def _increasing_keys(
    _: object, attribute: attrs.Attribute[tuple[bytes, ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    previous: bytes | None = None
    for item in value:
        if type(item) is not bytes or len(item) > MAX_KEY_BYTES:
            raise ValueError(
                f"{attribute.name} must hold bytes keys of at most {MAX_KEY_BYTES} bytes"
            )
        if previous is not None and item <= previous:
            raise ValueError(
                f"{attribute.name} must be strictly increasing (sorted, no duplicates)"
            )
        previous = item


def _as_increasing_ints(value: object, what: str) -> tuple[int, ...]:
    out = tuple(
        codec.as_int(item, f"{what}[{i}]", hi=_MAX_SEGMENTS - 1)
        for i, item in enumerate(codec.as_list(value, what, max_items=_MAX_SEGMENTS))
    )
    if any(a >= b for a, b in itertools.pairwise(out)):
        raise DecodeError(f"{what} must be strictly increasing")
    return out


def _as_digests(value: object, what: str, *, max_count: int) -> bytes:
    data = codec.as_bytes(value, what, max_len=DIGEST_SIZE * max_count)
    if len(data) % DIGEST_SIZE:
        raise DecodeError(f"{what} must be a whole number of {DIGEST_SIZE}-byte digests")
    return data


@attrs.frozen
class Hello:
    """The initiator's first message: its tree's shape and root, and the first request.

    If the responder's root differs it answers with the nodes at height `to_height` (all of
    them: the descendants of the top); if it is equal, with [`InSync`][dynamo_core.merkle.InSync].
    """

    depth: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    start: int = attrs.field(validator=_int_field(0, TOKEN_SPACE - 1))
    end: int = attrs.field(validator=_int_field(1, TOKEN_SPACE))
    fingerprint: int = attrs.field(validator=_int_field(0, TOKEN_SPACE - 1))
    root: bytes = attrs.field(validator=_digests_field)
    to_height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_hello`` envelope."""
        return codec.envelope(
            "merkle_hello",
            {
                "depth": self.depth,
                "start": self.start,
                "end": self.end,
                "fingerprint": self.fingerprint,
                "root": codec.encode_bytes(self.root),
                "to_height": self.to_height,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_hello`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data,
            "merkle_hello",
            required=("depth", "start", "end", "fingerprint", "root", "to_height"),
        )
        root = codec.as_bytes(obj["root"], "merkle_hello.root", max_len=DIGEST_SIZE)
        if len(root) != DIGEST_SIZE:
            raise DecodeError(f"merkle_hello.root must be {DIGEST_SIZE} bytes")
        return cls(
            codec.as_int(obj["depth"], "merkle_hello.depth", hi=MAX_DEPTH),
            codec.as_int(obj["start"], "merkle_hello.start", hi=TOKEN_SPACE - 1),
            codec.as_int(obj["end"], "merkle_hello.end", lo=1, hi=TOKEN_SPACE),
            codec.as_int(obj["fingerprint"], "merkle_hello.fingerprint", hi=TOKEN_SPACE - 1),
            root,
            codec.as_int(obj["to_height"], "merkle_hello.to_height", hi=MAX_DEPTH),
        )


@attrs.frozen
class InSync:
    """The responder's answer to a [`Hello`][dynamo_core.merkle.Hello] whose root it shares."""

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_in_sync`` envelope."""
        return codec.envelope("merkle_in_sync", {})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_in_sync`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        codec.open_envelope(data, "merkle_in_sync")
        return cls()


@attrs.frozen
class UseDepth:
    """The responder's answer to a [`Hello`][dynamo_core.merkle.Hello] deeper than its tree.

    The initiator folds its tree to `depth` ([`fold`][dynamo_core.merkle.MerkleTree.fold]) and
    says hello again; a responder whose tree is deeper than the Hello's folds its own, so the
    two sides always compare at the shallower depth.
    """

    depth: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_use_depth`` envelope."""
        return codec.envelope("merkle_use_depth", {"depth": self.depth})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_use_depth`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_use_depth", required=("depth",))
        return cls(codec.as_int(obj["depth"], "merkle_use_depth.depth", hi=MAX_DEPTH))


@attrs.frozen
class GetNodes:
    """Ask for the nodes at `to_height` below each of `parents` (node indices at `height`).

    The answer holds ``len(parents) * 2**(height - to_height)`` digests, parent by parent. With
    ``height == to_height`` it asks for the nodes themselves (the confirmation pass re-reads
    leaves this way).
    """

    height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    parents: tuple[int, ...] = attrs.field(validator=_increasing_ints)
    to_height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_get_nodes`` envelope."""
        return codec.envelope(
            "merkle_get_nodes",
            {"height": self.height, "parents": list(self.parents), "to_height": self.to_height},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_get_nodes`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(
            data, "merkle_get_nodes", required=("height", "parents", "to_height")
        )
        return cls(
            codec.as_int(obj["height"], "merkle_get_nodes.height", hi=MAX_DEPTH),
            _as_increasing_ints(obj["parents"], "merkle_get_nodes.parents"),
            codec.as_int(obj["to_height"], "merkle_get_nodes.to_height", hi=MAX_DEPTH),
        )


@attrs.frozen
class Nodes:
    """Node digests at `height`, in the order they were asked for, concatenated."""

    height: int = attrs.field(validator=_int_field(0, MAX_DEPTH))
    digests: bytes = attrs.field(validator=_digests_field)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_nodes`` envelope."""
        return codec.envelope(
            "merkle_nodes", {"height": self.height, "digests": codec.encode_bytes(self.digests)}
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_nodes`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_nodes", required=("height", "digests"))
        return cls(
            codec.as_int(obj["height"], "merkle_nodes.height", hi=MAX_DEPTH),
            _as_digests(obj["digests"], "merkle_nodes.digests", max_count=_MAX_SEGMENTS),
        )


@attrs.frozen
class GetItems:
    """Ask for the ``(key, digest)`` items of the given segments."""

    segments: tuple[int, ...] = attrs.field(validator=_increasing_ints)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_get_items`` envelope."""
        return codec.envelope("merkle_get_items", {"segments": list(self.segments)})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_get_items`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_get_items", required=("segments",))
        return cls(_as_increasing_ints(obj["segments"], "merkle_get_items.segments"))


@attrs.frozen
class Items:
    """Items of the asked-for segments: keys sorted (no duplicates), digests in key order."""

    keys: tuple[bytes, ...] = attrs.field(validator=_increasing_keys)
    digests: bytes = attrs.field(validator=_digests_field)

    def __attrs_post_init__(self) -> None:
        if len(self.digests) != DIGEST_SIZE * len(self.keys):
            raise ValueError("digests must hold exactly one 16-byte digest per key")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_items`` envelope."""
        return codec.envelope(
            "merkle_items",
            {
                "keys": [codec.encode_bytes(key) for key in self.keys],
                "digests": codec.encode_bytes(self.digests),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_items`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_items", required=("keys", "digests"))
        raw = codec.as_list(obj["keys"], "merkle_items.keys", max_items=codec.DEFAULT_MAX_ITEMS)
        keys = tuple(
            codec.as_bytes(key, f"merkle_items.keys[{i}]", max_len=MAX_KEY_BYTES)
            for i, key in enumerate(raw)
        )
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise DecodeError("merkle_items.keys must be strictly increasing")
        digests = _as_digests(obj["digests"], "merkle_items.digests", max_count=len(keys))
        if len(digests) != DIGEST_SIZE * len(keys):
            raise DecodeError("merkle_items.digests must hold one digest per key")
        return cls(keys, digests)


@attrs.frozen
class Close:
    """The initiator is finished and expects no answer (nothing left to fetch)."""

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_close`` envelope."""
        return codec.envelope("merkle_close", {})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_close`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        codec.open_envelope(data, "merkle_close")
        return cls()


def _reason_field(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= codec.DEFAULT_MAX_STR:
        raise ValueError(f"{attribute.name} must be 1..{codec.DEFAULT_MAX_STR} characters long")


@attrs.frozen
class Abort:
    """Either side gives up; `reason` says why (a shape mismatch, a protocol error)."""

    reason: str = attrs.field(validator=_reason_field)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``merkle_abort`` envelope."""
        return codec.envelope("merkle_abort", {"reason": self.reason})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``merkle_abort`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded message.
        """
        obj = codec.open_envelope(data, "merkle_abort", required=("reason",))
        return cls(codec.as_str(obj["reason"], "merkle_abort.reason"))


Message: TypeAlias = Hello | InSync | UseDepth | GetNodes | Nodes | GetItems | Items | Close | Abort
"""A message of the exchange protocol."""

_MESSAGE_TYPES: Final[dict[str, Callable[[object], Message]]] = {
    "merkle_hello": Hello.from_dict,
    "merkle_in_sync": InSync.from_dict,
    "merkle_use_depth": UseDepth.from_dict,
    "merkle_get_nodes": GetNodes.from_dict,
    "merkle_nodes": Nodes.from_dict,
    "merkle_get_items": GetItems.from_dict,
    "merkle_items": Items.from_dict,
    "merkle_close": Close.from_dict,
    "merkle_abort": Abort.from_dict,
}


def message_from_dict(data: object) -> Message:
    """Decode any exchange message from its envelope, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded exchange message.
    """
    return codec.decode_by_type(data, _MESSAGE_TYPES, "Merkle exchange message")


def encode_message(message: Message) -> bytes:
    """Encode an exchange message as canonical JSON ([`codec.dumps`][dynamo_core.codec.dumps]).

    Returns:
        The encoded message.
    """
    return codec.dumps(message.to_dict())


def decode_message(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> Message:
    """Decode bytes made by [`encode_message`][dynamo_core.merkle.encode_message].

    Raises:
        dynamo_core.errors.DecodeError: `data` is over `max_bytes` or not a valid message.
    """
    return message_from_dict(codec.loads(data, max_bytes=max_bytes))


# -- exchange effects and report ---------------------------------------------------------------


@attrs.frozen
class Send:
    """Effect: send `message` to the peer (encode it with `encode_message` or `to_dict`)."""

    message: Message


@attrs.frozen
class LoadItems:
    """Effect: read the local ``(key, digest)`` items of these segments, then call `items_loaded`.

    `ranges` are the same segments as coalesced token ranges, for stores that scan by token.
    Passing more items than asked for is fine: the exchange keeps those in `segments`.
    """

    segments: tuple[int, ...]
    ranges: tuple[TokenRange, ...]


@attrs.frozen
class Done:
    """Effect: the exchange finished; `report` says what it found and what it cost."""

    report: ExchangeReport


@attrs.frozen
class Failed:
    """Effect: the exchange was aborted, locally or by the peer, for `reason`."""

    reason: str
    by_peer: bool


Effect: TypeAlias = Send | LoadItems | SetTimer | Done | Failed
"""What an input to [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] asks its driver to do."""


class ExchangeRole(enum.StrEnum):
    """Which side of an exchange a [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] plays."""

    INITIATOR = "initiator"
    """Starts the exchange, makes every comparison and gets the key report."""
    RESPONDER = "responder"
    """Answers requests from its own tree and store."""


class ExchangeState(enum.Enum):
    """The states of an exchange (h11 style: `MerkleExchange.state` is always one of these)."""

    IDLE = "idle"
    """Not started (initiator) or waiting for a `Hello` (responder)."""
    AWAIT_NODES = "await_nodes"
    """Initiator: a request for node digests is outstanding."""
    AWAIT_CONFIRM = "await_confirm"
    """Initiator: the first pass found differing segments; waiting to re-check them."""
    AWAIT_ITEMS = "await_items"
    """Initiator: waiting for the peer's items and/or its own `items_loaded`."""
    SERVING = "serving"
    """Responder: answering requests."""
    LOADING = "loading"
    """Responder: waiting for `items_loaded` to answer a `GetItems`."""
    DONE = "done"
    """Finished; a `Done` effect carried the report."""
    FAILED = "failed"
    """Aborted by either side; a `Failed` effect said why."""


@attrs.frozen
class ExchangeReport:
    """What an exchange found and what it cost.

    The key lists are filled on the initiator only (the responder never compares keys); keys are
    `bytes` (a `str` key appears as its UTF-8 encoding) and each list is sorted.

    Attributes:
        role: The side this report belongs to.
        in_sync: Whether the roots were equal at the start.
        segments: The differing segments (after confirmation, when enabled), ascending.
        ranges: `segments` as coalesced token ranges.
        unconfirmed: Segments that differed in the first pass but not when re-checked.
        fetched: The segments whose items were compared (`segments` unless capped).
        missing: Keys the peer has and this side lacks.
        remote_missing: Keys this side has and the peer lacks.
        different: Keys both sides have with different digests.
        round_trips: Requests that were answered (the responder counts the ones it answered).
        messages: Messages sent and received.
        digests: Tree node digests sent and received (items not included).
        items: ``(key, digest)`` items sent and received.
        wire_bytes: Bytes sent and received, as
            [`encode_message`][dynamo_core.merkle.encode_message] encodes the messages.
        depth: The depth the trees were compared at (the shallower of the two).
    """

    role: ExchangeRole
    in_sync: bool = False
    segments: tuple[int, ...] = ()
    ranges: tuple[TokenRange, ...] = ()
    unconfirmed: tuple[int, ...] = ()
    fetched: tuple[int, ...] = ()
    missing: tuple[bytes, ...] = ()
    remote_missing: tuple[bytes, ...] = ()
    different: tuple[bytes, ...] = ()
    round_trips: int = 0
    messages: int = 0
    digests: int = 0
    items: int = 0
    wire_bytes: int = 0
    depth: int = 0

    @property
    def repairs(self) -> int:
        """How many keys need repair: missing + remote_missing + different."""
        return len(self.missing) + len(self.remote_missing) + len(self.different)


# -- the exchange ------------------------------------------------------------------------------


class MerkleExchange:
    """One side of a Merkle exchange between two replicas: a sans-I/O state machine.

    The **initiator** sends its root; the **responder** answers with the nodes `levels_per_round`
    levels below it; the initiator compares them with its own and asks, in the next round trip,
    for the nodes `levels_per_round` levels below each *differing* one, and so on down to the
    leaves. It then asks for the ``(key, digest)`` items of the differing segments and reports the
    keys that are missing on either side or different. Round trips:
    ``ceil(depth / levels_per_round) + 1``, one more with confirmation. Node digests exchanged,
    for d differing segments: about ``2**L / L`` per level on each of the d paths below
    ``log2 d`` (``L = levels_per_round``), within 3x of the lower bound
    ``d * (depth - log2 d)`` for ``L <= 3``.

    Nothing here does I/O or reads a clock. Each input returns a list of effects:
    [`Send`][dynamo_core.merkle.Send] a message to the peer,
    [`LoadItems`][dynamo_core.merkle.LoadItems] from the local store (answer with
    [`items_loaded`][dynamo_core.merkle.MerkleExchange.items_loaded]),
    [`SetTimer`][dynamo_core.merkle.SetTimer] (answer with
    [`on_timer`][dynamo_core.merkle.MerkleExchange.on_timer]), and finally
    [`Done`][dynamo_core.merkle.Done] or [`Failed`][dynamo_core.merkle.Failed]. Misuse by the
    caller raises [`LocalProtocolError`][dynamo_core.errors.LocalProtocolError]; a message the
    peer should not have sent raises
    [`RemoteProtocolError`][dynamo_core.errors.RemoteProtocolError] (the driver then usually calls
    [`abort`][dynamo_core.merkle.MerkleExchange.abort]). Either way the state is unchanged.

    The exchange reads the live tree at each step, so writes during an exchange are seen by
    later steps; `confirm_delay` (Riak's compare-twice) re-checks the differing leaves after a
    pause and drops segments that have converged, so writes still in flight are not repaired.

    Args:
        tree: The local tree; the peer's must cover the same range with the same token
            function. Depths may differ: the deeper side folds its tree to the shallower depth
            ([`fold`][dynamo_core.merkle.MerkleTree.fold]; the responder announces its depth
            with [`UseDepth`][dynamo_core.merkle.UseDepth] when it is the shallower), and the
            exchange then works on that folded snapshot, whose segments `LoadItems` and the
            report refer to (its `ranges` are token ranges, valid at any depth).
        role: ``"initiator"`` or ``"responder"``.
        levels_per_round: Levels descended per round trip, ``1 .. MAX_LEVELS_PER_ROUND``
            (initiator only). Higher: fewer round trips, more digests.
        confirm_delay: ``None`` for one pass; a number of seconds to re-check the differing
            leaves after that pause (initiator only). Then every input needs `now`.
        fetch_items: Whether to fetch items and report keys (initiator only); with ``False`` the
            report gives only the differing segments and ranges, as Cassandra's repair does.
        max_segments: Fetch items for at most this many differing segments (the lowest ones);
            ``None`` for no limit (initiator only). Later exchanges repair the rest.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range, or a role-specific option is given to a
            responder.
    """

    __slots__ = (
        "_confirm_delay",
        "_confirming",
        "_deadline",
        "_fetch_items",
        "_fetched",
        "_first_pass",
        "_hello",
        "_in_sync",
        "_levels",
        "_local_items",
        "_max_segments",
        "_pending",
        "_remote_items",
        "_role",
        "_segments",
        "_state",
        "_stats",
        "_tree",
        "_unconfirmed",
    )

    def __init__(
        self,
        tree: MerkleTree,
        role: ExchangeRole | str = ExchangeRole.INITIATOR,
        *,
        levels_per_round: int = 2,
        confirm_delay: float | None = None,
        fetch_items: bool = True,
        max_segments: int | None = None,
    ) -> None:
        if not isinstance(tree, MerkleTree):
            raise TypeError(f"tree must be a MerkleTree, not {type(tree).__name__}")
        if not isinstance(role, str):
            raise TypeError(f"role must be 'initiator' or 'responder', not {type(role).__name__}")
        try:
            self._role = ExchangeRole(role)
        except ValueError:
            raise ValueError(f"role must be 'initiator' or 'responder', got {role!r}") from None
        check_positive_int(levels_per_round, "levels_per_round", maximum=MAX_LEVELS_PER_ROUND)
        if confirm_delay is not None:
            confirm_delay = check_time(confirm_delay, "confirm_delay")
        if type(fetch_items) is not bool:
            raise TypeError(f"fetch_items must be a bool, not {type(fetch_items).__name__}")
        if max_segments is not None:
            check_positive_int(max_segments, "max_segments")
        if self._role is ExchangeRole.RESPONDER and (
            levels_per_round != 2
            or confirm_delay is not None
            or not fetch_items
            or max_segments is not None
        ):
            raise ValueError(
                "levels_per_round, confirm_delay, fetch_items and max_segments are chosen by the "
                "initiator; a responder takes only the tree"
            )
        self._tree = tree
        self._levels = levels_per_round
        self._confirm_delay = confirm_delay
        self._fetch_items = fetch_items
        self._max_segments = max_segments
        self._state = ExchangeState.IDLE
        self._pending: GetNodes | None = None  # the outstanding node request (initiator)
        self._confirming = False
        self._deadline: float | None = None
        self._in_sync = False
        self._hello = False  # the outstanding request is a Hello
        self._first_pass: tuple[int, ...] = ()
        self._segments: tuple[int, ...] = ()
        self._unconfirmed: tuple[int, ...] = ()
        self._fetched: tuple[int, ...] = ()
        self._local_items: dict[bytes, bytes] | None = None
        self._remote_items: dict[bytes, bytes] | None = None
        # round trips, messages, digests, items, bytes
        self._stats = [0, 0, 0, 0, 0]

    # -- inspection --------------------------------------------------------------------------

    @property
    def role(self) -> ExchangeRole:
        """This side's role."""
        return self._role

    @property
    def state(self) -> ExchangeState:
        """The current state."""
        return self._state

    @property
    def tree(self) -> MerkleTree:
        """The local tree."""
        return self._tree

    @property
    def finished(self) -> bool:
        """Whether the exchange is over (`DONE` or `FAILED`)."""
        return self._state in (ExchangeState.DONE, ExchangeState.FAILED)

    def deadline(self) -> float | None:
        """When `on_timer` is next due, or ``None`` when no timer is set."""
        return self._deadline

    def report(self) -> ExchangeReport:
        """Return the report so far (final once `Done` was emitted). Cost: O(k log k), k items."""
        rounds, messages, digests, items, nbytes = self._stats
        segments = self._segments
        missing: tuple[bytes, ...] = ()
        remote_missing: tuple[bytes, ...] = ()
        different: tuple[bytes, ...] = ()
        if self._local_items is not None and self._remote_items is not None:
            local, remote = self._local_items, self._remote_items
            missing = tuple(sorted(key for key in remote if key not in local))
            remote_missing = tuple(sorted(key for key in local if key not in remote))
            different = tuple(
                sorted(key for key in local if key in remote and local[key] != remote[key])
            )
        return ExchangeReport(
            role=self._role,
            in_sync=self._in_sync,
            segments=segments,
            ranges=tuple(self._tree.ranges_of(segments)),
            unconfirmed=self._unconfirmed,
            fetched=self._fetched,
            missing=missing,
            remote_missing=remote_missing,
            different=different,
            round_trips=rounds,
            messages=messages,
            digests=digests,
            items=items,
            wire_bytes=nbytes,
            depth=self._tree.depth,
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _count(self, message: Message) -> None:
        stats = self._stats
        stats[1] += 1
        stats[4] += len(encode_message(message))
        if isinstance(message, Nodes):
            stats[2] += len(message.digests) // DIGEST_SIZE
        elif isinstance(message, Hello):
            stats[2] += 1
        elif isinstance(message, Items):
            stats[3] += len(message.keys)

    def _send(self, message: Message, *, request: bool = False) -> Send:
        self._count(message)
        if request:
            self._stats[0] += 1
        return Send(message)

    def _end(self, state: ExchangeState) -> None:
        self._state = state
        self._deadline = None
        self._pending = None
        self._confirming = False

    def _done(self) -> Done:
        self._end(ExchangeState.DONE)
        return Done(self.report())

    def _check_now(self, now: float | None) -> None:
        if now is not None:
            check_time(now)
        elif self._confirm_delay is not None:
            raise LocalProtocolError("with confirm_delay set, every input needs now")

    def _expect(self, *states: ExchangeState, action: str) -> None:
        if self._state not in states:
            raise LocalProtocolError(f"cannot {action} in state {self._state.name}")

    def _check_invariants(self) -> None:
        """Assert the state machine's internal consistency (tests call it after every input)."""
        state = self._state
        initiator = self._role is ExchangeRole.INITIATOR
        if initiator:
            assert state not in (ExchangeState.SERVING, ExchangeState.LOADING)
        else:
            assert state not in (
                ExchangeState.AWAIT_NODES,
                ExchangeState.AWAIT_CONFIRM,
                ExchangeState.AWAIT_ITEMS,
            )
            assert self._pending is None
            assert self._local_items is None
            assert self._remote_items is None
        assert (self._pending is not None) == (state is ExchangeState.AWAIT_NODES)
        assert (self._deadline is not None) == (state is ExchangeState.AWAIT_CONFIRM)
        if self._confirming:
            assert state is ExchangeState.AWAIT_NODES
            assert self._pending is not None
            assert self._pending.parents == self._first_pass
        if self._pending is not None:
            pending = self._pending
            assert pending.to_height <= pending.height <= self._tree.depth
            assert pending.height - pending.to_height <= self._levels or pending.height == 0
        assert all(a < b for a, b in itertools.pairwise(self._segments))
        if initiator:
            assert set(self._fetched) <= set(self._segments)
            assert set(self._segments) <= set(self._first_pass) or not self._first_pass
            assert not (set(self._unconfirmed) & set(self._segments))
        if self._local_items is not None or self._remote_items is not None:
            assert state in (ExchangeState.AWAIT_ITEMS, ExchangeState.DONE, ExchangeState.FAILED)
        for items in (self._local_items, self._remote_items):
            if items is not None:
                wanted = set(self._fetched)
                assert all(self._tree.segment(key) in wanted for key in items)
                assert all(len(digest) == DIGEST_SIZE for digest in items.values())
        assert all(count >= 0 for count in self._stats)
        rounds, messages = self._stats[0], self._stats[1]
        assert rounds <= messages
        if self._in_sync:
            assert state is ExchangeState.DONE
            assert not self._segments

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> list[Effect]:
        """Start the exchange (initiator): send the root and the first request.

        Cost: O(1), plus any rehash the tree has pending.

        Args:
            now: The current time; needed only with `confirm_delay`.

        Returns:
            ``[Send(Hello)]``.

        Raises:
            LocalProtocolError: This is a responder, or the exchange has already started.
        """
        if self._role is not ExchangeRole.INITIATOR:
            raise LocalProtocolError("only the initiator starts an exchange")
        self._expect(ExchangeState.IDLE, action="start")
        self._check_now(now)
        return [self._say_hello()]

    def _say_hello(self) -> Send:
        tree = self._tree
        to_height = max(tree.depth - self._levels, 0)
        hello = Hello(tree.depth, tree.start, tree.end, tree.fingerprint, tree.root, to_height)
        self._pending = GetNodes(tree.depth, (0,), to_height)
        self._hello = True
        self._state = ExchangeState.AWAIT_NODES
        return self._send(hello, request=True)

    def receive(self, message: Message, now: float | None = None) -> list[Effect]:
        """Handle a message from the peer.

        Cost: O(size of the message): node comparisons for `Nodes`, one token per key for
        `Items`, a slice of the tree per asked node for a request.

        Args:
            message: A decoded message ([`decode_message`][dynamo_core.merkle.decode_message]).
            now: The current time; needed only with `confirm_delay`.

        Returns:
            The effects the message causes.

        Raises:
            TypeError: `message` is not an exchange message.
            LocalProtocolError: `now` is missing although `confirm_delay` is set.
            RemoteProtocolError: The peer sent a message it should not have: out of turn,
                inconsistent with the request, or after the exchange finished. The state is
                unchanged.
        """
        if not isinstance(
            message, Hello | InSync | UseDepth | GetNodes | Nodes | GetItems | Items | Close | Abort
        ):
            raise TypeError(f"message must be an exchange message, not {type(message).__name__}")
        self._check_now(now)
        if self.finished:
            raise RemoteProtocolError(
                f"{type(message).__name__} received after the exchange finished"
            )
        if isinstance(message, Abort):
            self._count(message)
            self._end(ExchangeState.FAILED)
            return [Failed(message.reason, by_peer=True)]
        if self._role is ExchangeRole.INITIATOR:
            return self._initiator_receive(message, now)
        return self._responder_receive(message)

    def items_loaded(
        self, items: Iterable[tuple[str | bytes, bytes]], now: float | None = None
    ) -> list[Effect]:
        """Hand over the local ``(key, digest)`` items asked for by a `LoadItems` effect.

        Cost: O(n) for n items passed (one token each), plus O(k log k) to sort k kept keys.

        Items outside the asked-for segments are ignored, so passing every item is correct
        (if slower).

        Args:
            items: ``(key, digest)`` pairs, each key at most once.
            now: The current time; needed only with `confirm_delay`.

        Returns:
            The effects: on the responder the `Items` answer; on the initiator `Done` once the
            peer's items have arrived too.

        Raises:
            LocalProtocolError: No `LoadItems` is outstanding.
            TypeError: An item is not a ``(key, digest)`` pair of `str`/`bytes` and `bytes`.
            ValueError: A digest is not 16 bytes, or a key appears twice. The state is unchanged.
        """
        self._check_now(now)
        if self._role is ExchangeRole.INITIATOR:
            if self._state is not ExchangeState.AWAIT_ITEMS or self._local_items is not None:
                raise LocalProtocolError(f"no LoadItems is outstanding (state {self._state.name})")
        else:
            self._expect(ExchangeState.LOADING, action="take items")
        wanted = set(self._fetched)
        segment = self._tree.segment
        local: dict[bytes, bytes] = {}
        for key, digest in items:
            data = key_bytes(key, max_len=None)
            _check_digest(digest)
            if segment(data) not in wanted:
                continue
            if data in local:
                raise ValueError(f"items holds key {data!r:.80} twice")
            local[data] = digest
        if self._role is ExchangeRole.RESPONDER:
            keys = tuple(sorted(local))
            answer = Items(keys, b"".join(local[key] for key in keys))
            effects: list[Effect] = [self._send(answer)]
            self._stats[0] += 1
            effects.append(self._done())
            return effects
        self._local_items = local
        if self._remote_items is not None:
            return [self._done()]
        return []

    def on_timer(self, now: float) -> list[Effect]:
        """The timer set by a `SetTimer` effect is due: run the confirmation pass.

        Returns:
            ``[Send(GetNodes)]`` re-asking for the differing leaves, or ``[]`` if `now` is still
            before the deadline.

        Raises:
            LocalProtocolError: No timer is set.
        """
        now = check_time(now)
        if self._deadline is None:
            raise LocalProtocolError("on_timer called with no timer set")
        if now < self._deadline:
            return []
        return self._recheck()

    def abort(self, reason: str) -> list[Effect]:
        """Give up: tell the peer and finish as failed.

        Returns:
            ``[Send(Abort(reason)), Failed(reason, by_peer=False)]``.

        Raises:
            TypeError: `reason` is not a `str`.
            ValueError: `reason` is empty or longer than 1024 characters.
            LocalProtocolError: The exchange has already finished.
        """
        message = Abort(reason)
        if self.finished:
            raise LocalProtocolError(f"cannot abort in state {self._state.name}")
        effects: list[Effect] = [self._send(message), Failed(reason, by_peer=False)]
        self._end(ExchangeState.FAILED)
        return effects

    # -- initiator ---------------------------------------------------------------------------

    def _initiator_receive(self, message: Message, now: float | None) -> list[Effect]:
        state = self._state
        if state is ExchangeState.AWAIT_NODES:
            pending = self._pending
            assert pending is not None
            hello, self._hello = self._hello, False
            if isinstance(message, Nodes):
                try:
                    return self._take_nodes(pending, message, now)
                except RemoteProtocolError:
                    self._hello = hello
                    raise
            if hello and isinstance(message, InSync):
                self._count(message)
                self._in_sync = True
                return [self._done()]
            if hello and isinstance(message, UseDepth) and message.depth < self._tree.depth:
                self._count(message)
                self._tree = self._tree.fold(message.depth)
                return [self._say_hello()]
            self._hello = hello
        elif (
            state is ExchangeState.AWAIT_ITEMS
            and isinstance(message, Items)
            and self._remote_items is None
        ):
            return self._take_items(message)
        raise RemoteProtocolError(f"unexpected {type(message).__name__} in state {state.name}")

    def _take_nodes(self, pending: GetNodes, message: Nodes, now: float | None) -> list[Effect]:
        tree = self._tree
        width = 1 << (pending.height - pending.to_height)
        expected = len(pending.parents) * width * DIGEST_SIZE
        if message.height != pending.to_height or len(message.digests) != expected:
            raise RemoteProtocolError(
                f"Nodes answer has height {message.height} and {len(message.digests)} bytes; "
                f"expected height {pending.to_height} and {expected} bytes"
            )
        self._count(message)
        mine = tree._level(pending.to_height)
        theirs = message.digests
        block = width * DIGEST_SIZE
        differing: list[int] = []
        for position, parent in enumerate(pending.parents):
            remote = theirs[position * block : (position + 1) * block]
            first = parent * width
            local = mine[first * DIGEST_SIZE : (first + width) * DIGEST_SIZE]
            if local == remote:
                continue
            differing.extend(
                first + offset // DIGEST_SIZE
                for offset in range(0, block, DIGEST_SIZE)
                if local[offset : offset + DIGEST_SIZE] != remote[offset : offset + DIGEST_SIZE]
            )
        self._pending = None
        if pending.to_height > 0:
            if not differing:  # the trees converged while we descended
                return self._finish_descent(())
            to_height = max(pending.to_height - self._levels, 0)
            request = GetNodes(pending.to_height, tuple(differing), to_height)
            self._pending = request
            return [self._send(request, request=True)]
        if self._confirming:
            self._confirming = False
            still = tuple(differing)
            kept = set(still)
            self._unconfirmed = tuple(i for i in self._first_pass if i not in kept)
            return self._finish_descent(still)
        self._first_pass = tuple(differing)
        if self._confirm_delay is None or not differing:
            return self._finish_descent(self._first_pass)
        assert now is not None  # _check_now enforced it
        if self._confirm_delay == 0:
            return self._recheck()
        self._state = ExchangeState.AWAIT_CONFIRM
        self._deadline = now + self._confirm_delay
        return [SetTimer(self._deadline)]

    def _recheck(self) -> list[Effect]:
        request = GetNodes(0, self._first_pass, 0)
        self._pending = request
        self._confirming = True
        self._deadline = None
        self._state = ExchangeState.AWAIT_NODES
        return [self._send(request, request=True)]

    def _finish_descent(self, segments: tuple[int, ...]) -> list[Effect]:
        self._segments = segments
        if not segments or not self._fetch_items:
            close = self._send(Close())
            return [close, self._done()]
        fetched = segments
        if self._max_segments is not None:
            fetched = segments[: self._max_segments]
        self._fetched = fetched
        self._state = ExchangeState.AWAIT_ITEMS
        ranges = tuple(self._tree.ranges_of(fetched))
        return [self._send(GetItems(fetched), request=True), LoadItems(fetched, ranges)]

    def _take_items(self, message: Items) -> list[Effect]:
        wanted = set(self._fetched)
        segment = self._tree.segment
        for key in message.keys:
            try:
                index = segment(key)
            except ValueError:
                index = -1
            if index not in wanted:
                raise RemoteProtocolError(
                    f"Items holds key {key!r:.80}, outside the asked segments"
                )
        self._count(message)
        digests = message.digests
        self._remote_items = {
            key: digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
            for i, key in enumerate(message.keys)
        }
        if self._local_items is not None:
            return [self._done()]
        return []

    # -- responder ---------------------------------------------------------------------------

    def _responder_receive(self, message: Message) -> list[Effect]:  # noqa: PLR0911 - per message
        state = self._state
        tree = self._tree
        if state is ExchangeState.IDLE and isinstance(message, Hello):
            if message.depth - message.to_height > MAX_LEVELS_PER_ROUND or (
                message.to_height > message.depth
            ):
                raise RemoteProtocolError(
                    f"Hello asks for height {message.to_height} below depth {message.depth}"
                )
            self._count(message)
            shape = (message.start, message.end, message.fingerprint)
            if shape != (tree.start, tree.end, tree.fingerprint):
                reason = (
                    "tree ranges or token functions differ: peer has "
                    f"depth={message.depth} range=[{message.start:#x}, {message.end:#x}) "
                    f"fingerprint={message.fingerprint:#x}, we have {tree._describe_shape()}"
                )
                effects: list[Effect] = [self._send(Abort(reason)), Failed(reason, by_peer=False)]
                self._end(ExchangeState.FAILED)
                return effects
            self._stats[0] += 1
            if message.depth > tree.depth:  # the initiator folds to ours and says hello again
                return [self._send(UseDepth(tree.depth))]
            if message.depth < tree.depth:
                tree = self._tree = tree.fold(message.depth)
            if message.root == tree.root:
                self._in_sync = True
                return [self._send(InSync()), self._done()]
            self._state = ExchangeState.SERVING
            answer = Nodes(message.to_height, bytes(tree._level(message.to_height)))
            return [self._send(answer)]
        if state is ExchangeState.SERVING:
            if isinstance(message, GetNodes):
                return [self._send(self._answer_nodes(message))]
            if isinstance(message, GetItems):
                if not message.segments or message.segments[-1] >= tree.segments:
                    raise RemoteProtocolError(
                        f"GetItems asks for segments outside 0..{tree.segments - 1}"
                    )
                self._count(message)
                self._fetched = self._segments = message.segments
                self._state = ExchangeState.LOADING
                ranges = tuple(tree.ranges_of(message.segments))
                return [LoadItems(message.segments, ranges)]
            if isinstance(message, Close):
                self._count(message)
                return [self._done()]
        raise RemoteProtocolError(f"unexpected {type(message).__name__} in state {state.name}")

    def _answer_nodes(self, message: GetNodes) -> Nodes:
        tree = self._tree
        height, to_height, parents = message.height, message.to_height, message.parents
        if not (to_height <= height <= tree.depth and height - to_height <= MAX_LEVELS_PER_ROUND):
            raise RemoteProtocolError(
                f"GetNodes from height {height} to {to_height} does not fit depth {tree.depth}"
            )
        if not parents or parents[-1] >= 1 << (tree.depth - height):
            raise RemoteProtocolError(f"GetNodes parents must be 1..n nodes at height {height}")
        self._count(message)
        self._stats[0] += 1
        level = tree._level(to_height)
        width = DIGEST_SIZE << (height - to_height)
        return Nodes(
            to_height,
            b"".join(bytes(level[parent * width : (parent + 1) * width]) for parent in parents),
        )


# -- an in-process driver ----------------------------------------------------------------------

ItemSource: TypeAlias = (
    "Mapping[bytes, bytes] | Mapping[str, bytes] | Mapping[str | bytes, bytes]"
    " | Callable[[LoadItems], Iterable[tuple[str | bytes, bytes]]]"
)
"""Where `run_exchange` reads a side's items: a mapping from key to digest, or a function that
answers a [`LoadItems`][dynamo_core.merkle.LoadItems] request with ``(key, digest)`` pairs."""


def _load(source: ItemSource, request: LoadItems) -> Iterable[tuple[str | bytes, bytes]]:
    if callable(source):
        return source(request)
    return source.items()


def run_exchange(
    initiator: MerkleTree,
    responder: MerkleTree,
    initiator_items: ItemSource,
    responder_items: ItemSource,
    *,
    levels_per_round: int = 2,
    confirm_delay: float | None = None,
    fetch_items: bool = True,
    max_segments: int | None = None,
    before_confirm: Callable[[], object] | None = None,
) -> ExchangeReport:
    """Run a whole exchange between two trees in this process and return the initiator's report.

    A small driver for two stores in one process (a sync job, a test, a benchmark): every message
    goes through [`encode_message`][dynamo_core.merkle.encode_message] and
    [`decode_message`][dynamo_core.merkle.decode_message], so the byte counts are the real wire
    sizes. Time is virtual: a confirmation timer fires at once, after `before_confirm` (a hook
    where a test can let in-flight writes land). Cost: that of the exchange, plus reading items.

    Args:
        initiator: The tree of the side that gets the report.
        responder: The peer's tree: the same range and token function; its depth may differ
            (the exchange runs at the shallower depth).
        initiator_items: The initiator's items (see [`ItemSource`][dynamo_core.merkle.ItemSource]).
        responder_items: The responder's items.
        levels_per_round: As for [`MerkleExchange`][dynamo_core.merkle.MerkleExchange].
        confirm_delay: As for `MerkleExchange`.
        fetch_items: As for `MerkleExchange`.
        max_segments: As for `MerkleExchange`.
        before_confirm: Called before the confirmation pass, if there is one.

    Returns:
        The initiator's report.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: The trees cover different ranges or use different token functions, or an
            option is out of range.
    """
    initiator._check_foldable(responder)
    sides = {
        ExchangeRole.INITIATOR: MerkleExchange(
            initiator,
            levels_per_round=levels_per_round,
            confirm_delay=confirm_delay,
            fetch_items=fetch_items,
            max_segments=max_segments,
        ),
        ExchangeRole.RESPONDER: MerkleExchange(responder, ExchangeRole.RESPONDER),
    }
    sources = {ExchangeRole.INITIATOR: initiator_items, ExchangeRole.RESPONDER: responder_items}
    now = 0.0
    wire: list[tuple[ExchangeRole, bytes]] = []
    timers: list[tuple[float, ExchangeRole]] = []
    report: ExchangeReport | None = None

    def handle(role: ExchangeRole, effects: list[Effect]) -> None:
        nonlocal report
        peer = ExchangeRole.RESPONDER if role is ExchangeRole.INITIATOR else ExchangeRole.INITIATOR
        for effect in effects:
            match effect:
                case Send(message=message):
                    wire.append((peer, encode_message(message)))
                case LoadItems():
                    loaded = _load(sources[role], effect)
                    handle(role, sides[role].items_loaded(loaded, now))
                case SetTimer(at=at):
                    timers.append((at, role))
                case Done(report=done):
                    if role is ExchangeRole.INITIATOR:
                        report = done
                case Failed(reason=reason):
                    raise ValueError(f"the exchange failed: {reason}")
                case _:  # pragma: no cover - the union is exhaustive
                    assert_never(effect)

    handle(ExchangeRole.INITIATOR, sides[ExchangeRole.INITIATOR].start(now))
    while wire or timers:
        if wire:
            role, data = wire.pop(0)
            handle(role, sides[role].receive(decode_message(data), now))
            continue
        at, role = timers.pop(0)
        now = max(now, at)
        if before_confirm is not None:
            before_confirm()
        handle(role, sides[role].on_timer(now))
    assert report is not None, "the exchange ended without a report"
    return report
