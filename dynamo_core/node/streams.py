"""Streams: pulling the ranges a ring version gives this node, and serving the ones it gives away.

[`Streams`][dynamo_core.node.streams.Streams] runs one
[`RangeStream`][dynamo_core.streaming.RangeStream] per uncompleted transfer of the installed
version that targets this node, merges each batch and persists the stream's cursor in one
atomic write, and reports a finished transfer through the `finished` callback (the core
completes it in the membership). As a source it answers pulls with
[`serve_pull`][dynamo_core.streaming.serve_pull], first recording durably that it serves the
stream (so data written to the range later is not dropped without a copy).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, cast

from dynamo_core import codec
from dynamo_core.errors import DecodeError, DotCollision
from dynamo_core.hashing import TokenRange
from dynamo_core.limits import unstorable
from dynamo_core.membership import stream_sources
from dynamo_core.messages import MAX_KEY_BYTES, Message
from dynamo_core.node import keyspace
from dynamo_core.node.effects import Effect, Send, TransferDone
from dynamo_core.node.replica import Write
from dynamo_core.node.state import NodeState
from dynamo_core.streaming import (
    RangeStream,
    SendPull,
    StoreItems,
    StreamBatch,
    StreamFinished,
    StreamPull,
    serve_pull,
)

__all__ = ["Streams"]

Finished = Callable[[int, str, float, list[Effect]], None]


class _Stream:
    """An incoming range stream of the installed version."""

    __slots__ = ("core", "keys")

    def __init__(self, core: RangeStream) -> None:
        self.core = core
        self.keys = 0


class Streams:
    """One node's incoming streams and its source side."""

    __slots__ = ("_due", "_finished", "_heap", "_node", "_seq", "_streams")

    def __init__(self, node: NodeState, *, finished: Finished) -> None:
        self._node = node
        self._finished = finished  # a transfer this node received is complete (the core)
        self._streams: dict[int, _Stream] = {}
        self._due = True  # streams of the installed version are to be started
        # (deadline, seq, stream) after each input to a stream; an entry is stale once the
        # stream ended or its deadline moved (skipped when it reaches the top)
        self._heap: list[tuple[float, int, _Stream]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._streams)

    def version_installed(self, new_version: bool) -> None:
        """A ring version was installed: a new one drops the old streams; start what is due."""
        if new_version:
            self._streams.clear()
        self._due = True

    # -- the timer channel -------------------------------------------------------------------

    def deadline(self) -> float | None:
        """When streams are to be started (after a full disk clears), or the earliest pull.

        Cost: O(1) amortized (a heap of the streams' deadlines).
        """
        node = self._node
        at = max(node.now, node.full_until) if self._due else None
        due = self._earliest()
        if due is not None and (at is None or due < at):
            at = due
        return at

    def _earliest(self) -> float | None:
        heap = self._heap
        while heap:
            due, _, stream = heap[0]
            if self._streams.get(stream.core.index) is stream and stream.core.deadline() == due:
                return due
            heapq.heappop(heap)
        return None

    def on_timer(self, now: float, out: list[Effect]) -> None:
        """Start the streams due, and step those whose pull is due."""
        if self._due and now >= self._node.full_until:
            self._due = False
            self.start(now, out)
        due = self._earliest()
        if due is None or due > now:
            return  # no pull is due: no need to look at every stream
        for stream in list(self._streams.values()):
            due = stream.core.deadline()
            if due is not None and due <= now:
                self._drive(stream, stream.core.on_timer(now), now, out)

    # -- the target side ---------------------------------------------------------------------

    def start(self, now: float, out: list[Effect]) -> None:
        """Start a stream for every uncompleted transfer of the version this node receives."""
        node = self._node
        m = node.membership
        rec = m.record
        if rec.settled or m.outside:
            return
        done = dict(rec.completed)
        config = node.config
        for index, transfer in enumerate(rec.plan):
            if transfer.target != node.id or index in done or index in self._streams:
                continue
            sources = stream_sources(rec, index)
            if not sources:
                continue
            cursor, source, life = self._read_cursor(rec.epoch, index)
            core = RangeStream(
                transfer,
                index,
                rec.epoch,
                sources,
                batch_bytes=config.stream_batch_bytes,
                rate=config.stream_rate,
                timeout=config.stream_timeout,
                first_op=node.new_id() << 8,
                cursor=cursor,
                source=source,
                life=life,
            )
            stream = _Stream(core)
            self._streams[index] = stream
            self._drive(stream, core.start(now), now, out)

    def _read_cursor(self, epoch: int, index: int) -> tuple[bytes | None, str | None, int | None]:
        node = self._node
        raw = node.storage.get(keyspace.stream_key(epoch, index))
        if raw is None:
            return None, None, None
        try:
            obj = codec.open_envelope(
                codec.loads(raw), "stream_cursor", required=("cursor", "source", "life")
            )
            cursor = obj["cursor"]
            return (
                None
                if cursor is None
                else codec.as_bytes(cursor, "cursor", max_len=8 + MAX_KEY_BYTES),
                codec.as_str(obj["source"], "source"),
                codec.as_int(obj["life"], "life"),
            )
        except DecodeError as exc:  # the stream starts over: merges are idempotent
            node.set_aside(keyspace.stream_key(epoch, index), raw, f"corrupt stream cursor: {exc}")
            return None, None, None

    def on_batch(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A source's batch for one of this node's streams."""
        batch = cast("StreamBatch", message)
        node = self._node
        stream = self._streams.get(batch.index)
        if stream is None or batch.epoch != node.membership.record.epoch:
            node.stats["messages_ignored"] += 1
            return
        if batch.status != "ok":
            out.append(Send(sender, node.membership.digest()))
        self._drive(stream, stream.core.receive(sender, batch, now), now, out)

    def _drive(self, stream: _Stream, effects: list[Any], now: float, out: list[Effect]) -> None:
        core = stream.core
        for effect in effects:
            match effect:
                case SendPull(source=source, pull=pull):
                    out.append(Send(source, pull))
                case StoreItems():
                    self._store(core, effect)
                    stream.keys += len(effect.items)
                case StreamFinished(transfer=transfer, index=index, served_by=served_by):
                    self._streams.pop(index, None)
                    self._node.storage.delete(keyspace.stream_key(core.epoch, index))
                    self._node.stats["streams_completed"] += 1
                    out.append(TransferDone(transfer, index, served_by, stream.keys))
                    self._finished(index, served_by, now, out)
                case _:  # pragma: no cover - the stream's effect union is exhaustive
                    raise AssertionError(f"unexpected stream effect {effect!r}")
        due = core.deadline()
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._seq), stream))

    def _store(self, core: RangeStream, effect: StoreItems) -> None:
        """Merge a batch and persist the stream's cursor in one atomic write."""
        node = self._node
        replica, stats = node.replica, node.stats
        writes: list[Write] = []
        for key, state in effect.items:
            tok = node.ring.token(key)
            segment = replica.segment_of(tok)
            if segment is None or tok not in core.transfer.range:
                stats["messages_ignored"] += 1
                continue
            skey = keyspace.data_key(key, tok)
            raw = node.storage.get(skey)
            old = None if raw is None else replica.state(skey, raw)
            if raw is not None and old is None:  # quarantined: never overwritten
                stats["merges_refused"] += 1
                continue
            try:
                merged = state if old is None else old.sync(state)
            except DotCollision:  # a writer identity reused: keep ours, visibly divergent
                stats["dot_collisions"] += 1
                continue
            if merged == old:
                continue
            new_raw = merged.to_bytes()
            if unstorable(merged, new_raw) is not None:
                stats["merges_refused"] += 1
                continue
            writes.append((key, skey, segment, raw, new_raw, merged))
        cursor = None if effect.cursor is None else codec.encode_bytes(effect.cursor)
        record = codec.envelope(
            "stream_cursor", {"cursor": cursor, "source": effect.source, "life": effect.life}
        )
        cursor_record = (keyspace.stream_key(core.epoch, core.index), codec.dumps(record))
        replica.write_many(writes, [cursor_record])
        stats["stream_keys_received"] += len(effect.items)
        stats["replica_writes"] += len(writes)

    # -- the source side ---------------------------------------------------------------------

    def on_pull(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """Serve a batch of a range from storage (see `streaming.serve_pull`)."""
        pull = cast("StreamPull", message)
        node = self._node
        m = node.membership
        epoch = m.record.epoch
        if not m.outside and epoch == pull.epoch and pull.after is None:
            self._mark_served(pull.epoch, pull.index, pull.range)
        replica = node.replica
        batch = serve_pull(
            pull,
            epoch=epoch,
            outside=m.outside,
            life=node.life,
            read=replica.records,
            decode=replica.state_at,
        )
        out.append(Send(sender, batch))
        if batch.status != "ok":
            out.append(Send(sender, m.digest()))
        else:
            node.stats["stream_keys_served"] += len(batch.items)

    def _mark_served(self, epoch: int, index: int, span: TokenRange) -> None:
        """Record durably, before the first batch leaves, that this node serves the stream."""
        node = self._node
        entry = (epoch, index, span)
        if entry in node.served:
            return
        node.storage.put(keyspace.served_key(epoch, index), codec.dumps(span.to_dict()))
        node.set_served([x for x in node.served if x[:2] != (epoch, index)] + [entry])

    def _check_invariants(self) -> None:
        rec = self._node.membership.record
        done = dict(rec.completed)
        for index, stream in self._streams.items():
            assert index not in done, "a completed transfer still streams"
            assert stream.core.transfer == rec.plan[index]
            assert stream.core.transfer.target == self._node.id
            stream.core._check_invariants()
            due = stream.core.deadline()
            assert due is None or (due, stream) in {(d, s) for d, _, s in self._heap}
