"""Dotted version vector sets: exact sibling tracking with no sibling explosion.

A [`DVVSet`][dynamo_core.dvv.DVVSet] is what a replica stores for one key (Preguiça, Baquero,
Almeida et al., *Dotted Version Vectors*; Riak's ``dvvset``). It keeps, for every node that
coordinated writes to the key, the number of writes it has seen from that node, and each live
value (sibling) with the *dot* ``(node, counter)`` of the write that created it. A write carries
the context its client read; it replaces exactly the siblings whose dots the context covers and
keeps the others, so the number of siblings never exceeds the number of truly concurrent writes.
With one vector-clock entry per server, two clients writing in turn with stale contexts make the
sibling set grow by one per write; here it stays at two.

States merge with [`sync`][dynamo_core.dvv.DVVSet.sync], a join: commutative, associative and
idempotent. A value survives a merge unless the other side saw its dot and dropped it.

This implementation keeps each sibling's dot explicitly (Riak keeps only the newest run of dots
per node), which also lets [`lww`][dynamo_core.dvv.DVVSet.lww] and
[`discard`][dynamo_core.dvv.DVVSet.discard] drop siblings without inventing a write. There are no
"anonymous" (dotless) values, whose merges are not associative in Riak's version: every value has
a dot. A dot must never be issued twice with different values (Riak's KV679 bug); see
[`ActorEpochs`][dynamo_core.epochs.ActorEpochs].
"""

from __future__ import annotations

import json.encoder
import re
from binascii import a2b_base64 as _a2b_base64
from binascii import b2a_base64 as _b2a_base64
from collections.abc import Callable, Iterable
from typing import Any, Final, Generic, NamedTuple, TypeVar, overload

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id
from dynamo_core.errors import DecodeError, DotCollision
from dynamo_core.vclock import (
    MAX_ENTRIES,
    MAX_VALUE_BYTES,
    VectorClock,
    _clock_from_sorted,
    _decode_value,
    _encode_value,
)

__all__ = ["MAX_SIBLINGS", "DVVSet", "Dot", "sync_all"]

V = TypeVar("V")

MAX_SIBLINGS: Final = 1024
"""The most values (siblings) a decoder accepts in one `DVVSet`. Riak fails writes at 100."""

_MAX: Final = codec.MAX_COUNTER
_scan: Final = codec._SCAN  # the strict JSON scanner codec.loads uses
_new = object.__new__

# One entry per node: (node, counter, dots), dots = ((dot counter, value), ...) in descending
# dot order, each dot counter in 1..counter.
_Entry = tuple[str, int, tuple[tuple[int, V], ...]]


class Dot(NamedTuple):
    """The identity of one write: the node that coordinated it and that node's counter."""

    node: str
    counter: int


def _check_context(context: object) -> dict[str, int]:
    if context is None:
        return {}
    if not isinstance(context, VectorClock):
        raise TypeError(f"context must be a VectorClock or None, not {type(context).__name__}")
    return dict(context.items())


@attrs.frozen(repr=False)
class DVVSet(Generic[V]):
    """The state of one key at one replica: its siblings, each with the dot of its write.

    Immutable; every operation returns a new state. ``DVVSet()`` is the empty state (a key never
    written). Values are generic — anything the application stores (the node stores `bytes`);
    equality compares values with ``==`` and hashing needs hashable values. `len` is the number
    of siblings.

    The usual cycle: a client reads ``state.values`` and ``state.context``; it writes a new value
    with that context through a coordinator, which calls ``state.update(value, node, context)``;
    replicas exchange states with ``sync``.

    Examples:
        >>> s = DVVSet().update(b"v1", "a")
        >>> ctx = s.context                    # client 1 reads
        >>> s = s.update(b"v2", "a")           # client 2 writes without reading
        >>> s = s.update(b"v3", "b", ctx)      # client 1 writes: replaces v1, keeps v2
        >>> s.values
        [b'v2', b'v3']
    """

    _entries: tuple[_Entry[V], ...] = attrs.field(default=(), init=False)
    # `to_bytes`, once computed: a state is immutable, and a put's state is encoded by the
    # coordinator, then stored, sent and merged as is by each replica (not compared, not hashed)
    _raw: bytes | None = attrs.field(default=None, init=False, eq=False)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def values(self) -> list[V]:
        """The siblings, ordered by dot (node id, then counter): the same on every replica."""
        return [value for _, _, dots in self._entries for _, value in reversed(dots)]

    def items(self) -> list[tuple[Dot, V]]:
        """The siblings with their dots, in the order of `values`."""
        return [
            (Dot(node, dot), value)
            for node, _, dots in self._entries
            for dot, value in reversed(dots)
        ]

    @property
    def context(self) -> VectorClock:
        """The causal context: node -> number of its writes this state has seen.

        A client sends it back with its next write, so the write replaces exactly what the
        client saw. Its timestamps are all 0.
        """
        return _clock_from_sorted([(node, counter) for node, counter, _ in self._entries])

    def __len__(self) -> int:
        siblings = 0
        for _, _, dots in self._entries:  # a loop, not sum() of a generator: limits ask often
            siblings += len(dots)
        return siblings

    def __repr__(self) -> str:
        """``DVVSet.from_entries([...])``: the call that rebuilds the state.

        It does if the values' reprs rebuild them (`bytes` do), so a shrunk hypothesis example
        can be pasted into a test.
        """
        entries = ", ".join(
            f"({node!r}, {counter}, [{', '.join(f'({dot}, {value!r})' for dot, value in dots)}])"
            for node, counter, dots in self._entries
        )
        return f"DVVSet.from_entries([{entries}])"

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, int, Iterable[tuple[int, V]]]]) -> DVVSet[V]:
        """Build the state that `repr` shows: ``[(node, counter, [(dot, value), ...]), ...]``.

        These are the entries of [`to_dict`][dynamo_core.dvv.DVVSet.to_dict] with the values
        themselves in place of their encoding, checked as
        [`from_dict`][dynamo_core.dvv.DVVSet.from_dict] checks them (nodes ascending, dots
        descending within ``1 .. counter``, the same caps). Cost: O(siblings).

        Raises:
            dynamo_core.errors.DecodeError: the entries are malformed, inconsistent or over a cap.
        """
        values: list[V] = []

        def slot(value: V) -> str:  # from_dict checks the shape; the values ride by index
            values.append(value)
            return codec.encode_bytes(str(len(values) - 1).encode())

        try:
            data: list[codec.JSONValue] = [
                [node, counter, [[dot, slot(value)] for dot, value in dots]]
                for node, counter, dots in entries
            ]
        except (TypeError, ValueError) as exc:
            raise DecodeError(
                f"entries must be (node, counter, [(dot, value), ...]) triples: {exc}"
            ) from None
        return cls.from_dict(
            codec.envelope("dvvset", {"entries": data}), lambda raw: values[int(raw)]
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Pretty-print as `repr` (IPython and hypothesis use this)."""
        printer.text(repr(self))

    # -- writing -----------------------------------------------------------------------------------

    def update(self, value: V, node: str, context: VectorClock | None = None) -> DVVSet[V]:
        """Return the state after a write of `value`, coordinated at `node`, with `context`.

        The siblings whose dots `context` covers are replaced; the others (written concurrently,
        unseen by the client) stay. The new value gets the dot ``(node, n + 1)`` where `n` is the
        larger of this state's and the context's counter for `node`. `context=None` is a blind
        write: it replaces nothing. Cost: O(size of state + context).

        `node` must be an actor that never issues the same dot twice; after a restart that may
        have lost data, use [`ActorEpochs`][dynamo_core.epochs.ActorEpochs] to choose it.

        Args:
            value: The new value.
            node: The coordinating node's actor id.
            context: What the client read (`DVVSet.context`), or `None`.

        Returns:
            The new state.

        Raises:
            TypeError: `node` is not a `str` or `context` is not a `VectorClock`.
            ValueError: `node` is empty or too long.
            OverflowError: `node`'s counter is already ``2**63 - 1``.
        """
        check_node_id(node)
        return self._apply(_check_context(context), node, value)

    def discard(self, context: VectorClock) -> DVVSet[V]:
        """Return the state after removing the siblings `context` covers, adding no value.

        An observed-remove delete: concurrent writes the context did not see survive, and
        because the context is kept, replicas that still hold a removed sibling drop it on
        `sync`. Store the result (even with no values left) for the delete to spread.

        Raises:
            TypeError: `context` is not a `VectorClock`.
        """
        if not isinstance(context, VectorClock):
            raise TypeError(f"context must be a VectorClock, not {type(context).__name__}")
        return self._apply(dict(context.items()), None, None)

    def _apply(self, context: dict[str, int], node: str | None, value: Any) -> DVVSet[V]:
        merged: dict[str, tuple[int, tuple[tuple[int, V], ...]]] = {}
        for actor, counter, dots in self._entries:
            seen = context.get(actor, 0)
            if seen >= counter:
                merged[actor] = (seen, ())
            elif seen and dots and dots[-1][0] <= seen:
                merged[actor] = (counter, tuple(dot for dot in dots if dot[0] > seen))
            else:
                merged[actor] = (counter, dots)
        for actor, seen in context.items():
            if actor not in merged:
                merged[actor] = (seen, ())
        if node is not None:
            counter, dots = merged.get(node, (0, ()))
            if counter >= _MAX:
                raise OverflowError(f"the counter of {node!r} is at its limit of 2**63-1")
            merged[node] = (counter + 1, ((counter + 1, value), *dots))
        return _make(tuple((actor, *merged[actor]) for actor in sorted(merged)))

    # -- merging -----------------------------------------------------------------------------------

    def sync(self, other: DVVSet[V]) -> DVVSet[V]:
        """Return the merge of two replicas' states of the same key.

        A sibling survives unless the other state has seen its dot (its counter for the dot's
        node is at least the dot's) and no longer holds it. Commutative, associative and
        idempotent; the result descends both. Cost: O(size of both).

        A dot names one write, so two states holding the same dot with different values can only
        come from two writers sharing an actor identity; merging them would silently lose one
        write, so `sync` refuses (see [Writer identity](../concepts/versioning.md#writer-identity)).

        Raises:
            TypeError: `other` is not a `DVVSet`.
            dynamo_core.errors.DotCollision: The two states hold the same dot with different
                values.
        """
        if not isinstance(other, DVVSet):
            raise TypeError(f"other must be a DVVSet, not {type(other).__name__}")
        a = self._entries
        b = other._entries
        if a is b or a == b or not b:
            return self
        if not a:
            return other
        theirs = {actor: (counter, dots) for actor, counter, dots in b}
        out: list[_Entry[V]] = []
        for actor, counter, dots in a:
            match = theirs.pop(actor, None)
            if match is None:
                out.append((actor, counter, dots))
                continue
            other_counter, other_dots = match
            if dots == other_dots:
                out.append((actor, max(counter, other_counter), dots))
                continue
            mine = dict(dots)
            yours = dict(other_dots)
            for dot, value in dots:
                if dot in yours and yours[dot] != value:
                    raise DotCollision(actor, dot)
            kept = [item for item in dots if item[0] > other_counter or item[0] in yours]
            kept += [item for item in other_dots if item[0] > counter and item[0] not in mine]
            kept.sort(key=_dot_key, reverse=True)
            out.append((actor, max(counter, other_counter), tuple(kept)))
        out.extend((actor, counter, dots) for actor, (counter, dots) in theirs.items())
        out.sort(key=_actor_key)
        merged = tuple(out)
        if merged == b:  # `other` includes this state (a replica receiving a newer write):
            return other  # the same state, and it may know its encoding already
        if merged == a:
            return self
        return _make(merged)

    def descends(self, other: DVVSet[V]) -> bool:
        """Whether this state already includes every update `other` includes.

        True exactly when ``self.sync(other) == self``: this state has seen every write `other`
        has, and every sibling it holds that `other` has seen is still held by `other`.
        Reflexive and transitive. Cost: O(size of both).

        Raises:
            TypeError: `other` is not a `DVVSet`.
        """
        if not isinstance(other, DVVSet):
            raise TypeError(f"other must be a DVVSet, not {type(other).__name__}")
        if self._entries == other._entries:  # the common case: replicas that agree
            return True
        mine = {actor: (counter, dots) for actor, counter, dots in self._entries}
        theirs = {actor: (counter, dots) for actor, counter, dots in other._entries}
        for actor, (counter, _) in theirs.items():
            if mine.get(actor, (0, ()))[0] < counter:
                return False
        for actor, (_, dots) in mine.items():
            other_counter, other_dots = theirs.get(actor, (0, ()))
            held = {dot for dot, _ in other_dots}
            for dot, _ in dots:
                if dot <= other_counter and dot not in held:
                    return False
        return True

    # -- collapsing siblings -----------------------------------------------------------------------

    def reconcile(self, fn: Callable[[list[V]], V], node: str | None = None) -> DVVSet[V]:
        """Collapse the siblings into one value with the application's merge function.

        `fn` receives `values` (in their deterministic order). If it returns one of them (the
        same object), that sibling keeps its dot and the others are dropped; if it returns a new
        value, the merge is a new write: it needs the coordinating `node` and is made with the
        full context, so it replaces every sibling on every replica. A state with at most one
        sibling is returned unchanged and `fn` is not called.

        Args:
            fn: The merge, e.g. a set union for a shopping cart.
            node: The actor id for the write of a new merged value.

        Returns:
            The state with a single sibling.

        Raises:
            ValueError: `fn` returned a new value and `node` is `None`.
            TypeError, OverflowError: as `update`, for `node`.
        """
        items = self.items()
        if len(items) <= 1:
            return self
        merged = fn([value for _, value in items])
        for dot, value in items:
            if value is merged:
                return self._keep(dot)
        if node is None:
            raise ValueError(
                "fn returned a new value: pass node= (the coordinating actor) to write it"
            )
        return self.update(merged, node, self.context)

    def lww(self, key: Callable[[V], Any]) -> DVVSet[V]:
        """Keep only the sibling with the greatest ``key(value)`` (last-write-wins), by its dot.

        Ties go to the greater dot (node id, then counter), so every replica keeps the same
        sibling. The other siblings are dropped although their writes were acknowledged: use it
        only where losing a concurrent write is acceptable. The state's context is unchanged,
        so replicas that still hold a dropped sibling drop it on `sync`.

        Args:
            key: Orders values, e.g. a timestamp the application stores in them.

        Returns:
            The state with at most one sibling.
        """
        items = self.items()
        if len(items) <= 1:
            return self
        winner = max(items, key=lambda item: (key(item[1]), item[0]))
        return self._keep(winner[0])

    def _keep(self, keep: Dot) -> DVVSet[V]:
        return _make(
            tuple(
                (node, counter, tuple(item for item in dots if item[0] == keep.counter))
                if node == keep.node
                else (node, counter, ())
                for node, counter, dots in self._entries
            )
        )

    # -- codec -------------------------------------------------------------------------------------

    def to_dict(self, encode: Callable[[V], bytes] | None = None) -> dict[str, codec.JSONValue]:
        """Encode the entries in node order, each with its dots and values.

        ``{"type": "dvvset", "v": 1, "entries": [[node, counter, [[dot, value], ...]], ...]}``;
        entries are in node order, dots in descending order, values standard base64. Without
        `encode` the values must be `bytes` (what the node stores); give `encode` (and the
        matching `decode` to `from_dict`) to store any other type.

        Raises:
            TypeError: A value (or what `encode` returned for it) is not `bytes`.
        """
        if encode is None:  # the node's case: bytes values, encoded inline
            b2a = _b2a_base64
            entries: list[codec.JSONValue] = [
                [
                    node,
                    counter,
                    [
                        [dot, b2a(value, newline=False).decode("ascii")]  # type: ignore[arg-type]
                        if type(value) is bytes
                        else [dot, _encode_value(value, None, "dvvset value")]
                        for dot, value in dots
                    ],
                ]
                for node, counter, dots in self._entries
            ]
        else:
            entries = [
                [
                    node,
                    counter,
                    [[dot, _encode_value(value, encode, "dvvset value")] for dot, value in dots],
                ]
                for node, counter, dots in self._entries
            ]
        # codec.envelope("dvvset", ...), inlined: this is on every message's path
        return {"type": "dvvset", "v": codec.FORMAT_VERSION, "entries": entries}

    def to_bytes(self) -> bytes:
        """The canonical encoding of a state of `bytes` values: ``codec.dumps(self.to_dict())``.

        The same bytes, written directly rather than through the dict (about twice as fast):
        what a node stores and sends. Cost: O(size) the first time; the state keeps the bytes
        (it is immutable), so later calls, and the messages that carry it, reuse them.

        Raises:
            TypeError: A value is not `bytes` (as `to_dict`).
        """
        raw = self._raw
        if raw is None:
            text = _state_json(self)
            if text is None:
                return codec.dumps(self.to_dict())  # raises to_dict's TypeError
            raw = text.encode("utf-8")
            _set_raw(self, raw)
        return raw

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview | str, *, max_bytes: int = codec.DEFAULT_MAX_BYTES
    ) -> DVVSet[bytes]:
        """Decode [`to_bytes`][dynamo_core.dvv.DVVSet.to_bytes]: ``from_dict(codec.loads(data))``.

        It accepts and refuses exactly what that accepts and refuses, with the default caps; the
        canonical form is read without building the envelope's dict. Cost: O(len(data)).

        Raises:
            TypeError: `data` is not bytes-like or `str`.
            dynamo_core.errors.DecodeError: `data` is over `max_bytes` or not a valid state.
        """
        text = codec.canonical_text(data, max_bytes)
        if text is not None:
            match = _STATE_TEXT(text)
            state = None if match is None else _state_of(match.group(1))
            if state is not None:
                return state
        return cls.from_dict(codec.loads(data, max_bytes=max_bytes))

    @overload
    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: None = None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_values: int = MAX_SIBLINGS,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> DVVSet[bytes]: ...

    @overload
    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: Callable[[bytes], V],
        *,
        max_entries: int = MAX_ENTRIES,
        max_values: int = MAX_SIBLINGS,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> DVVSet[V]: ...

    @classmethod
    def from_dict(
        cls,
        data: object,
        decode: Callable[[bytes], Any] | None = None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_values: int = MAX_SIBLINGS,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> DVVSet[Any]:
        """Decode what [`to_dict`][dynamo_core.dvv.DVVSet.to_dict] produced.

        Node ids must be 1 to 255 characters in strictly ascending order, counters integers in
        ``1 .. 2**63 - 1``, dots strictly descending within ``1 .. counter``, so every state has
        exactly one encoding. Cost: O(size of `data`), bounded by the caps.

        Args:
            data: The decoded JSON value.
            decode: Turns a value's bytes back into an application value (default: keep the
                bytes). Any exception it raises becomes a `DecodeError`.
            max_entries: The most nodes accepted.
            max_values: The most siblings accepted, over all nodes.
            max_value_bytes: The largest value accepted, in bytes.

        Returns:
            The state.

        Raises:
            dynamo_core.errors.DecodeError: `data` is malformed, over a cap, or `decode` failed.
        """
        entries: list[_Entry[Any]] | None = _decode_quickly(
            data, max_entries, max_values, max_value_bytes
        )
        if entries is None:
            entries = _decode_slowly(data, max_entries, max_values, max_value_bytes)
        if decode is not None:
            entries = [
                (
                    node,
                    counter,
                    tuple(
                        (dot, _decode_value(raw, decode, f"dvvset value {node}:{dot}"))
                        for dot, raw in dots
                    ),
                )
                for node, counter, dots in entries
            ]
        return _make(tuple(entries))

    def _check_invariants(self) -> None:
        """Assert the representation invariants (for tests)."""
        entries = self._entries
        assert type(entries) is tuple
        assert self._raw is None or self._raw == codec.dumps(self.to_dict()), "a stale encoding"
        actors = [entry[0] for entry in entries]
        assert actors == sorted(set(actors))
        for actor, counter, dots in entries:
            assert type(actor) is str
            assert 1 <= len(actor) <= MAX_NODE_ID_LEN
            assert type(counter) is int
            assert 1 <= counter <= _MAX
            assert type(dots) is tuple
            previous = counter + 1
            for item in dots:
                assert type(item) is tuple
                assert len(item) == 2
                assert type(item[0]) is int
                assert 1 <= item[0] < previous
                previous = item[0]


def _decode_quickly(
    data: object, max_entries: int, max_values: int, max_value_bytes: int
) -> list[_Entry[bytes]] | None:
    """Decode a well-formed encoding in one tight pass; `None` for anything unusual.

    Accepts exactly what `_decode_slowly` accepts (the tests check both ways) except that it
    leaves non-ASCII node ids and every refusal to the slow path, which names the bad field.
    """
    if type(data) is not dict or len(data) != 3 or data.get("type") != "dvvset":
        return None
    version = data.get("v")
    if type(version) is not int or not 1 <= version <= codec.FORMAT_VERSION:
        return None
    return _entries_quickly(data.get("entries"), max_entries, max_values, max_value_bytes)


def _entries_quickly(  # noqa: PLR0911
    raw_entries: object, max_entries: int, max_values: int, max_value_bytes: int
) -> list[_Entry[bytes]] | None:
    """The ``entries`` of a well-formed encoding (see `_decode_quickly`); `None` if unusual."""
    if type(raw_entries) is not list or len(raw_entries) > max_entries:
        return None
    a2b = _a2b_base64
    max_encoded = 4 * ((max_value_bytes + 2) // 3)
    budget = max_values
    previous = ""
    entries: list[_Entry[bytes]] = []
    for raw in raw_entries:
        if type(raw) is not list or len(raw) != 3:
            return None
        node, counter, raw_dots = raw
        if (
            type(node) is not str
            or not previous < node
            or len(node) > MAX_NODE_ID_LEN
            or not node.isascii()
            or type(counter) is not int
            or not 0 < counter <= _MAX
            or type(raw_dots) is not list
        ):
            return None
        previous = node
        if not raw_dots:  # most entries: a node whose writes were all replaced
            entries.append((node, counter, ()))
            continue
        budget -= len(raw_dots)
        if budget < 0:
            return None
        dots: list[tuple[int, bytes]] = []
        ceiling = counter
        try:  # ValueError: a dot that is not a pair, or a value that is not strict base64
            for raw_dot in raw_dots:
                if type(raw_dot) is not list:
                    return None
                dot, encoded = raw_dot
                if (
                    type(dot) is not int
                    or not 0 < dot <= ceiling
                    or type(encoded) is not str
                    or len(encoded) > max_encoded
                ):
                    return None
                value = a2b(encoded, strict_mode=True)
                if len(value) > max_value_bytes:
                    return None
                dots.append((dot, value))
                ceiling = dot - 1
        except ValueError:
            return None
        entries.append((node, counter, tuple(dots)))
    return entries


_encode_node: Final = json.encoder.encode_basestring  # what codec.dumps writes for a str


def _state_json(state: DVVSet[Any]) -> str | None:
    """``codec.dumps(state.to_dict())`` as text, written directly; `None` for non-bytes values.

    The messages on the request path embed it in their own JSON (see `messages.encode_message`);
    the tests check it equals the canonical encoding for any state.
    """
    raw = state._raw
    if raw is not None:  # encoded before (by `to_bytes`): a put's state, sent to each replica
        return raw.decode("utf-8")
    b2a = _b2a_base64
    parts = []
    for node, counter, dots in state._entries:
        encoded = []
        for dot, value in dots:
            if type(value) is not bytes:
                return None  # to_dict's error
            encoded.append(f'[{dot},"{b2a(value, newline=False).decode("ascii")}"]')
        parts.append(f"[{_encode_node(node)},{counter},[{','.join(encoded)}]]")
    return f'{{"entries":[{",".join(parts)}],"type":"dvvset","v":{codec.FORMAT_VERSION}}}'


def _context_json(state: DVVSet[Any]) -> bytes:
    """``codec.dumps(state.context.to_dict())``, written directly (a client's context).

    The context's timestamps are all 0; the tests check it equals the canonical encoding.
    """
    entries = state._entries
    nodes = ",".join([_encode_node(node) for node, _, _ in entries])
    counters = ",".join([str(counter) for _, counter, _ in entries])
    stamps = ",".join(["0.0"] * len(entries))
    return (
        f'{{"counters":[{counters}],"nodes":[{nodes}],"stamps":[{stamps}],'
        f'"type":"vclock","v":{codec.FORMAT_VERSION}}}'
    ).encode()


_STATE_PATTERN: Final = f'\\{{"entries":(\\[.*\\]),"type":"dvvset","v":{codec.FORMAT_VERSION}\\}}'
_STATE_TEXT: Final = re.compile(_STATE_PATTERN, re.DOTALL).fullmatch
"""The canonical encoding of a state, its ``entries`` list captured (`_state_of` checks it)."""


def _state_of(entries_text: str) -> DVVSet[bytes] | None:
    """The state whose ``entries`` are the JSON `entries_text`; `None` if the fast path declines.

    Takes exactly what `DVVSet.from_dict` builds from an envelope holding these entries, with
    the default caps (the tests edit encodings byte by byte to check it).
    """
    try:
        value, end = _scan(entries_text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(entries_text):
        return None
    entries = _entries_quickly(value, MAX_ENTRIES, MAX_SIBLINGS, MAX_VALUE_BYTES)
    return None if entries is None else _make(tuple(entries))


def _decode_slowly(
    data: object, max_entries: int, max_values: int, max_value_bytes: int
) -> list[_Entry[Any]]:
    """Validate field by field, raising `DecodeError` that names the first bad field."""
    obj = codec.open_envelope(data, "dvvset", required=("entries",))
    raw_entries = codec.as_list(obj["entries"], "dvvset.entries", max_items=max_entries)
    entries: list[_Entry[Any]] = []
    budget = max_values
    previous = ""
    for i, raw in enumerate(raw_entries):
        what = f"dvvset.entries[{i}]"
        triple = codec.as_list(raw, what, max_items=3)
        if len(triple) != 3:
            raise DecodeError(f"{what} must be [node, counter, dots], got {len(triple)} items")
        node = codec.as_str(triple[0], f"{what}.node", max_len=MAX_NODE_ID_LEN)
        if i and not previous < node:
            raise DecodeError(f"{what}.node must sort after the previous one (no repeats)")
        previous = node
        counter = codec.as_int(triple[1], f"{what}.counter", lo=1)
        raw_dots = codec.as_list(triple[2], f"{what}.dots", max_items=budget)
        budget -= len(raw_dots)
        dots: list[tuple[int, Any]] = []
        ceiling = counter
        for j, raw_dot in enumerate(raw_dots):
            where = f"{what}.dots[{j}]"
            pair = codec.as_list(raw_dot, where, max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"{where} must be [dot, value], got {len(pair)} items")
            dot = codec.as_int(pair[0], f"{where}.dot", lo=1, hi=ceiling)
            ceiling = dot - 1
            raw_value = codec.as_bytes(pair[1], f"{where}.value", max_len=max_value_bytes)
            dots.append((dot, raw_value))
        entries.append((node, counter, tuple(dots)))
    return entries


def _dot_key(item: tuple[int, Any]) -> int:
    return item[0]


def _actor_key(entry: _Entry[Any]) -> str:
    return entry[0]


def _make(entries: tuple[_Entry[V], ...]) -> DVVSet[V]:
    state: DVVSet[V] = _new(DVVSet)
    _set_entries(state, entries)
    _set_raw(state, None)
    return state


_set_entries: Final = DVVSet.__dict__["_entries"].__set__  # the slot, past the frozen guard
_set_raw: Final = DVVSet.__dict__["_raw"].__set__


def sync_all(states: Iterable[DVVSet[V]]) -> DVVSet[V]:
    """Return the merge of any number of states (the empty state for none)."""
    result: DVVSet[V] = DVVSet()
    for state in states:
        result = result.sync(state)
    return result
