"""Range streaming: a joining replica pulls a token range's data in bounded batches (sans-I/O).

When a ring version moves a range to a new replica (a
[`Transfer`][dynamo_core.ring.Transfer] of the version's plan), the *target* runs a
[`RangeStream`][dynamo_core.streaming.RangeStream]: it asks the source for the next batch of
keys after a cursor ([`StreamPull`][dynamo_core.streaming.StreamPull]), the source answers with
states read straight from its storage ([`StreamBatch`][dynamo_core.streaming.StreamBatch]) and
keeps no state of its own, and the target merges the states (``sync``, idempotent) and persists
the new cursor in the same atomic batch as the data. Either side can crash: the stream resumes
from the persisted cursor.

The core is a pure state machine like every other: inputs
([`start`][dynamo_core.streaming.RangeStream.start],
[`receive`][dynamo_core.streaming.RangeStream.receive],
[`on_timer`][dynamo_core.streaming.RangeStream.on_timer]) return effects
([`SendPull`][dynamo_core.streaming.SendPull], [`StoreItems`][dynamo_core.streaming.StoreItems],
[`StreamFinished`][dynamo_core.streaming.StreamFinished]) and
[`deadline`][dynamo_core.streaming.RangeStream.deadline] says when to call `on_timer`.

* **Bounded and throttled**: each batch carries at most `batch_bytes` of encoded states (at
  least one key); the next pull waits until ``bytes / rate`` seconds after the previous one.
* **Timeouts with backoff**: a pull that is not answered in `timeout` is sent again after a
  doubling backoff; after `tries_per_source` silent pulls the stream moves to the range's next
  candidate source and starts over from the beginning (a cursor belongs to one source's store).
* **A source that lost its disk** answers with another storage *life* id: the stream starts
  over from the beginning, so a completed stream is always one source's complete scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, Literal, Self, TypeAlias, TypeVar

import attrs

from dynamo_core import codec
from dynamo_core._check import (
    MAX_KEY_BYTES,
    check_node_id,
    check_positive_float,
    check_positive_int,
    check_time,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DecodeError, LocalProtocolError
from dynamo_core.hashing import TokenRange
from dynamo_core.ring import Transfer

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_CURSOR_BYTES",
    "RangeStream",
    "SendPull",
    "StoreItems",
    "StreamBatch",
    "StreamEffect",
    "StreamFinished",
    "StreamPull",
    "serve_pull",
]

MAX_BATCH_ITEMS: Final = 10_000
"""The most keys one [`StreamBatch`][dynamo_core.streaming.StreamBatch] carries."""

MAX_CURSOR_BYTES: Final = 8 + MAX_KEY_BYTES
"""A cursor is a key's 8-byte big-endian token followed by the key."""

MAX_BATCH_BYTES: Final = 8 * 2**20
"""The most encoded state bytes a source puts in one batch, whatever the pull asks for."""

_STATUSES: Final = ("ok", "not_yet", "stale")
_T = TypeVar("_T")


def _check_count(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= codec.MAX_COUNTER:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _check_cursor(_: object, attribute: attrs.Attribute[bytes | None], value: object) -> None:
    if value is None:
        return
    if type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes or None, not {type(value).__name__}")
    if not 8 <= len(value) <= MAX_CURSOR_BYTES:
        raise ValueError(f"{attribute.name} must be 8..{MAX_CURSOR_BYTES} bytes long")


def _check_range(_: object, attribute: attrs.Attribute[TokenRange], value: object) -> None:
    if type(value) is not TokenRange:
        raise TypeError(f"{attribute.name} must be a TokenRange, not {type(value).__name__}")


def _check_items(
    _: object, attribute: attrs.Attribute[tuple[tuple[bytes, DVVSet[bytes]], ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple, not {type(value).__name__}")
    if len(value) > MAX_BATCH_ITEMS:
        raise ValueError(f"{attribute.name} must hold at most {MAX_BATCH_ITEMS} items")
    for i, item in enumerate(value):
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"{attribute.name}[{i}] must be a (key, DVVSet) pair")
        if type(item[0]) is not bytes or len(item[0]) > MAX_KEY_BYTES:
            raise TypeError(f"{attribute.name}[{i}] key must be bytes of at most 64 KiB")
        if not isinstance(item[1], DVVSet):
            raise TypeError(f"{attribute.name}[{i}] state must be a DVVSet")


def _check_status(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in _STATUSES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(_STATUSES)}")


def _decode_cursor(value: object, what: str) -> bytes | None:
    if value is None:
        return None
    data = codec.as_bytes(value, what, max_len=MAX_CURSOR_BYTES)
    if len(data) < 8:
        raise DecodeError(f"{what} must be at least 8 bytes long")
    return data


def _build(cls: type[_T], what: str, *args: object) -> _T:
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


@attrs.frozen
class StreamPull:
    """Send me the next batch of your data in `range` after `after`.

    Attributes:
        epoch: The ring epoch of the transfer (a source older than this answers ``not_yet``).
        index: The transfer's index in the version's plan.
        op: The puller's id for this pull, echoed in the batch.
        range: The token range being moved.
        after: The cursor (the last key received, as token + key), or `None` from the start.
        max_bytes: The most encoded state bytes the batch may carry (at least one key is sent).
    """

    epoch: int = attrs.field(validator=_check_count)
    index: int = attrs.field(validator=_check_count)
    op: int = attrs.field(validator=_check_count)
    range: TokenRange = attrs.field(validator=_check_range)
    after: bytes | None = attrs.field(validator=_check_cursor)
    max_bytes: int = attrs.field(validator=_check_count)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``stream_pull`` envelope."""
        return codec.envelope(
            "stream_pull",
            {
                "epoch": self.epoch,
                "index": self.index,
                "op": self.op,
                "range": self.range.to_dict(),
                "after": None if self.after is None else codec.encode_bytes(self.after),
                "max_bytes": self.max_bytes,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``stream_pull`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded pull.
        """
        obj = codec.open_envelope(
            data, "stream_pull", required=("epoch", "index", "op", "range", "after", "max_bytes")
        )
        return _build(
            cls,
            "stream_pull",
            codec.as_int(obj["epoch"], "stream_pull.epoch"),
            codec.as_int(obj["index"], "stream_pull.index"),
            codec.as_int(obj["op"], "stream_pull.op"),
            TokenRange.from_dict(obj["range"]),
            _decode_cursor(obj["after"], "stream_pull.after"),
            codec.as_int(obj["max_bytes"], "stream_pull.max_bytes"),
        )


@attrs.frozen
class StreamBatch:
    """The answer to a [`StreamPull`][dynamo_core.streaming.StreamPull].

    Attributes:
        epoch: The pull's epoch.
        index: The pull's transfer index.
        op: The pull's id.
        status: ``"ok"``; ``"not_yet"`` (the source has not learned the version: retry later);
            ``"stale"`` (the source knows a newer version: the puller must catch up).
        items: ``(key, state)`` pairs in range order.
        after: The new cursor (the last key sent), or the pull's when `items` is empty.
        last: Nothing follows in the range.
        life: The id of the source's storage life (it changes when the source loses its disk).
        size: The encoded bytes of the states sent (for the puller's rate limit).
    """

    epoch: int = attrs.field(validator=_check_count)
    index: int = attrs.field(validator=_check_count)
    op: int = attrs.field(validator=_check_count)
    status: Literal["ok", "not_yet", "stale"] = attrs.field(validator=_check_status)
    items: tuple[tuple[bytes, DVVSet[bytes]], ...] = attrs.field(default=(), validator=_check_items)
    after: bytes | None = attrs.field(default=None, validator=_check_cursor)
    last: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    life: int = attrs.field(default=0, validator=_check_count)
    size: int = attrs.field(default=0, validator=_check_count)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``stream_batch`` envelope."""
        return codec.envelope(
            "stream_batch",
            {
                "epoch": self.epoch,
                "index": self.index,
                "op": self.op,
                "status": self.status,
                "items": [[codec.encode_bytes(k), s.to_dict()] for k, s in self.items],
                "after": None if self.after is None else codec.encode_bytes(self.after),
                "last": self.last,
                "life": self.life,
                "size": self.size,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``stream_batch`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded batch.
        """
        obj = codec.open_envelope(
            data,
            "stream_batch",
            required=("epoch", "index", "op", "status", "items", "after", "last", "life", "size"),
        )
        raw = codec.as_list(obj["items"], "stream_batch.items", max_items=MAX_BATCH_ITEMS)
        items = []
        for i, item in enumerate(raw):
            what = f"stream_batch.items[{i}]"
            pair = codec.as_list(item, what, max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"{what} must be [key, state]")
            key = codec.as_bytes(pair[0], f"{what}.key", max_len=MAX_KEY_BYTES)
            items.append((key, DVVSet.from_dict(pair[1])))
        return _build(
            cls,
            "stream_batch",
            codec.as_int(obj["epoch"], "stream_batch.epoch"),
            codec.as_int(obj["index"], "stream_batch.index"),
            codec.as_int(obj["op"], "stream_batch.op"),
            codec.as_str(obj["status"], "stream_batch.status", max_len=8),
            tuple(items),
            _decode_cursor(obj["after"], "stream_batch.after"),
            codec.as_bool(obj["last"], "stream_batch.last"),
            codec.as_int(obj["life"], "stream_batch.life"),
            codec.as_int(obj["size"], "stream_batch.size"),
        )


# -- effects -------------------------------------------------------------------------------------


@attrs.frozen
class SendPull:
    """Effect: send `pull` to the node `source`."""

    source: str
    pull: StreamPull


@attrs.frozen
class StoreItems:
    """Effect: merge `items` into the store and persist the stream's position, atomically.

    Attributes:
        items: ``(key, state)`` pairs to merge with ``sync``.
        cursor: The new cursor to persist (`None`: the stream starts over).
        source: The source the cursor belongs to.
        life: That source's storage life.
        bytes: The encoded size of the states.
    """

    items: tuple[tuple[bytes, DVVSet[bytes]], ...]
    cursor: bytes | None
    source: str
    life: int
    bytes: int


@attrs.frozen
class StreamFinished:
    """Effect: the last batch is in; `served_by` streamed the whole range."""

    transfer: Transfer
    index: int
    served_by: str


StreamEffect: TypeAlias = SendPull | StoreItems | StreamFinished
"""Everything a [`RangeStream`][dynamo_core.streaming.RangeStream] input returns a list of."""


# -- the core ------------------------------------------------------------------------------------


class RangeStream:
    """The target side of one transfer: pulls the range batch by batch until the last one.

    Args:
        transfer: What moves (its target is the node running this stream).
        index: The transfer's index in the version's plan.
        epoch: The version's epoch.
        sources: Candidate sources, best first (the planned source, then other holders).
        batch_bytes: The most state bytes per batch.
        rate: The most state bytes per second.
        timeout: Seconds to wait for a batch before pulling again.
        tries_per_source: Silent pulls before moving on to the next source.
        first_op: The first pull id (make them unique per node life).
        cursor: A persisted cursor to resume from (with its `source` and `life`).
        source: The source `cursor` belongs to.
        life: That source's storage life.

    Raises:
        TypeError, ValueError: an argument is invalid (no sources, a source equal to the
            target, a cursor without its source).
    """

    __slots__ = (
        "_backoff",
        "_batch_bytes",
        "_cursor",
        "_done",
        "_epoch",
        "_index",
        "_inflight",
        "_life",
        "_next_op",
        "_next_pull",
        "_rate",
        "_source",
        "_sources",
        "_timeout",
        "_transfer",
        "_tries",
        "_tries_per_source",
        "_wait_until",
        "bytes_received",
        "items_received",
        "restarts",
    )

    def __init__(
        self,
        transfer: Transfer,
        index: int,
        epoch: int,
        sources: Sequence[str],
        *,
        batch_bytes: int = 1 << 20,
        rate: float = 16 * 2**20,
        timeout: float = 5.0,
        tries_per_source: int = 3,
        first_op: int = 1,
        cursor: bytes | None = None,
        source: str | None = None,
        life: int | None = None,
    ) -> None:
        if not isinstance(transfer, Transfer):
            raise TypeError(f"transfer must be a Transfer, not {type(transfer).__name__}")
        _check_count(None, _Name("index"), index)  # type: ignore[arg-type]
        _check_count(None, _Name("epoch"), epoch)  # type: ignore[arg-type]
        if isinstance(sources, str) or not sources:
            raise ValueError("sources must be a non-empty sequence of node ids")
        candidates = [check_node_id(s, "sources[]") for s in sources]
        if transfer.target in candidates or len(set(candidates)) != len(candidates):
            raise ValueError("sources must not repeat a node or name the target")
        self._transfer = transfer
        self._index = index
        self._epoch = epoch
        self._sources = candidates
        self._batch_bytes = check_positive_int(batch_bytes, "batch_bytes")
        self._rate = check_positive_float(rate, "rate")
        self._timeout = check_positive_float(timeout, "timeout")
        self._tries_per_source = check_positive_int(tries_per_source, "tries_per_source")
        _check_count(None, _Name("first_op"), first_op)  # type: ignore[arg-type]
        self._next_op = first_op
        _check_cursor(None, _Name("cursor"), cursor)  # type: ignore[arg-type]
        if cursor is not None and (source not in candidates or type(life) is not int):
            cursor = None  # a position at a source no longer offered: start over
        self._cursor = cursor
        self._source = candidates.index(source) if cursor is not None and source else 0
        self._life: int | None = life if cursor is not None else None
        self._inflight: int | None = None
        self._next_pull: float | None = None
        self._wait_until = 0.0
        self._tries = 0
        self._backoff = self._timeout
        self._done = False
        self.bytes_received = 0
        self.items_received = 0
        self.restarts = 0

    # -- views -------------------------------------------------------------------------------

    @property
    def transfer(self) -> Transfer:
        """The transfer this stream carries out."""
        return self._transfer

    @property
    def index(self) -> int:
        """The transfer's index in the plan."""
        return self._index

    @property
    def epoch(self) -> int:
        """The version's epoch."""
        return self._epoch

    @property
    def source(self) -> str:
        """The source currently pulled from."""
        return self._sources[self._source]

    @property
    def cursor(self) -> bytes | None:
        """The last key received (token + key), or `None`."""
        return self._cursor

    @property
    def finished(self) -> bool:
        """Whether the last batch is in."""
        return self._done

    def deadline(self) -> float | None:
        """When `on_timer` must next be called, or `None` once finished: the one timer channel."""
        return None if self._done else self._next_pull

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float) -> list[StreamEffect]:
        """Send the first pull. Returns the effects.

        Raises:
            dynamo_core.errors.LocalProtocolError: the stream already started or finished.
        """
        t = check_time(now)
        if self._inflight is not None or self._done or self._next_pull is not None:
            raise LocalProtocolError("the stream has already started")
        return self._pull(t)

    def receive(self, sender: str, batch: StreamBatch, now: float) -> list[StreamEffect]:
        """Handle a batch. A batch that does not answer the pull in flight is ignored.

        Returns:
            The effects: `StoreItems` (the caller must apply it before anything else), then
            either the next pull (now or after the rate limit's pause) or `StreamFinished`.
        """
        t = check_time(now)
        if (
            self._done
            or batch.op != self._inflight
            or sender != self.source
            or batch.index != self._index
            or batch.epoch != self._epoch
        ):
            return []
        self._inflight = None
        if batch.status != "ok":
            # The source has not caught up (or is ahead): ask again after a pause.
            self._next_pull = t + self._backoff
            self._backoff = min(self._backoff * 2, 8 * self._timeout)
            return []
        self._tries = 0
        self._backoff = self._timeout
        out: list[StreamEffect] = []
        if self._cursor is not None and batch.life != self._life:
            # The source lost its disk since the stream began: start over from the beginning.
            self.restarts += 1
            self._cursor = None
            self._life = None
            out.append(StoreItems((), None, self.source, batch.life, 0))
            out.extend(self._pull(t))
            return out
        self._life = batch.life
        self._cursor = batch.after if batch.items or batch.after is not None else self._cursor
        self.items_received += len(batch.items)
        self.bytes_received += batch.size
        out.append(StoreItems(batch.items, self._cursor, self.source, batch.life, batch.size))
        if batch.last:
            self._done = True
            self._next_pull = None
            out.append(StreamFinished(self._transfer, self._index, self.source))
            return out
        self._wait_until = t + batch.size / self._rate
        if self._wait_until > t:
            self._next_pull = self._wait_until
        else:
            out.extend(self._pull(t))
        return out

    def on_timer(self, now: float) -> list[StreamEffect]:
        """Pull again when a pause ended or a pull timed out. Calling it early is harmless."""
        t = check_time(now)
        due = self._next_pull
        if self._done or due is None or due > t:
            return []
        if self._inflight is not None:  # the pull timed out
            self._tries += 1
            if self._tries >= self._tries_per_source:
                self._tries = 0
                self._source = (self._source + 1) % len(self._sources)
                if self._cursor is not None:
                    self.restarts += 1
                self._cursor = None  # a cursor belongs to one source's store
                self._life = None
            self._inflight = None
            self._next_pull = t + self._backoff
            self._backoff = min(self._backoff * 2, 8 * self._timeout)
            return []
        return self._pull(t)

    def _pull(self, t: float) -> list[StreamEffect]:
        op = self._next_op
        self._next_op += 1
        self._inflight = op
        self._next_pull = t + self._timeout
        pull = StreamPull(
            self._epoch, self._index, op, self._transfer.range, self._cursor, self._batch_bytes
        )
        return [SendPull(self.source, pull)]

    def _check_invariants(self) -> None:
        assert 0 <= self._source < len(self._sources)
        assert not (self._done and self._inflight is not None)
        assert self._done or self._next_pull is not None or self._inflight is None
        assert self._cursor is None or len(self._cursor) >= 8


# -- the source side ---------------------------------------------------------------------------

Reader: TypeAlias = Callable[[TokenRange, "bytes | None"], Iterable[tuple[bytes, bytes, bytes]]]
"""Reads the stored records of a non-wrapping piece of a range in cursor order, after a cursor
(or from the piece's start): ``(cursor, key, encoded state)`` each."""

Decoder: TypeAlias = Callable[[bytes, bytes], "DVVSet[bytes] | None"]
"""Decodes the record at a cursor; `None` for one that cannot be shipped (quarantined)."""


def serve_pull(
    pull: StreamPull, *, epoch: int, outside: bool, life: int, read: Reader, decode: Decoder
) -> StreamBatch:
    """The source's answer to `pull`, read from its storage (the source keeps no stream state).

    A source on another ring version answers ``not_yet`` (it is behind, or outside any ring)
    or ``stale`` (the target is behind) with no items. Otherwise the batch holds the records
    after the pull's cursor in range order (a wrapping range: its piece from the start token
    first), at least one and at most ``min(pull.max_bytes, MAX_BATCH_BYTES)`` bytes of states
    and `MAX_BATCH_ITEMS` keys; ``last`` says the range is exhausted. A record that cannot be
    shipped moves the cursor past it and stays where it is.

    Args:
        pull: The target's pull.
        epoch: The source's installed ring version.
        outside: Whether the source is outside any ring it knows.
        life: The id of the source's storage life (see `RangeStream`).
        read: Reads the source's records of a piece after a cursor.
        decode: Decodes one of them.
    """
    if outside or epoch != pull.epoch:
        status: Literal["not_yet", "stale"] = (
            "not_yet" if outside or epoch < pull.epoch else "stale"
        )
        return StreamBatch(pull.epoch, pull.index, pull.op, status)
    span, after = pull.range, pull.after
    max_bytes = min(max(pull.max_bytes, 1), MAX_BATCH_BYTES)
    pieces = span.pieces()
    order = (pieces[1], pieces[0]) if span.wraps else pieces
    first = 0
    if after is not None:
        tok = int.from_bytes(after[:8], "big")
        first = next((i for i, p in enumerate(order) if tok in p), len(order))
    items: list[tuple[bytes, DVVSet[bytes]]] = []
    size = 0
    cursor = after
    for i in range(first, len(order)):
        for position, key, raw in read(order[i], after if i == first else None):
            if items and (size + len(raw) > max_bytes or len(items) >= MAX_BATCH_ITEMS):
                return StreamBatch(
                    pull.epoch, pull.index, pull.op, "ok", tuple(items), cursor, False, life, size
                )
            state = decode(position, raw)
            cursor = position
            if state is None:
                continue
            items.append((key, state))
            size += len(raw)
    return StreamBatch(
        pull.epoch, pull.index, pull.op, "ok", tuple(items), cursor, True, life, size
    )


class _Name:
    """The bit of an attrs attribute the shared field checks read: its name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
