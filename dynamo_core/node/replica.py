"""The replica store: a node's key states, their decode cache and quarantine, one tree per range.

[`Replica`][dynamo_core.node.replica.Replica] owns the ``d/`` records of the node's storage
(see [`keyspace`][dynamo_core.node.keyspace]): it loads, merges and writes a key's state,
scans ranges, keeps one [`MerkleTree`][dynamo_core.merkle.MerkleTree] per replicated segment in
step with every write, and quarantines a record that fails to decode (kept, counted, reported
once, never a reason to fail).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from dynamo_core import codec, merkle
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import CorruptRecord, DecodeError
from dynamo_core.hashing import TokenRange
from dynamo_core.interfaces import Storage
from dynamo_core.limits import unstorable
from dynamo_core.node import keyspace
from dynamo_core.node.effects import Effect, Quarantined

__all__ = ["Replica", "Segment", "Write"]

_CACHE_SIZE: Final = 4096  # decoded replica states kept in memory (volatile)

Write = tuple[bytes, bytes, "Segment", bytes | None, bytes, DVVSet[bytes]]
"""A stored state to index: ``(key, storage key, segment, old record, record, state)``."""


class Segment:
    """One ring segment this node replicates: its replicas and its (lazily built) tree."""

    __slots__ = ("depth", "empty_root", "range", "replicas", "tree")

    def __init__(self, span: TokenRange, replicas: tuple[str, ...], depth: int) -> None:
        self.range = span
        self.replicas = replicas
        self.depth = depth
        self.tree: merkle.MerkleTree | None = None
        self.empty_root = b""


def decode(raw: bytes) -> DVVSet[bytes]:
    """Decode a replica record.

    Raises:
        dynamo_core.errors.CorruptRecord: `raw` is not a valid record.
    """
    try:
        return DVVSet.from_bytes(raw)
    except DecodeError as exc:
        raise CorruptRecord(f"corrupt replica record: {exc}") from None


class Replica:
    """The replica records of one node and the Merkle trees over its segments.

    Counters go to `stats` (``records_quarantined``, ``merges_refused``, ``replica_writes``),
    informational effects to `notes`; both belong to the node.
    """

    __slots__ = (
        "_by_start",
        "_cache",
        "_digests",
        "_notes",
        "_segments",
        "_starts",
        "_stats",
        "_storage",
        "_token",
        "quarantined",
        "serving",
    )

    def __init__(
        self,
        storage: Storage,
        token: Callable[[str | bytes], int],
        stats: dict[str, int],
        notes: list[Effect],
    ) -> None:
        self._storage = storage
        self._token = token
        self._stats = stats
        self._notes = notes
        # Both caches drop their oldest entry when full: OrderedDicts, because taking the first
        # key of a plain dict that many deletions have emptied at the front scans their holes.
        self._cache: OrderedDict[bytes, tuple[bytes, DVVSet[bytes]]] = OrderedDict()
        # storage key -> (record, its Merkle digest): an update need not rehash the old record
        self._digests: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
        self._segments: list[Segment] = []
        self._starts: list[int] = []
        self._by_start: dict[int, Segment] = {}
        self.quarantined: dict[bytes, str] = {}  # storage key -> why it failed to decode
        self.serving: tuple[TokenRange, ...] = ()  # ranges this node began streaming out

    # -- segments and trees ----------------------------------------------------------------

    @property
    def segments(self) -> list[Segment]:
        """The replicated segments, by start token."""
        return self._segments

    def install(self, segments: list[Segment], token: Callable[[str | bytes], int]) -> None:
        """Replace the replicated segments (sorted by start) and rebuild their trees."""
        self._token = token
        self._segments = segments
        self._starts = [s.range.start for s in segments]
        self._by_start = {s.range.start: s for s in segments}
        for skey, raw in self._storage.scan(keyspace.DATA, keyspace.DATA_END):
            s = self.segment_of(keyspace.token_of(skey))
            if s is not None:
                key = keyspace.key_of(skey)
                self.tree(s).insert(key, merkle.item_digest(key, raw))

    def segment(self, start: int) -> Segment | None:
        """The replicated segment starting at `start`."""
        return self._by_start.get(start)

    def segment_of(self, tok: int) -> Segment | None:
        """The replicated segment holding token `tok`, if any."""
        i = bisect.bisect_right(self._starts, tok) - 1
        if i >= 0 and tok in self._segments[i].range:
            return self._segments[i]
        if self._segments and tok in self._segments[-1].range:  # a segment that wraps
            return self._segments[-1]
        return None

    def tree(self, s: Segment) -> merkle.MerkleTree:
        """The segment's tree, built on first use."""
        tree = s.tree
        if tree is None:
            tree = merkle.MerkleTree(
                s.depth, start=s.range.start, end=s.range.end, token_fn=self._token
            )
            s.empty_root = tree.root
            s.tree = tree
        return tree

    @staticmethod
    def root(s: Segment) -> bytes | None:
        """The root to offer: `None` for a segment holding nothing."""
        if s.tree is None:
            return None
        root = s.tree.root
        return None if root == s.empty_root else root

    # -- records ---------------------------------------------------------------------------

    def state(self, skey: bytes, raw: bytes) -> DVVSet[bytes] | None:
        """Decode a stored record, through the cache of recently used states.

        A record that fails to decode is quarantined (kept, counted, noted once) and `None`
        returned: no stored record is ever a reason to fail.
        """
        hit = self._cache.get(skey)
        if hit is not None and hit[0] == raw:
            return hit[1]
        try:
            state = decode(raw)
        except CorruptRecord as exc:
            if skey not in self.quarantined:
                reason = str(exc)[: codec.DEFAULT_MAX_STR]
                self.quarantined[skey] = reason
                self._stats["records_quarantined"] += 1
                self._notes.append(Quarantined(keyspace.key_of(skey), reason))
            return None
        self._remember(skey, raw, state)
        return state

    def _remember(self, skey: bytes, raw: bytes, state: DVVSet[bytes]) -> None:
        cache = self._cache
        cache[skey] = (raw, state)
        cache.move_to_end(skey)
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)

    def load(self, key: bytes) -> DVVSet[bytes] | None:
        """The stored state of `key` (`None`: none, or quarantined)."""
        skey = keyspace.data_key(key, self._token(key))
        raw = self._storage.get(skey)
        return None if raw is None else self.state(skey, raw)

    def write(
        self,
        *,
        key: bytes,
        tok: int,
        s: Segment | None,
        old_raw: bytes | None,
        state: DVVSet[bytes],
        raw: bytes,
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Store `state`, encoded `raw` (with `extra` records, atomically); update the tree."""
        skey = keyspace.data_key(key, tok)
        puts = [(skey, raw), *extra]
        if self.serving and any(tok in span for span in self.serving):
            puts.append((keyspace.dirty_key(skey), b""))  # written after serving began
        if len(puts) == 1:
            self._storage.put(skey, raw)
        else:
            self._storage.write_batch(puts)
        self._remember(skey, raw, state)
        if s is not None:
            self._index(key, skey, s, old_raw, raw)

    def write_many(self, writes: list[Write], extra: list[tuple[bytes, bytes]]) -> None:
        """Store several states and `extra` records in one atomic batch; update the trees."""
        self._storage.write_batch([(skey, raw) for _, skey, _, _, raw, _ in writes] + extra)
        for key, skey, s, old_raw, raw, state in writes:
            self._remember(skey, raw, state)
            self._index(key, skey, s, old_raw, raw)

    def _index(
        self, key: bytes, skey: bytes, s: Segment, old_raw: bytes | None, raw: bytes
    ) -> None:
        tree = self.tree(s)
        digest = merkle.item_digest(key, raw)
        digests = self._digests
        if old_raw is None:
            tree.insert(key, digest)
        else:
            known = digests.pop(skey, None)
            old = known[1] if known is not None and known[0] == old_raw else None
            tree.update(key, merkle.item_digest(key, old_raw) if old is None else old, digest)
        digests[skey] = (raw, digest)
        if len(digests) > _CACHE_SIZE:
            digests.popitem(last=False)

    def merge(self, key: bytes, state: DVVSet[bytes]) -> str | None:
        """Merge `state` into the stored replica of `key` (which this node replicates).

        Returns:
            `None` once the replica holds the merge, else why it was not stored: the stored
            record is quarantined, or the merge is over a storage limit.

        Raises:
            dynamo_core.errors.DotCollision: a writer identity was reused.
        """
        tok = self._token(key)
        return self.merge_at(key, tok, self.segment_of(tok), state)

    def merge_at(self, key: bytes, tok: int, s: Segment | None, state: DVVSet[bytes]) -> str | None:
        """`merge`, for a caller that has placed `key`: its token `tok`, in segment `s`."""
        skey = keyspace.data_key(key, tok)
        raw = self._storage.get(skey)
        if raw is None:
            merged = state
        else:
            old = self.state(skey, raw)
            if old is None:
                self._stats["merges_refused"] += 1
                return "this replica's record of the key is quarantined"
            merged = old.sync(state)
            if merged == old:
                return None
        new_raw = merged.to_bytes()
        reason = unstorable(merged, new_raw)
        if reason is not None:
            self._stats["merges_refused"] += 1
            return reason
        self.write(key=key, tok=tok, s=s, old_raw=raw, state=merged, raw=new_raw)
        self._stats["replica_writes"] += 1
        return None

    def drop(self, skey: bytes) -> None:
        """Delete a replica record and its dirty marker."""
        self._storage.write_batch(deletes=[skey, keyspace.dirty_key(skey)])
        self._cache.pop(skey, None)
        self._digests.pop(skey, None)

    # -- scans -----------------------------------------------------------------------------

    def keys(self) -> list[bytes]:
        """Every key stored, in token order."""
        return [
            keyspace.key_of(skey)
            for skey, _ in self._storage.scan(keyspace.DATA, keyspace.DATA_END)
        ]

    def holds_any(self) -> bool:
        """Whether any replica record is stored."""
        return next(iter(self._storage.scan(keyspace.DATA, keyspace.DATA_END)), None) is not None

    def items(self, ranges: Iterable[TokenRange]) -> Iterator[tuple[bytes, bytes]]:
        """The ``(key, digest)`` items stored in `ranges`, for a Merkle exchange."""
        for span in ranges:
            for piece in span.pieces():
                for skey, raw in self._storage.scan(*keyspace.data_bounds(piece)):
                    key = keyspace.key_of(skey)
                    yield key, merkle.item_digest(key, raw)

    def records(
        self, piece: TokenRange, after: bytes | None
    ) -> Iterator[tuple[bytes, bytes, bytes]]:
        """The ``(position, key, record)`` of a non-wrapping `piece` after a position (a stream)."""
        for skey, raw in self._storage.scan(*keyspace.data_bounds(piece, after)):
            yield keyspace.position_of(skey), keyspace.key_of(skey), raw

    def state_at(self, position: bytes, raw: bytes) -> DVVSet[bytes] | None:
        """`state` of the record at a position."""
        return self.state(keyspace.data_key_at(position), raw)

    def _check_invariants(self, *, foreign: bool) -> None:
        assert self._starts == sorted(self._starts)
        rebuilt: dict[int, merkle.MerkleTree] = {}
        for skey, raw in self._storage.scan(keyspace.DATA, keyspace.DATA_END):
            tok = keyspace.token_of(skey)
            key = keyspace.key_of(skey)
            assert self._token(key) == tok, "record filed under the wrong token"
            if skey not in self.quarantined:
                decode(raw)._check_invariants()
            s = self.segment_of(tok)
            if s is None:
                assert foreign or skey in self.quarantined, (
                    f"stored key {key!r} is outside the replicated ranges"
                )
                continue
            tree = rebuilt.get(s.range.start)
            if tree is None:
                tree = rebuilt[s.range.start] = merkle.MerkleTree(
                    s.depth, start=s.range.start, end=s.range.end, token_fn=self._token
                )
            tree.insert(key, merkle.item_digest(key, raw))
        for s in self._segments:
            expected = rebuilt.get(s.range.start)
            if expected is None:
                assert s.tree is None or s.tree.root == s.empty_root, "a tree holds phantom keys"
            else:
                assert s.tree is not None, "a tree is missing"
                assert s.tree.root == expected.root, "a tree is stale"
