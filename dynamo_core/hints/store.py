"""The hint store: hints on any `Storage`, bounded per target, expired after a TTL."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import (
    Any,
    Final,
    Generic,
    cast,
    overload,
)

import attrs

from dynamo_core import codec
from dynamo_core._check import (
    check_node_id,
    check_positive_float,
    check_positive_int,
    check_time,
    key_bytes,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import (
    CorruptRecord,
    DecodeError,
)
from dynamo_core.hints.wire import (
    Hint,
    S,
    _check_state_type,
    _hint_dict,
)
from dynamo_core.interfaces import Storage
from dynamo_core.storage import MemoryStorage

__all__ = ["HintStats", "HintStore", "TargetStats"]

# -- storage layout ----------------------------------------------------------------------------
#
# Every record lives under the store's namespace N:
#
#   N "H" lp(target) k        -> header(created_at, seq) || canonical JSON of the hint
#   N "I" lp(target) header   -> k                  (per target, oldest first)
#   N "M" lp(target)          -> canonical JSON of the target's counters and window
#
# lp(target) is the UTF-8 target id prefixed by its length (2 bytes, big-endian), so one target's
# records are exactly one prefix range: "a" can never swallow "ab". k is b"s" + UTF-8 for a `str`
# key and b"b" + the bytes for a `bytes` key. header is created_at as big-endian IEEE-754 bits
# (non-negative doubles sort like their bit patterns) followed by a big-endian sequence number
# that breaks ties. Every change and the counters it moves are one `write_batch`.

_HEADER: Final = struct.Struct(">dQ")
_HEADER_LEN: Final = _HEADER.size
_TAG_HINT: Final = b"H"
_TAG_INDEX: Final = b"I"
_TAG_META: Final = b"M"
_BATCH_DELETES: Final = 512
_META_KIND: Final = "hint_target"


def _lp(target: str) -> bytes:
    data = target.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _encode_key(key: str | bytes) -> bytes:
    if type(key) is str:
        return b"s" + key.encode("utf-8")
    return b"b" + key  # type: ignore[operator]


def _decode_key(data: bytes) -> str | bytes:
    if data[:1] == b"s":
        return data[1:].decode("utf-8")
    if data[:1] == b"b":
        return data[1:]
    raise CorruptRecord(f"corrupt hint store: bad key encoding {data[:16]!r}")


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with `prefix` (None: unbounded)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _split_target(rest: bytes) -> tuple[str, bytes]:
    """Split ``lp(target) + tail`` into the target and the tail."""
    if len(rest) < 2:
        raise CorruptRecord("corrupt hint store: truncated record key")
    size = int.from_bytes(rest[:2], "big")
    if len(rest) < 2 + size:
        raise CorruptRecord("corrupt hint store: truncated target id")
    try:
        target = rest[2 : 2 + size].decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptRecord("corrupt hint store: target id is not UTF-8") from None
    return target, rest[2 + size :]


# -- statistics --------------------------------------------------------------------------------


@attrs.frozen
class TargetStats:
    """What a [`HintStore`][dynamo_core.hints.HintStore] holds and has done for one target.

    Attributes:
        target: The node id.
        hints: Hints stored (one per key).
        bytes: Their encoded size (what delivery sends), the quantity the byte cap bounds.
        oldest: ``created_at`` of the oldest stored hint, or `None`.
        window_start: When the target's current hint window opened (its oldest undelivered
            hint), or `None` if no window is open.
        dropped: Writes refused since the store was created (cap reached or window over).
        expired: Hints deleted undelivered because they outlived the TTL.
        delivered: Hints deleted after the target acknowledged them.
        needs_repair: Whether a dropped or expired hint means anti-entropy must repair the target.
    """

    target: str
    hints: int
    bytes: int
    oldest: float | None
    window_start: float | None
    dropped: int
    expired: int
    delivered: int
    needs_repair: bool

    @property
    def lost(self) -> int:
        """Writes the target missed through this store: ``dropped + expired``."""
        return self.dropped + self.expired


@attrs.frozen
class HintStats:
    """A snapshot of a [`HintStore`][dynamo_core.hints.HintStore]'s counters.

    Attributes:
        targets: One entry per target the store knows, sorted by target id.
    """

    targets: tuple[TargetStats, ...]

    def get(self, target: str) -> TargetStats | None:
        """Return the entry of `target`, or `None` if the store does not know it. O(targets)."""
        for entry in self.targets:
            if entry.target == target:
                return entry
        return None

    @property
    def hints(self) -> int:
        """Hints stored, over all targets."""
        return sum(t.hints for t in self.targets)

    @property
    def bytes(self) -> int:
        """Encoded bytes stored, over all targets."""
        return sum(t.bytes for t in self.targets)

    @property
    def dropped(self) -> int:
        """Writes refused, over all targets."""
        return sum(t.dropped for t in self.targets)

    @property
    def expired(self) -> int:
        """Hints expired undelivered, over all targets."""
        return sum(t.expired for t in self.targets)

    @property
    def delivered(self) -> int:
        """Hints delivered and deleted, over all targets."""
        return sum(t.delivered for t in self.targets)

    @property
    def needs_repair(self) -> tuple[str, ...]:
        """The targets that need anti-entropy repair, sorted."""
        return tuple(t.target for t in self.targets if t.needs_repair)


class _Target:
    """The in-memory view of one target: counts rebuilt on open, counters mirrored from disk."""

    __slots__ = (
        "bytes",
        "delivered",
        "dropped",
        "expired",
        "hints",
        "needs_repair",
        "oldest",
        "window_start",
    )

    def __init__(self) -> None:
        self.hints = 0
        self.bytes = 0
        self.dropped = 0
        self.expired = 0
        self.delivered = 0
        self.needs_repair = False
        self.window_start: float | None = None
        # created_at of the oldest hint; None when unknown (recomputed on demand) or no hints.
        self.oldest: float | None = None

    def meta(self, **changes: Any) -> bytes:
        """Encode the persistent counters, with `changes` applied."""
        body: dict[str, codec.JSONValue] = {
            "dropped": self.dropped,
            "expired": self.expired,
            "delivered": self.delivered,
            "needs_repair": self.needs_repair,
            "window_start": self.window_start,
        }
        body.update(changes)
        return codec.dumps(codec.envelope(_META_KIND, body))

    def load_meta(self, data: bytes, what: str) -> None:
        obj = codec.open_envelope(
            codec.loads(data),
            _META_KIND,
            required=("dropped", "expired", "delivered", "needs_repair", "window_start"),
        )
        self.dropped = codec.as_int(obj["dropped"], f"{what}.dropped")
        self.expired = codec.as_int(obj["expired"], f"{what}.expired")
        self.delivered = codec.as_int(obj["delivered"], f"{what}.delivered")
        self.needs_repair = codec.as_bool(obj["needs_repair"], f"{what}.needs_repair")
        start = obj["window_start"]
        self.window_start = (
            None if start is None else codec.as_float(start, f"{what}.window_start", lo=0.0)
        )

    def known(self) -> bool:
        """Whether anything about this target is worth keeping."""
        return bool(
            self.hints
            or self.dropped
            or self.expired
            or self.delivered
            or self.needs_repair
            or self.window_start is not None
        )


# -- the store ---------------------------------------------------------------------------------


class HintStore(Generic[S]):
    """Hints for other nodes, bounded per target, on any `Storage`.

    A second write for the same target and key **merges** into the stored hint (the states
    ``sync``), so the backlog for a target is bounded by the number of distinct keys written while
    it was away, not by the number of writes. Each target's backlog is capped in hints and in
    encoded bytes; a write that would exceed a cap is refused and counted as *dropped*.

    **Hint window** (as in Cassandra): a target's window opens with its oldest undelivered hint and
    stays open for `window` seconds. Delivering a few hints and going down again (a flapping node)
    does not reset it; only delivering the whole backlog does (or
    [`reset_window`][dynamo_core.hints.HintStore.reset_window] once the target is back and
    nothing is pending). Once the window is over, every write for the target is dropped.

    **TTL**: a hint older than `ttl` (by ``created_at``) is deleted undelivered by
    [`expire`][dynamo_core.hints.HintStore.expire] and counted as *expired*.

    A dropped or expired hint means the target misses a write that only anti-entropy can bring
    back, so the target is flagged in [`needs_repair`][dynamo_core.hints.HintStore.needs_repair]
    until [`clear_repair`][dynamo_core.hints.HintStore.clear_repair] is called after a repair.

    Counters (dropped, expired, delivered, the repair flag and the window) are written in the same
    atomic ``write_batch`` as the change they count, so with a durable backend such as
    [`SQLiteStorage`][dynamo_core.storage.SQLiteStorage] a crash never loses an acknowledged
    `add` nor leaves a counter inconsistent. Opening a store on existing storage rebuilds the
    in-memory counts and byte totals with one scan (O(hints)). One `HintStore` object owns a
    namespace of a storage at a time: two open on the same records would each keep its own
    counts.

    Args:
        storage: Where the hints live; a fresh [`MemoryStorage`][dynamo_core.storage.MemoryStorage]
            by default. The store may share it with other data under a distinct `namespace`.
        max_hints_per_target: The most hints (distinct keys) kept for one target.
        max_bytes_per_target: The most encoded bytes kept for one target.
        ttl: Seconds after ``created_at`` at which a hint expires.
        window: Seconds a target's hint window stays open (default: `ttl`).
        state_type: The replica state class (default [`DVVSet`][dynamo_core.DVVSet]); its
            ``from_dict`` decodes stored states and `add` refuses any other type.
        namespace: The key prefix of every record the store writes. Give each store sharing a
            storage its own namespace, none a prefix of another.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: a cap, `ttl` or `window` is not positive and finite.
        dynamo_core.errors.StorageError: `storage` holds records under `namespace` that are not a
            consistent hint store.

    Examples:
        >>> from dynamo_core import DVVSet, HintStore
        >>> store = HintStore()
        >>> store.add("node-b", "cart:alice", DVVSet().update(b"1 book", "node-a"), now=10.0)
        True
        >>> store.count("node-b"), store.pending("node-b")[0].key
        (1, 'cart:alice')
    """

    __slots__ = (
        "_max_bytes",
        "_max_hints",
        "_namespace",
        "_seq",
        "_state_type",
        "_storage",
        "_targets",
        "_ttl",
        "_window",
    )

    @overload
    def __init__(
        self: HintStore[DVVSet[bytes]],
        storage: Storage | None = None,
        *,
        max_hints_per_target: int = 100_000,
        max_bytes_per_target: int = 64 * 2**20,
        ttl: float = 3 * 3600.0,
        window: float | None = None,
        state_type: None = None,
        namespace: bytes = b"hints/",
    ) -> None: ...

    @overload
    def __init__(
        self,
        storage: Storage | None = None,
        *,
        max_hints_per_target: int = 100_000,
        max_bytes_per_target: int = 64 * 2**20,
        ttl: float = 3 * 3600.0,
        window: float | None = None,
        state_type: type[S],
        namespace: bytes = b"hints/",
    ) -> None: ...

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        max_hints_per_target: int = 100_000,
        max_bytes_per_target: int = 64 * 2**20,
        ttl: float = 3 * 3600.0,
        window: float | None = None,
        state_type: type[Any] | None = None,
        namespace: bytes = b"hints/",
    ) -> None:
        if storage is None:
            storage = MemoryStorage()
        elif not isinstance(storage, Storage):
            raise TypeError(f"storage must implement Storage, not {type(storage).__name__}")
        if type(namespace) is not bytes:
            raise TypeError(f"namespace must be bytes, not {type(namespace).__name__}")
        self._max_hints = check_positive_int(max_hints_per_target, "max_hints_per_target")
        self._max_bytes = check_positive_int(max_bytes_per_target, "max_bytes_per_target")
        self._ttl = check_positive_float(ttl, "ttl")
        self._window = self._ttl if window is None else check_positive_float(window, "window")
        self._state_type: type[S] = _check_state_type(state_type)
        self._storage: Storage = storage
        self._namespace = namespace
        self._targets: dict[str, _Target] = {}
        self._seq = 0
        self._load()

    # -- configuration -------------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The backend the hints live in."""
        return self._storage

    @property
    def state_type(self) -> type[S]:
        """The replica state class of the stored hints."""
        return self._state_type

    @property
    def max_hints_per_target(self) -> int:
        """The cap on hints per target."""
        return self._max_hints

    @property
    def max_bytes_per_target(self) -> int:
        """The cap on encoded bytes per target."""
        return self._max_bytes

    @property
    def ttl(self) -> float:
        """Seconds after ``created_at`` at which a hint expires."""
        return self._ttl

    @property
    def window(self) -> float:
        """Seconds a target's hint window stays open."""
        return self._window

    # -- keys ----------------------------------------------------------------------------------

    def _hint_key(self, target: str, key: str | bytes) -> bytes:
        return self._namespace + _TAG_HINT + _lp(target) + _encode_key(key)

    def _index_prefix(self, target: str) -> bytes:
        return self._namespace + _TAG_INDEX + _lp(target)

    def _meta_key(self, target: str) -> bytes:
        return self._namespace + _TAG_META + _lp(target)

    # -- opening -------------------------------------------------------------------------------

    def _load(self) -> None:
        """Rebuild the in-memory view with one scan of the namespace. O(records)."""
        ns = self._namespace
        index_counts: dict[str, int] = {}
        for record_key, value in self._storage.scan(ns, _prefix_end(ns)):
            tag, rest = record_key[len(ns) : len(ns) + 1], record_key[len(ns) + 1 :]
            if tag not in (_TAG_HINT, _TAG_INDEX, _TAG_META):
                raise CorruptRecord(
                    f"not a hint store record under namespace {ns!r}: {record_key!r}"
                )
            target, tail = _split_target(rest)
            entry = self._targets.setdefault(target, _Target())
            if tag == _TAG_HINT:
                if len(value) <= _HEADER_LEN:
                    raise CorruptRecord(f"corrupt hint store: truncated hint for {target!r}")
                _, seq = _HEADER.unpack_from(value)
                entry.hints += 1
                entry.bytes += len(value) - _HEADER_LEN
                self._seq = max(self._seq, seq + 1)
            elif tag == _TAG_INDEX:
                index_counts[target] = index_counts.get(target, 0) + 1
            else:
                if tail:
                    raise CorruptRecord(f"corrupt hint store: bad counters key {record_key!r}")
                try:
                    entry.load_meta(value, f"counters of {target!r}")
                except DecodeError as exc:
                    raise CorruptRecord(f"corrupt hint store: {exc}") from exc
        for target in sorted(self._targets):
            entry = self._targets[target]
            if index_counts.get(target, 0) != entry.hints:
                raise CorruptRecord(
                    f"corrupt hint store: {entry.hints} hints but "
                    f"{index_counts.get(target, 0)} index entries for {target!r}"
                )
            if entry.hints and entry.window_start is None:
                raise CorruptRecord(f"corrupt hint store: hints for {target!r} but no window")

    # -- reading -------------------------------------------------------------------------------

    def _decode(self, stored: bytes) -> Hint[S]:
        """Decode a stored hint fully, checking every field (for invariant checks)."""
        body = stored[_HEADER_LEN:]
        try:
            hint: Hint[S] = Hint.from_dict(
                codec.loads(body, max_bytes=len(body)), state_type=self._state_type
            )
        except DecodeError as exc:
            raise CorruptRecord(f"corrupt hint store: {exc}") from exc
        object.__setattr__(hint, "_wire", body)
        return hint

    def _read(self, target: str, key: str | bytes, stored: bytes) -> Hint[S]:
        """Rebuild a stored hint of `target` and `key` (taken from its record key).

        Only the state is decoded; target and key were checked when the hint was added, and
        ``created_at`` is the record header. The hint remembers the stored bytes for `remove`.
        """
        hint: Hint[S] = object.__new__(Hint)
        for name, value in (
            ("target", target),
            ("key", key),
            ("state", self._decode_state(stored)),
            ("created_at", _HEADER.unpack_from(stored)[0]),
            ("_wire", stored[_HEADER_LEN:]),
        ):
            object.__setattr__(hint, name, value)
        return hint

    def _decode_state(self, stored: bytes) -> S:
        """Decode only the state of a stored hint (the merge path needs nothing else)."""
        body = stored[_HEADER_LEN:]
        try:
            obj = codec.loads(body, max_bytes=len(body))
            if type(obj) is not dict or "state" not in obj:
                raise DecodeError("stored hint has no state")
            state: S = cast(Any, self._state_type).from_dict(obj["state"])
        except DecodeError as exc:
            raise CorruptRecord(f"corrupt hint store: {exc}") from exc
        return state

    def _iter_index(self, target: str) -> Iterator[tuple[bytes, bytes]]:
        prefix = self._index_prefix(target)
        return self._storage.scan(prefix, _prefix_end(prefix))

    def pending_sized(self, target: str, limit: int | None = None) -> list[tuple[Hint[S], int]]:
        """Like [`pending`][dynamo_core.hints.HintStore.pending], each hint with its encoded size.

        The size is what [`Handoff`][dynamo_core.hints.Handoff] charges to its rate limit.
        """
        out: list[tuple[Hint[S], int]] = []
        entry = self._targets.get(target)
        if entry is None or not entry.hints:
            return out
        hint_prefix = self._namespace + _TAG_HINT + _lp(target)
        for _, encoded_key in self._iter_index(target):
            stored = self._storage.get(hint_prefix + encoded_key)
            if stored is None:
                raise CorruptRecord(f"corrupt hint store: index entry without hint for {target!r}")
            hint = self._read(target, _decode_key(encoded_key), stored)
            out.append((hint, len(stored) - _HEADER_LEN))
            if limit is not None and len(out) >= limit:
                break
        return out

    def pending(self, target: str, limit: int | None = None) -> list[Hint[S]]:
        """Return the hints stored for `target`, oldest ``created_at`` first.

        Cost: O(log n + k) storage reads and k decodes for k returned hints.

        Args:
            target: The node id.
            limit: Return at most this many (default: all).

        Returns:
            The hints; an empty list for a target with none.

        Raises:
            TypeError: `target` is not a `str` or `limit` is not an `int`.
            ValueError: `target` is not a valid node id or `limit` is below 1.
            dynamo_core.errors.StorageError: the backend failed or holds corrupt records.
        """
        check_node_id(target, "target")
        if limit is not None:
            check_positive_int(limit, "limit")
        return [hint for hint, _ in self.pending_sized(target, limit)]

    def get(self, target: str, key: str | bytes) -> Hint[S] | None:
        """Return the hint stored for `target` and `key`, or `None`. O(log n).

        Raises:
            TypeError: `target` or `key` has the wrong type.
            ValueError: `target` or `key` is invalid.
        """
        check_node_id(target, "target")
        key_bytes(key)
        stored = self._storage.get(self._hint_key(target, key))
        return None if stored is None else self._read(target, key, stored)

    def targets(self) -> list[str]:
        """Return the targets that have hints pending, sorted. O(targets)."""
        return sorted(target for target, entry in self._targets.items() if entry.hints)

    def count(self, target: str) -> int:
        """Return how many hints are pending for `target` (0 for an unknown target). O(1)."""
        entry = self._targets.get(target)
        return 0 if entry is None else entry.hints

    def __len__(self) -> int:
        """The number of hints stored, over all targets."""
        return sum(entry.hints for entry in self._targets.values())

    def _oldest(self, target: str, entry: _Target) -> float | None:
        if not entry.hints:
            return None
        if entry.oldest is None:
            for index_key, _ in self._iter_index(target):
                entry.oldest = _HEADER.unpack(index_key[-_HEADER_LEN:])[0]
                break
        return entry.oldest

    def next_expiry(self) -> float | None:
        """Return when the next hint expires (``oldest created_at + ttl``), or `None`.

        Cost: O(targets); the oldest hint of each target is cached between changes.
        """
        times = [
            oldest + self._ttl
            for target, entry in self._targets.items()
            if (oldest := self._oldest(target, entry)) is not None
        ]
        return min(times) if times else None

    def window_closes_at(self, target: str) -> float | None:
        """Return when `target`'s hint window closes, or `None` if none is open. O(1).

        Raises:
            TypeError: `target` is not a `str`.
            ValueError: `target` is not a valid node id.
        """
        check_node_id(target, "target")
        entry = self._targets.get(target)
        if entry is None or entry.window_start is None:
            return None
        return entry.window_start + self._window

    def stats(self) -> HintStats:
        """Return the counters of every known target. O(targets)."""
        return HintStats(
            tuple(
                TargetStats(
                    target=target,
                    hints=entry.hints,
                    bytes=entry.bytes,
                    oldest=self._oldest(target, entry),
                    window_start=entry.window_start,
                    dropped=entry.dropped,
                    expired=entry.expired,
                    delivered=entry.delivered,
                    needs_repair=entry.needs_repair,
                )
                for target, entry in sorted(self._targets.items())
            )
        )

    def needs_repair(self) -> list[str]:
        """Return the targets that missed writes through dropped or expired hints, sorted.

        Run anti-entropy (a Merkle exchange) with each, then call
        [`clear_repair`][dynamo_core.hints.HintStore.clear_repair].
        """
        return sorted(target for target, entry in self._targets.items() if entry.needs_repair)

    # -- writing -------------------------------------------------------------------------------

    def _check_state(self, state: object) -> None:
        if not isinstance(state, self._state_type):
            raise TypeError(
                f"state must be a {self._state_type.__name__}, not {type(state).__name__}"
            )

    def _drop(self, target: str, entry: _Target) -> bool:
        self._storage.put(
            self._meta_key(target), entry.meta(dropped=entry.dropped + 1, needs_repair=True)
        )
        entry.dropped += 1
        entry.needs_repair = True
        self._targets[target] = entry
        return False

    def add(self, target: str, key: str | bytes, state: S, now: float) -> bool:
        """Store a hint that `state` for `key` belongs to `target`, or merge it into the stored one.

        Cost: O(log n) storage operations, one encode of the (merged) state.

        Args:
            target: The node the data belongs to.
            key: The key.
            state: The replica state to deliver; merged with ``sync`` into an existing hint.
            now: The current time in seconds (the same clock as `expire` and the window).

        Returns:
            `True` if the hint is stored (a merge that changes nothing counts). `False` if the write
            was dropped — the target's window is over, or its hint or byte cap would be exceeded;
            the drop is counted and the target flagged for repair.

        Raises:
            TypeError: an argument has the wrong type (`state` must be of the store's state type).
            ValueError: `target`, `key` or `now` is invalid. Nothing was stored or counted.
            dynamo_core.errors.DotCollision: `state` and the stored hint hold one dot with two
                values (two writers share an actor); nothing was stored or counted.
            dynamo_core.errors.StorageError: the backend failed; nothing was stored or counted.
        """
        check_node_id(target, "target")
        key_bytes(key)
        self._check_state(state)
        now = check_time(now, "now") + 0.0
        entry = self._targets.get(target) or _Target()
        if entry.window_start is not None and now >= entry.window_start + self._window:
            return self._drop(target, entry)
        hint_key = self._hint_key(target, key)
        stored = self._storage.get(hint_key)
        if stored is not None:
            created_at = _HEADER.unpack_from(stored)[0]
            merged = self._decode_state(stored).sync(state)
            body = codec.dumps(_hint_dict(target, key, merged, created_at))
            old_size = len(stored) - _HEADER_LEN
            if body == stored[_HEADER_LEN:]:
                return True
            if entry.bytes - old_size + len(body) > self._max_bytes:
                return self._drop(target, entry)
            self._storage.put(hint_key, stored[:_HEADER_LEN] + body)
            entry.bytes += len(body) - old_size
            return True
        body = codec.dumps(_hint_dict(target, key, state, now))
        if entry.hints + 1 > self._max_hints or entry.bytes + len(body) > self._max_bytes:
            return self._drop(target, entry)
        header = _HEADER.pack(now, self._seq)
        puts = [
            (hint_key, header + body),
            (self._index_prefix(target) + header, _encode_key(key)),
        ]
        if entry.window_start is None:
            puts.append((self._meta_key(target), entry.meta(window_start=now)))
        self._storage.write_batch(puts)
        self._seq += 1
        if entry.window_start is None:
            entry.window_start = now
        if entry.hints == 0 or (entry.oldest is not None and now < entry.oldest):
            entry.oldest = now
        entry.hints += 1
        entry.bytes += len(body)
        self._targets[target] = entry
        return True

    def remove(self, hint: Hint[S]) -> bool:
        """Delete `hint` if the store still holds exactly it (a delivered hint).

        A hint that was merged with a newer write since it was read is *not* the same hint any
        more, so it survives the delivery of its older version and is delivered again later.
        Removing a hint twice, or one that expired meanwhile, is harmless. The comparison is of
        the stored bytes with the hint's canonical encoding, so it is exact.

        Cost: O(log n) storage operations; one encode unless `hint` was read from this store.

        Returns:
            `True` if the hint was deleted and counted as delivered; `False` if the store holds
            no hint, or a different one, for its target and key.

        Raises:
            TypeError: `hint` is not a `Hint` of the store's state type.
            dynamo_core.errors.StorageError: the backend failed; nothing was deleted.
        """
        if not isinstance(hint, Hint):
            raise TypeError(f"hint must be a Hint, not {type(hint).__name__}")
        return self.remove_many((hint,)) == 1

    def remove_many(self, hints: Iterable[Hint[S]]) -> int:
        """Delete every hint of `hints` that the store still holds exactly, in one batch.

        The same as calling [`remove`][dynamo_core.hints.HintStore.remove] for each, but with
        one atomic ``write_batch`` for all of them and their counters: one transaction (one
        fsync with `SQLiteStorage`) per acknowledged batch instead of one per hint.

        Cost: O(k log n) storage reads and one write for k hints.

        Returns:
            How many hints were deleted and counted as delivered.

        Raises:
            TypeError: an item is not a `Hint` of the store's state type; nothing was deleted.
            dynamo_core.errors.StorageError: the backend failed; nothing was deleted.
        """
        items = list(hints)
        for i, hint in enumerate(items):
            if not isinstance(hint, Hint):
                raise TypeError(f"hints[{i}] must be a Hint, not {type(hint).__name__}")
            self._check_state(hint.state)
        deletes: list[bytes] = []
        removed: dict[str, tuple[int, int]] = {}  # target -> (hints, bytes)
        gone: set[bytes] = set()  # removed earlier in this call: a repeat finds nothing
        for hint in items:
            hint_key = self._hint_key(hint.target, hint.key)
            if hint_key in gone:
                continue
            stored = self._storage.get(hint_key)
            if stored is None or stored[_HEADER_LEN:] != hint._encoded():
                continue
            gone.add(hint_key)
            deletes += [hint_key, self._index_prefix(hint.target) + stored[:_HEADER_LEN]]
            count, freed = removed.get(hint.target, (0, 0))
            removed[hint.target] = (count + 1, freed + len(stored) - _HEADER_LEN)
        if not removed:
            return 0
        puts = []
        for target, (count, _) in sorted(removed.items()):
            entry = self._targets[target]
            window = None if entry.hints == count else entry.window_start
            meta = entry.meta(delivered=entry.delivered + count, window_start=window)
            puts.append((self._meta_key(target), meta))
        self._storage.write_batch(puts, deletes)
        for target, (count, freed) in removed.items():
            entry = self._targets[target]
            if entry.hints == count:
                entry.window_start = None
            entry.hints -= count
            entry.bytes -= freed
            entry.delivered += count
            entry.oldest = None
        return sum(count for count, _ in removed.values())

    def expire(self, now: float) -> int:
        """Delete every hint whose ``created_at + ttl <= now``, counting each as expired.

        Every target that lost a hint is flagged in
        [`needs_repair`][dynamo_core.hints.HintStore.needs_repair]. Expiry does not close or
        reset a target's window. Deletes go in atomic batches of up to 512 hints, each with its
        counter update.

        Cost: O(targets + k log n) for k expired hints.

        Returns:
            The number of hints expired.

        Raises:
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
        """
        now = check_time(now, "now")
        total = 0
        for target in sorted(self._targets):
            entry = self._targets[target]
            while entry.hints:
                due: list[tuple[bytes, bytes]] = []
                for index_key, encoded_key in self._iter_index(target):
                    created_at = _HEADER.unpack(index_key[-_HEADER_LEN:])[0]
                    if created_at + self._ttl > now:
                        break
                    due.append((index_key, encoded_key))
                    if len(due) >= _BATCH_DELETES:
                        break
                if not due:
                    break
                total += self._expire_batch(target, entry, due)
        return total

    def _expire_batch(self, target: str, entry: _Target, due: list[tuple[bytes, bytes]]) -> int:
        hint_prefix = self._namespace + _TAG_HINT + _lp(target)
        deletes: list[bytes] = []
        freed = 0
        for index_key, encoded_key in due:
            stored = self._storage.get(hint_prefix + encoded_key)
            if stored is None:
                raise CorruptRecord(f"corrupt hint store: index entry without hint for {target!r}")
            freed += len(stored) - _HEADER_LEN
            deletes += [index_key, hint_prefix + encoded_key]
        count = len(due)
        meta = entry.meta(expired=entry.expired + count, needs_repair=True)
        self._storage.write_batch([(self._meta_key(target), meta)], deletes)
        entry.hints -= count
        entry.bytes -= freed
        entry.expired += count
        entry.needs_repair = True
        entry.oldest = None
        return count

    def _known(self, target: object) -> _Target:
        name = check_node_id(target, "target")
        entry = self._targets.get(name)
        if entry is None:
            raise ValueError(f"target {name!r} is unknown to this hint store")
        return entry

    def clear_repair(self, target: str, *, lost: int | None = None) -> bool:
        """Clear `target`'s repair flag once anti-entropy has repaired it.

        A drop that happens while the repair runs must not be forgotten: read
        ``stats().get(target).lost`` *before* starting the repair and pass it as `lost`; if more
        hints were lost since, the flag stays set.

        Args:
            target: The node id.
            lost: The target's ``lost`` count (dropped + expired) when the repair began.

        Returns:
            `True` if the flag is now clear; `False` if it stays set because of newer losses.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `target` is unknown to the store, or `lost` is negative or larger than
                the current count.
            dynamo_core.errors.StorageError: the backend failed; the flag is unchanged.
        """
        entry = self._known(target)
        current = entry.dropped + entry.expired
        if lost is not None:
            if type(lost) is not int:
                raise TypeError(f"lost must be an int, not {type(lost).__name__}")
            if not 0 <= lost <= current:
                raise ValueError(f"lost must be in 0..{current} (the current count), got {lost}")
            if lost < current:
                return False
        if entry.needs_repair:
            self._storage.put(self._meta_key(target), entry.meta(needs_repair=False))
            entry.needs_repair = False
        return True

    def reset_window(self, target: str) -> None:
        """Close `target`'s hint window so that its next hint opens a new one.

        Call it when the target is reachable again and nothing is pending for it — typically
        after its hints expired while it was down. ([`Handoff`][dynamo_core.hints.Handoff] does
        this when a target comes up with an empty backlog; delivering the last pending hint
        resets the window by itself.) A no-op if no window is open.

        Raises:
            TypeError: `target` is not a `str`.
            ValueError: `target` is unknown to the store, or still has hints pending (its window
                runs from the oldest of them).
            dynamo_core.errors.StorageError: the backend failed; nothing changed.
        """
        entry = self._known(target)
        if entry.hints:
            raise ValueError(
                f"target {target!r} still has {entry.hints} hints pending; "
                "its window runs from the oldest of them"
            )
        if entry.window_start is not None:
            self._storage.put(self._meta_key(target), entry.meta(window_start=None))
            entry.window_start = None

    def forget(self, target: str) -> int:
        """Delete every hint and counter of `target` (a node that left the cluster for good).

        Its hints are discarded undelivered and not counted anywhere: the data they held must
        reach the key's new owners through anti-entropy. Atomic: one ``write_batch``.

        Cost: O(k log n) for the target's k hints.

        Returns:
            The number of hints discarded.

        Raises:
            TypeError: `target` is not a `str`.
            ValueError: `target` is unknown to the store.
            dynamo_core.errors.StorageError: the backend failed; nothing was deleted.
        """
        entry = self._known(target)
        hint_prefix = self._namespace + _TAG_HINT + _lp(target)
        index_prefix = self._index_prefix(target)
        deletes = [k for k, _ in self._storage.scan(hint_prefix, _prefix_end(hint_prefix))]
        deletes += [k for k, _ in self._storage.scan(index_prefix, _prefix_end(index_prefix))]
        deletes.append(self._meta_key(target))
        self._storage.write_batch((), deletes)
        del self._targets[target]
        return entry.hints

    def __repr__(self) -> str:
        return (
            f"<HintStore {len(self)} hints for {len(self.targets())} targets "
            f"on {type(self._storage).__name__}>"
        )

    # -- invariants ----------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Check the records against each other and against the in-memory view. O(records)."""
        ns = self._namespace
        hints: dict[str, dict[bytes, bytes]] = {}
        index: dict[str, dict[bytes, bytes]] = {}
        metas: dict[str, bytes] = {}
        for record_key, value in self._storage.scan(ns, _prefix_end(ns)):
            tag = record_key[len(ns) : len(ns) + 1]
            target, tail = _split_target(record_key[len(ns) + 1 :])
            if tag == _TAG_HINT:
                hints.setdefault(target, {})[tail] = value
            elif tag == _TAG_INDEX:
                index.setdefault(target, {})[tail] = value
            else:
                assert tag == _TAG_META, record_key
                assert not tail, record_key
                metas[target] = value
        assert set(metas) | set(hints) == set(self._targets), "targets disagree with records"
        for target, entry in self._targets.items():
            assert entry.known(), f"{target!r} is tracked but has nothing"
            fresh = _Target()
            if target in metas:
                fresh.load_meta(metas[target], target)
            else:
                assert not entry.hints
            assert (fresh.dropped, fresh.expired, fresh.delivered, fresh.needs_repair) == (
                entry.dropped,
                entry.expired,
                entry.delivered,
                entry.needs_repair,
            ), f"counters of {target!r} differ from disk"
            assert fresh.window_start == entry.window_start, f"window of {target!r} differs"
            mine = hints.get(target, {})
            assert len(mine) == entry.hints, f"hint count of {target!r}"
            assert sum(len(v) - _HEADER_LEN for v in mine.values()) == entry.bytes
            assert entry.hints <= self._max_hints
            assert entry.bytes <= self._max_bytes
            if entry.hints:
                assert entry.window_start is not None
            expected_index: dict[bytes, bytes] = {}
            for encoded_key, value in mine.items():
                created_at, seq = _HEADER.unpack_from(value)
                assert seq < self._seq, "sequence number not below the next one"
                hint = self._decode(value)
                assert hint.target == target
                assert _encode_key(hint.key) == encoded_key
                assert hint.created_at == created_at
                expected_index[value[:_HEADER_LEN]] = encoded_key
            assert index.get(target, {}) == expected_index, f"index of {target!r}"
            if entry.oldest is not None:
                assert entry.hints
                assert entry.oldest == min(_HEADER.unpack(h)[0] for h in expected_index)
