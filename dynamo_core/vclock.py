"""Vector clocks, versioned values and sibling reconciliation.

A [`VectorClock`][dynamo_core.vclock.VectorClock] maps node ids to counters: each write
coordinated at a node increments that node's counter, so comparing two clocks tells whether one
version saw the other (`BEFORE` / `AFTER`), whether they are the same history (`EQUAL`), or
whether they were written without knowledge of each other (`CONCURRENT`), in which case both must
be kept as *siblings* for the application to merge. As in Dynamo and Riak, every entry also
records the time of its last increment; the timestamps serve pruning and last-write-wins and take
no part in equality, hashing or ordering.

[`reconcile`][dynamo_core.vclock.reconcile] keeps the maximal versions of a list of
[`Versioned`][dynamo_core.vclock.Versioned] values;
[`last_write_wins`][dynamo_core.vclock.last_write_wins] is the lossy alternative for
applications that choose it.

Per-server vector clocks cannot tell which siblings a stale client saw, so two clients writing in
turn make the sibling set grow without bound; [`DVVSet`][dynamo_core.dvv.DVVSet] fixes that.
"""

from __future__ import annotations

import enum
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any, Final, Generic, TypeVar, overload

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id, check_positive_int, check_time
from dynamo_core.errors import DecodeError

__all__ = [
    "MAX_ENTRIES",
    "MAX_VALUE_BYTES",
    "Ordering",
    "VectorClock",
    "Versioned",
    "last_write_wins",
    "reconcile",
]

V = TypeVar("V")

MAX_ENTRIES: Final = 1024
"""The most entries a decoder accepts in one clock (a larger clock is a `DecodeError`)."""

MAX_VALUE_BYTES: Final = codec.DEFAULT_MAX_BYTES
"""The largest encoded value a `Versioned` decoder accepts, in bytes (16 MiB)."""

_MAX: Final = codec.MAX_COUNTER
_first = itemgetter(0)
_second = itemgetter(1)
_time = time.time
_INF: Final = math.inf


class Ordering(enum.Enum):
    """How two clocks (and so two versions) are related.

    ``a.compare(b)`` is `BEFORE` when `b` saw everything `a` saw and more, `AFTER` in the
    opposite case, `EQUAL` for the same history and `CONCURRENT` when each saw something the
    other did not: two writes made without knowledge of each other, which must both be kept.
    """

    BEFORE = "before"
    AFTER = "after"
    EQUAL = "equal"
    CONCURRENT = "concurrent"

    def reverse(self) -> Ordering:
        """Return the ordering seen from the other side (`BEFORE` <-> `AFTER`)."""
        if self is Ordering.BEFORE:
            return Ordering.AFTER
        if self is Ordering.AFTER:
            return Ordering.BEFORE
        return self


_BEFORE: Final = Ordering.BEFORE
_AFTER: Final = Ordering.AFTER
_EQUAL: Final = Ordering.EQUAL
_CONCURRENT: Final = Ordering.CONCURRENT


def _stamp(now: object) -> float:
    """Return `now` in seconds as a float: the wall clock when `None`, else checked."""
    if now is None:
        return _time()
    return check_time(now)


class _ClockSlots:
    """The slots of a `VectorClock`, declared once so a `_Blank` can become a clock cheaply."""

    __slots__ = ("_entries", "_hash", "_nodes")


@attrs.frozen(init=False, eq=False, repr=False, weakref_slot=False)
class VectorClock(_ClockSlots):
    """An immutable vector clock: node id -> counter, with the time of each entry's last increment.

    Build one from a mapping (``VectorClock({"a": 2, "b": 1})``) or from nothing, then derive new
    clocks with [`increment`][dynamo_core.vclock.VectorClock.increment] and
    [`merge`][dynamo_core.vclock.VectorClock.merge]. Clocks are hashable and compare equal when
    their counters are equal; timestamps take no part in equality, hashing or ordering. Entries
    with a zero counter are never stored (`get` returns 0 for any absent node), iteration yields
    node ids in sorted order and `len` is the number of entries.

    Timestamps are seconds in the time base of the `now` values passed to `increment` (the Unix
    epoch when `now` is omitted: `time.time`). A protocol core must always pass `now`.

    Args:
        entries: Node id -> counter, as a mapping or an iterable of pairs. Counters are `int`
            (not `bool`) in ``0 .. 2**63 - 1``; zero counters are dropped.
        timestamps: Node id -> time of the entry's last increment, in seconds (default 0 for
            every entry). Every node named must have a non-zero counter in `entries`.

    Raises:
        TypeError: A node id is not a `str`, a counter is not an `int`, or a timestamp is not a
            number.
        ValueError: A node id is empty or longer than 255 characters, a counter is negative or
            too large, a node appears twice, or a timestamp is negative, not finite, or names a
            node without an entry.

    Examples:
        >>> a = VectorClock().increment("node-a", now=1.0)
        >>> b = a.increment("node-b", now=2.0)
        >>> a.compare(b)
        <Ordering.BEFORE: 'before'>
        >>> b.increment("node-b").compare(b.increment("node-a"))
        <Ordering.CONCURRENT: 'concurrent'>
    """

    # node id -> (counter, timestamp), keys in sorted order, counters >= 1. Never mutated.
    _entries: dict[str, tuple[int, float]]
    # The keys of `_entries` in order, shared by clocks derived without adding or dropping a
    # node, so `compare` tells the same nodes apart with one identity test.
    _nodes: tuple[str, ...]
    _hash: int  # cached by __hash__; unset until then

    def __init__(
        self,
        entries: Mapping[str, int] | Iterable[tuple[str, int]] | None = None,
        *,
        timestamps: Mapping[str, float] | None = None,
    ) -> None:
        pairs: Iterable[tuple[str, int]]
        if entries is None:
            pairs = ()
        elif isinstance(entries, Mapping):
            pairs = entries.items()
        else:
            pairs = entries
        counters: dict[str, int] = {}
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"entries must hold (node, counter) pairs, got {pair!r:.80}")
            node, counter = pair
            check_node_id(node, "entries node")
            if type(counter) is not int:
                raise TypeError(
                    f"entries[{node!r}] must be an int counter, not {type(counter).__name__}"
                )
            if not 0 <= counter <= _MAX:
                raise ValueError(f"entries[{node!r}] must be in 0..2**63-1, got {counter}")
            if node in counters:
                raise ValueError(f"entries names node {node!r} twice")
            counters[node] = counter
        stamps: dict[str, float] = {}
        if timestamps is not None:
            if not isinstance(timestamps, Mapping):
                raise TypeError(f"timestamps must be a mapping, not {type(timestamps).__name__}")
            for node, when in timestamps.items():
                if not counters.get(node):
                    raise ValueError(f"timestamps names {node!r}, which has no entry")
                stamps[node] = check_time(when, f"timestamps[{node!r}]")
        built = {
            node: (counters[node], stamps.get(node, 0.0))
            for node in sorted(counters)
            if counters[node]
        }
        object.__setattr__(self, "_entries", built)
        object.__setattr__(self, "_nodes", tuple(built))

    # -- reading ---------------------------------------------------------------------------------

    def get(self, node: str) -> int:
        """Return the counter of `node`, 0 when the clock has no entry for it. O(1)."""
        entry = self._entries.get(node)
        return 0 if entry is None else entry[0]

    def timestamp(self, node: str) -> float | None:
        """Return when `node`'s entry was last incremented, in seconds; `None` without an entry."""
        entry = self._entries.get(node)
        return None if entry is None else entry[1]

    @property
    def last_modified(self) -> float | None:
        """The latest timestamp of any entry, in seconds; `None` for the empty clock. O(n)."""
        if not self._entries:
            return None
        latest: float = max(map(_second, self._entries.values()))
        return latest

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node ids with an entry, sorted."""
        return self._nodes

    def items(self) -> Iterator[tuple[str, int]]:
        """Yield ``(node, counter)`` pairs in node order."""
        for node, entry in self._entries.items():
            yield node, entry[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node: object) -> bool:
        return node in self._entries

    def __repr__(self) -> str:
        inner = ", ".join(f"{node!r}: {entry[0]}" for node, entry in self._entries.items())
        return f"VectorClock({{{inner}}})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Pretty-print as `repr` (IPython and hypothesis use this)."""
        printer.text(repr(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        a = self._entries
        b = other._entries
        if a is b or a == b:
            return True
        if len(a) != len(b):
            return False
        for (node_a, entry_a), (node_b, entry_b) in zip(a.items(), b.items(), strict=False):
            if node_a != node_b or entry_a[0] != entry_b[0]:
                return False
        return True

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            value = hash(
                tuple(zip(self._entries, map(_first, self._entries.values()), strict=False))
            )
            object.__setattr__(self, "_hash", value)
            return value

    def _key(self) -> tuple[tuple[str, int], ...]:
        """A total order on clocks that extends nothing: for deterministic output order only."""
        return tuple(zip(self._entries, map(_first, self._entries.values()), strict=False))

    # -- deriving ----------------------------------------------------------------------------------

    def increment(self, node: str, now: float | None = None) -> VectorClock:
        """Return a clock with `node`'s counter one higher, stamped `now`. O(n).

        The result is strictly after this clock (``clock.compare(clock.increment(n)) is
        Ordering.BEFORE``).

        Args:
            node: The node that coordinates the new version.
            now: The time of the increment in seconds. `None` reads the wall clock
                (`time.time`); protocol cores always pass it.

        Returns:
            The new clock.

        Raises:
            TypeError: `node` is not a `str` or `now` is not a number.
            ValueError: `node` is empty or too long, or `now` is negative or not finite.
            OverflowError: `node`'s counter is already ``2**63 - 1``.
        """
        if type(now) is not float or not 0.0 <= now < _INF:
            now = _time() if now is None else check_time(now)
        entries = self._entries
        entry = entries.get(node) if type(node) is str else None
        if entry is not None:
            counter = entry[0]
            if counter >= _MAX:
                raise OverflowError(f"the counter of {node!r} is at its limit of 2**63-1")
            entries = entries.copy()
            entries[node] = (counter + 1, now)
            nodes = self._nodes
        else:
            check_node_id(node)
            items = list(entries.items())
            items.insert(bisect_left(self._nodes, node), (node, (1, now)))
            entries = dict(items)
            nodes = tuple(entries)
        clock: Any = _Blank()  # _derived, inlined: the largest cost of an increment
        clock._entries = entries
        clock._nodes = nodes
        clock.__class__ = VectorClock
        return clock  # type: ignore[no-any-return]

    def merge(self, other: VectorClock) -> VectorClock:
        """Return the pointwise maximum of two clocks (their least upper bound). O(n + m).

        Merging is commutative, associative and idempotent, and the result descends both
        inputs. For an entry present in both, the timestamp of the larger counter is kept (the
        later one when the counters are equal).

        Returns:
            The merged clock (`self` itself when `other` adds nothing).

        Raises:
            TypeError: `other` is not a `VectorClock`.
        """
        if type(other) is not VectorClock and not isinstance(other, VectorClock):
            raise TypeError(f"other must be a VectorClock, not {type(other).__name__}")
        a = self._entries
        b = other._entries
        if a is b or not b:
            return self
        if not a:
            return other
        merged = a.copy()
        changed = added = False
        for node, theirs in b.items():
            ours = merged.get(node)
            if ours is None:
                merged[node] = theirs
                added = True
            elif theirs is not ours and theirs > ours:
                merged[node] = theirs
                changed = True
        if added:
            merged = dict(sorted(merged.items()))
            nodes = tuple(merged)
        elif changed:
            nodes = self._nodes
        else:
            return self
        clock: Any = _Blank()  # _derived, inlined
        clock._entries = merged
        clock._nodes = nodes
        clock.__class__ = VectorClock
        return clock  # type: ignore[no-any-return]

    @classmethod
    def merge_all(cls, clocks: Iterable[VectorClock]) -> VectorClock:
        """Return the merge of any number of clocks (the empty clock for none). O(total size).

        Raises:
            TypeError: An item is not a `VectorClock`.
        """
        result = EMPTY_CLOCK
        for clock in clocks:
            result = result.merge(clock)
        return result

    # -- ordering ----------------------------------------------------------------------------------

    def compare(self, other: VectorClock) -> Ordering:  # noqa: PLR0911, PLR0912
        """Return how this clock relates to `other`, in one pass over the entries. O(n + m).

        Returns:
            `Ordering.BEFORE` if `other` descends this clock and differs from it,
            `Ordering.AFTER` in the opposite case, `Ordering.EQUAL` for equal counters and
            `Ordering.CONCURRENT` when each has an entry larger than the other's.

        Raises:
            TypeError: `other` is not a `VectorClock`.
        """
        if type(other) is not VectorClock and not isinstance(other, VectorClock):
            raise TypeError(f"other must be a VectorClock, not {type(other).__name__}")
        a = self._entries
        b = other._entries
        before = after = False
        nodes = self._nodes
        if nodes is other._nodes or nodes == other._nodes:
            # The same nodes, so the same (sorted) order: compare the counters side by side.
            # Entries shared by identity (a clock and one derived from it) are skipped unread.
            # Two lookups per node cost less than building two views and a zip at Dynamo's
            # sizes (a few coordinators), and stay within 1.5x of that at 50 entries.
            for node in nodes:
                entry_a = a[node]
                entry_b = b[node]
                if entry_a is entry_b:
                    continue
                x = entry_a[0]
                y = entry_b[0]
                if x > y:
                    if before:
                        return _CONCURRENT
                    after = True
                elif x < y:
                    if after:
                        return _CONCURRENT
                    before = True
            if before:
                return _BEFORE
            return _AFTER if after else _EQUAL
        shared = 0
        for node, mine in a.items():
            theirs = b.get(node)
            if theirs is None:
                if before:
                    return _CONCURRENT
                after = True
                continue
            shared += 1
            x = mine[0]
            y = theirs[0]
            if x > y:
                if before:
                    return _CONCURRENT
                after = True
            elif x < y:
                if after:
                    return _CONCURRENT
                before = True
        if shared < len(b):  # `other` has nodes this clock lacks
            if after:
                return _CONCURRENT
            before = True
        if before:
            return _BEFORE
        return _AFTER if after else _EQUAL

    def descends(self, other: VectorClock) -> bool:
        """Whether this clock has seen everything `other` has (``self >= other``). O(m).

        Reflexive: a clock descends itself. ``a.descends(b)`` is true exactly when
        ``a.compare(b)`` is `AFTER` or `EQUAL`.

        Raises:
            TypeError: `other` is not a `VectorClock`.
        """
        if type(other) is not VectorClock and not isinstance(other, VectorClock):
            raise TypeError(f"other must be a VectorClock, not {type(other).__name__}")
        a = self._entries
        b = other._entries
        if len(b) > len(a):
            return False
        for node, entry_b in b.items():
            entry_a = a.get(node)
            if entry_a is None or (entry_a is not entry_b and entry_a[0] < entry_b[0]):
                return False
        return True

    def dominates(self, other: VectorClock) -> bool:
        """Whether this clock is strictly after `other` (``compare`` is `AFTER`). O(n + m)."""
        return self.compare(other) is _AFTER

    # -- pruning -----------------------------------------------------------------------------------

    def prune(
        self,
        max_entries: int,
        *,
        min_entries: int | None = None,
        min_age: float | None = None,
        max_age: float | None = None,
        now: float | None = None,
    ) -> VectorClock:
        """Drop the least recently incremented entries, as Dynamo and Riak truncate clocks.

        Opt-in, and a trade: a pruned clock has forgotten history, so comparing it with another
        clock can report `CONCURRENT` where the truth was `BEFORE` (a false conflict: a needless
        sibling) and can even make a concurrent version look older than it is. Prune only the
        clock you are about to store, never a clock you use to decide that a version may be
        dropped, and keep `min_age` well above the time concurrent writes take to meet.

        The rules are Riak's: a clock of at most `min_entries` entries is left alone. Otherwise
        entries are visited from the oldest (ties broken by node id); the walk stops at an entry
        younger than `min_age`; an entry is dropped while the clock has more than `max_entries`
        entries, or while the entry is older than `max_age`; the walk also stops once the clock
        is down to `min_entries`. Riak's defaults are ``prune(50, min_age=20, max_age=86400)``;
        Dynamo's paper drops the oldest pair past about 10.

        Args:
            max_entries: Riak's ``big_vclock``: prune down to this many entries (>= 1).
            min_entries: Riak's ``small_vclock`` (default `max_entries`): never prune a clock of
                at most this many entries. ``0 .. max_entries``.
            min_age: Riak's ``young_vclock``, in seconds: never drop an entry incremented less
                than this long ago.
            max_age: Riak's ``old_vclock``, in seconds: drop entries older than this even when
                the clock is within `max_entries` (but above `min_entries`).
            now: The current time in seconds, for the ages (default: the wall clock).

        Returns:
            The pruned clock (`self` when nothing is dropped). Cost: O(n log n).

        Raises:
            TypeError: An argument has the wrong type.
            ValueError: `max_entries` < 1, `min_entries` outside ``0 .. max_entries``, or an age
                or `now` is negative or not finite.
        """
        check_positive_int(max_entries, "max_entries")
        small = max_entries
        if min_entries is not None:
            if type(min_entries) is not int:
                raise TypeError(f"min_entries must be an int, not {type(min_entries).__name__}")
            if not 0 <= min_entries <= max_entries:
                raise ValueError(f"min_entries must be 0..max_entries, got {min_entries}")
            small = min_entries
        young = None if min_age is None else check_time(min_age, "min_age")
        old = None if max_age is None else check_time(max_age, "max_age")
        size = len(self._entries)
        if size <= small:
            return self
        when = _stamp(now) if young is not None or old is not None else 0.0
        oldest_first = sorted(self._entries.items(), key=lambda item: (item[1][1], item[0]))
        dropped: set[str] = set()
        for node, (_, stamp) in oldest_first:
            if size <= small:
                break
            age = when - stamp
            if young is not None and age < young:
                break
            if size > max_entries or (old is not None and age > old):
                dropped.add(node)
                size -= 1
            else:
                break
        if not dropped:
            return self
        kept = {node: entry for node, entry in self._entries.items() if node not in dropped}
        return _derived(kept)

    # -- codec -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as three parallel lists in node order.

        ``{"type": "vclock", "v": 1, "nodes": [...], "counters": [...], "stamps": [...]}``;
        ``stamps`` are the timestamps in seconds (floats).
        """
        entries = self._entries.values()
        return {  # codec.envelope("vclock", ...), inlined: this is on every message's path
            "type": "vclock",
            "v": codec.FORMAT_VERSION,
            "nodes": list(self._entries),
            "counters": list(map(_first, entries)),
            "stamps": list(map(_second, entries)),
        }

    @classmethod
    def from_dict(cls, data: object, *, max_entries: int = MAX_ENTRIES) -> VectorClock:
        """Decode what [`to_dict`][dynamo_core.vclock.VectorClock.to_dict] produced.

        Node ids must be strings of 1 to 255 characters in strictly ascending order (so every
        clock has exactly one encoding), counters integers in ``1 .. 2**63 - 1`` (booleans are
        not integers) and stamps finite numbers >= 0. Cost: O(n), bounded by
        `max_entries`.

        Args:
            data: The decoded JSON value.
            max_entries: The largest clock accepted.

        Returns:
            The clock.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded clock or has more than
                `max_entries` entries.
        """
        # Fast path for well-formed input; anything unusual goes to the field-by-field decoder,
        # which accepts exactly the same inputs and names the first bad field.
        if type(data) is dict:
            version = data.get("v")
            if (
                type(version) is int
                and 1 <= version <= codec.FORMAT_VERSION
                and len(data) == 5
                and data.get("type") == "vclock"
            ):
                nodes = data.get("nodes")
                counters = data.get("counters")
                stamps = data.get("stamps")
                if (
                    type(nodes) is list
                    and type(counters) is list
                    and type(stamps) is list
                    and len(nodes) <= max_entries
                    and len(nodes) == len(counters) == len(stamps)
                ):
                    entries: dict[str, tuple[int, float]] = {}
                    previous = ""
                    for node, counter, stamp in zip(nodes, counters, stamps):  # noqa: B905
                        if (
                            type(node) is not str
                            or not previous < node
                            or len(node) > MAX_NODE_ID_LEN
                            or not node.isascii()  # the slow path checks UTF-8
                            or type(counter) is not int
                            or not 0 < counter <= _MAX
                            or type(stamp) is not float
                            or not 0.0 <= stamp < _INF
                        ):
                            break
                        entries[node] = (counter, stamp)
                        previous = node
                    else:
                        clock: Any = _Blank()  # _derived, inlined (the nodes are at hand)
                        clock._entries = entries
                        clock._nodes = tuple(nodes)
                        clock.__class__ = VectorClock
                        return clock  # type: ignore[no-any-return]
        return _decode_slowly(data, max_entries)

    def _check_invariants(self) -> None:
        """Assert the representation invariants (for tests)."""
        entries = self._entries
        assert type(entries) is dict
        assert type(self) is VectorClock
        nodes = list(entries)
        assert nodes == sorted(nodes)
        assert type(self._nodes) is tuple
        assert list(self._nodes) == nodes
        for node, entry in entries.items():
            assert type(node) is str
            assert 1 <= len(node) <= MAX_NODE_ID_LEN
            assert type(entry) is tuple
            assert len(entry) == 2
            counter, stamp = entry
            assert type(counter) is int
            assert 1 <= counter <= _MAX
            assert type(stamp) is float
            assert 0.0 <= stamp < _INF


class _Blank(_ClockSlots):
    """A `VectorClock` under construction: its slots, without its `__init__` and `__setattr__`.

    A clock derived from trusted data is filled in here with plain slot stores and then given
    the `VectorClock` class (the same slots, so CPython allows the switch): 114 ns against 190 ns
    for ``object.__new__`` and a descriptor call per slot, the largest cost of an increment.
    """

    __slots__ = ()


def _derived(entries: dict[str, tuple[int, float]]) -> VectorClock:
    """Wrap `entries` (valid, in node order, owned by the new clock) as a clock, unchecked."""
    clock: Any = _Blank()
    clock._entries = entries
    clock._nodes = tuple(entries)
    clock.__class__ = VectorClock
    return clock  # type: ignore[no-any-return]


EMPTY_CLOCK: Final = VectorClock()
"""The clock with no entries (what `VectorClock()` returns)."""


def _clock_from_sorted(counters: Iterable[tuple[str, int]]) -> VectorClock:
    """Build a clock (timestamps 0) from valid ``(node, counter >= 1)`` pairs in node order.

    For sibling modules that already hold validated, sorted data: nothing is checked.
    """
    entries = {node: (counter, 0.0) for node, counter in counters}
    clock: Any = _Blank()  # _derived, inlined: `DVVSet.context` is on every request's path
    clock._entries = entries
    clock._nodes = tuple(entries)
    clock.__class__ = VectorClock
    return clock  # type: ignore[no-any-return]


def _decode_slowly(data: object, max_entries: int) -> VectorClock:
    """Validate field by field, raising `DecodeError` that names the first bad field."""
    obj = codec.open_envelope(data, "vclock", required=("nodes", "counters", "stamps"))
    nodes = codec.as_list(obj["nodes"], "vclock.nodes", max_items=max_entries)
    counters = codec.as_list(obj["counters"], "vclock.counters", max_items=max_entries)
    stamps = codec.as_list(obj["stamps"], "vclock.stamps", max_items=max_entries)
    if not len(nodes) == len(counters) == len(stamps):
        raise DecodeError(
            f"vclock.nodes, .counters and .stamps must have the same length, got "
            f"{len(nodes)}, {len(counters)} and {len(stamps)}"
        )
    entries: dict[str, tuple[int, float]] = {}
    previous = ""
    for i, (node, counter, stamp) in enumerate(zip(nodes, counters, stamps, strict=True)):
        name = codec.as_str(node, f"vclock.nodes[{i}]", max_len=MAX_NODE_ID_LEN)
        if i and not previous < name:
            raise DecodeError(
                f"vclock.nodes[{i}] must sort after vclock.nodes[{i - 1}] (ascending, no repeats)"
            )
        previous = name
        entries[name] = (
            codec.as_int(counter, f"vclock.counters[{i}]", lo=1),
            codec.as_float(stamp, f"vclock.stamps[{i}]", lo=0.0),
        )
    return _derived(entries)


# -- versioned values ------------------------------------------------------------------------------


@attrs.frozen
class Versioned(Generic[V]):
    """A value and the vector clock of the write that produced it: one sibling.

    Values are whatever the application stores (the node stores `bytes`). Equality compares
    both the value and the clock; hashing needs a hashable value.

    Raises:
        TypeError: `clock` is not a [`VectorClock`][dynamo_core.vclock.VectorClock].
    """

    value: V
    clock: VectorClock = attrs.field(validator=attrs.validators.instance_of(VectorClock))

    def to_dict(self, encode: Callable[[V], bytes] | None = None) -> dict[str, codec.JSONValue]:
        """Encode as ``{"type": "versioned", "v": 1, "value": <base64>, "clock": {...}}``.

        Values travel as bytes (standard base64). Without `encode` the value must be `bytes`;
        give `encode` (with the matching `decode` to `from_dict`) for any other type.

        Raises:
            TypeError: The value (or what `encode` returned) is not `bytes`.
        """
        return codec.envelope(
            "versioned",
            {"value": _encode_value(self.value, encode, "value"), "clock": self.clock.to_dict()},
        )

    @overload
    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: None = None,
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_entries: int = MAX_ENTRIES,
    ) -> Versioned[bytes]: ...

    @overload
    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: Callable[[bytes], V],
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_entries: int = MAX_ENTRIES,
    ) -> Versioned[V]: ...

    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: Callable[[bytes], Any] | None = None,
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_entries: int = MAX_ENTRIES,
    ) -> Versioned[Any]:
        """Decode what [`to_dict`][dynamo_core.vclock.Versioned.to_dict] produced.

        Args:
            data: The decoded JSON value.
            decode: Turns the value's bytes back into an application value (default: keep
                the bytes). Any exception it raises becomes a `DecodeError`.
            max_value_bytes: The largest value accepted, in bytes.
            max_entries: The largest clock accepted.

        Returns:
            The versioned value.

        Raises:
            dynamo_core.errors.DecodeError: `data` is malformed or over a cap, or `decode` failed.
        """
        obj = codec.open_envelope(data, "versioned", required=("value", "clock"))
        raw = codec.as_bytes(obj["value"], "versioned.value", max_len=max_value_bytes)
        clock = VectorClock.from_dict(obj["clock"], max_entries=max_entries)
        return cls(_decode_value(raw, decode, "versioned.value"), clock)


def _encode_value(value: Any, encode: Callable[[Any], bytes] | None, what: str) -> str:
    data = value if encode is None else encode(value)
    if type(data) is not bytes:
        hint = "" if encode is not None else "; pass encode= to store other types"
        raise TypeError(f"{what} must encode to bytes, got {type(data).__name__}{hint}")
    return codec.encode_bytes(data)


def _decode_value(raw: bytes, decode: Callable[[bytes], Any] | None, what: str) -> Any:
    if decode is None:
        return raw
    try:
        return decode(raw)
    except Exception as exc:  # the application's decoder: any failure is bad input
        raise DecodeError(f"{what} could not be decoded: {type(exc).__name__}: {exc}") from exc


def _check_versions(versions: Iterable[Versioned[V]]) -> list[Versioned[V]]:
    items = list(versions)
    for i, item in enumerate(items):
        if not isinstance(item, Versioned):
            raise TypeError(f"versions[{i}] must be a Versioned, not {type(item).__name__}")
    return items


def _in_order(items: list[Versioned[V]]) -> list[Versioned[V]]:
    """Sort by clock, then value (by `repr` where values do not order), whatever the input order."""
    try:
        return sorted(items, key=lambda item: (item.clock._key(), item.value))
    except TypeError:
        return sorted(items, key=lambda item: (item.clock._key(), repr(item.value)))


def reconcile(versions: Iterable[Versioned[V]]) -> list[Versioned[V]]:
    """Keep the maximal versions: drop every version another one descends, and exact duplicates.

    What remains are the siblings an application must merge (one version when the history is
    linear). Two versions with equal clocks but different values are both kept: equal clocks
    cannot say which is newer (it happens only after pruning or a reused dot). Idempotent and
    independent of the input order: the output is sorted by clock, then by value (by `repr`
    for values that do not order).

    Cost: O(k^2 * n) for k versions of n-entry clocks (k is the sibling count, usually 1-3).

    Returns:
        The maximal versions, in a deterministic order.

    Raises:
        TypeError: An item is not a `Versioned`.
    """
    items = _check_versions(versions)
    if len(items) <= 1:
        return items
    kept: list[Versioned[V]] = []
    for candidate in items:
        clock = candidate.clock
        superseded = False
        for other in items:
            if other is candidate:
                continue
            if other.clock.compare(clock) is _AFTER:
                superseded = True
                break
        if not superseded and not any(
            k.clock == clock and k.value == candidate.value for k in kept
        ):
            kept.append(candidate)
    return _in_order(kept)


def last_write_wins(
    versions: Iterable[Versioned[V]], *, key: Callable[[Versioned[V]], Any] | None = None
) -> Versioned[V]:
    """Collapse siblings into one by wall-clock time: the explicit, lossy alternative.

    The winner is the version with the greatest `key` (by default its clock's
    [`last_modified`][dynamo_core.vclock.VectorClock.last_modified] time), ties broken by clock
    and then value, so every replica picks the same one. It is returned with the *merge of all
    the clocks*, so writing it back supersedes every input.

    What it loses: every other concurrent write, silently, although each was acknowledged to
    its client — and with skewed clocks, possibly the newer one. Jepsen measured Riak with
    last-write-wins losing 71.7% of acknowledged writes without any partition. Use it only
    where losing a concurrent update is acceptable (caches, idempotent overwrites).

    Returns:
        The winning value, with the merged clock.

    Raises:
        ValueError: `versions` is empty.
        TypeError: An item is not a `Versioned`.
    """
    items = _check_versions(versions)
    if not items:
        raise ValueError("versions must hold at least one version")
    ordered = _in_order(items)  # deterministic tie-break: the last one wins a tie
    if key is None:
        winner = max(reversed(ordered), key=lambda item: item.clock.last_modified or 0.0)
    else:
        winner = max(reversed(ordered), key=key)
    clock = VectorClock.merge_all(item.clock for item in items)
    return Versioned(winner.value, clock)
