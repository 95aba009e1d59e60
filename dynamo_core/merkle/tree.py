"""The Merkle tree of one token range: tictac leaves, inner nodes, roots, diffs.

See [`dynamo_core.merkle`][dynamo_core.merkle] for the hash layout and how the tree, the wire
messages and the exchange fit together.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sized
from itertools import compress, repeat
from typing import Final, Self

from dynamo_core import codec
from dynamo_core._check import check_key, check_positive_int, key_bytes
from dynamo_core.errors import DecodeError
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
    "MAX_LEVELS_PER_ROUND",
    "MerkleTree",
    "depth_for",
    "item_digest",
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
        touched = list(compress(range(len(acc)), acc))
        if not touched:
            return
        leaves = self._levels[0]
        packed = b"".join(map(int.to_bytes, acc, repeat(DIGEST_SIZE)))  # big-endian, 0 -> zeros
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
