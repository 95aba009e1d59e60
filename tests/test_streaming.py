"""Range streaming: the pull protocol's messages and the target-side core, against model sources."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynamo_core import DVVSet, codec
from dynamo_core.errors import DecodeError, LocalProtocolError
from dynamo_core.hashing import TokenRange, token
from dynamo_core.ring import Transfer
from dynamo_core.streaming import (
    RangeStream,
    SendPull,
    StoreItems,
    StreamBatch,
    StreamFinished,
    StreamPull,
    serve_pull,
)

RANGE = TokenRange(2**63, 2**62)  # wraps past the top of the circle
TRANSFER = Transfer(RANGE, "src", "dst")


def state_of(key: bytes) -> DVVSet[bytes]:
    return DVVSet[bytes]().update(b"v-" + key, "src#1")


class Source:
    """A model source: its keys in range order, served by cursor, with a storage life."""

    def __init__(self, keys: list[bytes], life: int = 7) -> None:
        self.life = life
        self.rows: list[tuple[tuple[int, bytes], bytes]] = []
        for key in keys:
            self.add(key)

    @staticmethod
    def rank(key: bytes) -> tuple[int, bytes]:
        return ((token(key) - RANGE.start) % 2**64, key)

    def add(self, key: bytes) -> None:
        if token(key) in RANGE and all(k != key for _, k in self.rows):
            bisect.insort(self.rows, (self.rank(key), key))

    def keys(self) -> set[bytes]:
        return {k for _, k in self.rows}

    def answer(self, pull: StreamPull, per_key: int = 40) -> StreamBatch:
        start = 0
        if pull.after is not None:
            after_key = pull.after[8:]
            start = bisect.bisect_right(self.rows, (self.rank(after_key), after_key))
        items: list[tuple[bytes, DVVSet[bytes]]] = []
        size = 0
        for _, key in self.rows[start:]:
            if items and size + per_key > pull.max_bytes:
                break
            items.append((key, state_of(key)))
            size += per_key
        last = start + len(items) >= len(self.rows)
        after = pull.after
        if items:
            after = token(items[-1][0]).to_bytes(8, "big") + items[-1][0]
        return StreamBatch(
            pull.epoch, pull.index, pull.op, "ok", tuple(items), after, last, self.life, size
        )


def pulls(effects: Sequence[object]) -> list[SendPull]:
    return [e for e in effects if isinstance(e, SendPull)]


def next_pull(stream: RangeStream, effects: Sequence[object]) -> StreamPull:
    """The pull `effects` send, or the one sent when the rate limit's pause ends."""
    sent = pulls(effects)
    if not sent:
        due = stream.deadline()
        assert due is not None
        sent = pulls(stream.on_timer(due))
    return sent[0].pull


def run(stream: RangeStream, source: Source, now: float = 0.0) -> tuple[set[bytes], float]:
    """Drive a stream against one always-answering source; return the keys stored."""
    got: set[bytes] = set()
    queue = stream.start(now)
    for _ in range(10_000):
        for effect in queue:
            if isinstance(effect, StoreItems):
                got.update(k for k, _ in effect.items)
        sent = pulls(queue)
        if stream.finished:
            return got, now
        if sent:
            queue = stream.receive("src", source.answer(sent[0].pull), now)
        else:
            now = max(now, stream.deadline() or now)
            queue = stream.on_timer(now)
    raise AssertionError("the stream never finished")


# -- messages ----------------------------------------------------------------------------------


def test_messages_round_trip_and_validate() -> None:
    pull = StreamPull(3, 1, 9, RANGE, b"\x00" * 8 + b"k", 4096)
    assert StreamPull.from_dict(codec.loads(codec.dumps(pull.to_dict()))) == pull
    batch = StreamBatch(3, 1, 9, "ok", ((b"k", state_of(b"k")),), b"\x01" * 8, True, 5, 12)
    assert StreamBatch.from_dict(codec.loads(codec.dumps(batch.to_dict()))) == batch
    with pytest.raises(ValueError, match="after"):
        StreamPull(3, 1, 9, RANGE, b"short", 10)
    with pytest.raises(ValueError, match="status"):
        StreamBatch(3, 1, 9, "maybe")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        StreamPull.from_dict(dict(pull.to_dict(), after=codec.encode_bytes(b"x")))
    with pytest.raises(DecodeError):
        StreamBatch.from_dict(dict(batch.to_dict(), status="maybe"))


def test_construction_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="sources"):
        RangeStream(TRANSFER, 0, 1, [])
    with pytest.raises(ValueError, match="target"):
        RangeStream(TRANSFER, 0, 1, ["dst"])
    with pytest.raises(TypeError, match="transfer"):
        RangeStream("t", 0, 1, ["src"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        RangeStream(TRANSFER, 0, 1, ["src"], rate=0)
    stream = RangeStream(TRANSFER, 0, 1, ["src"])
    stream.start(0.0)
    with pytest.raises(LocalProtocolError):
        stream.start(0.0)


# -- behaviour ---------------------------------------------------------------------------------


@settings(max_examples=60)
@given(
    st.lists(st.binary(min_size=1, max_size=6), max_size=60, unique=True),
    st.integers(1, 400),
)
def test_a_stream_delivers_every_key_of_the_range_in_bounded_batches(
    keys: list[bytes], batch_bytes: int
) -> None:
    source = Source(keys)
    stream = RangeStream(TRANSFER, 0, 1, ["src"], batch_bytes=batch_bytes, rate=1e9)
    got, _ = run(stream, source)
    assert got == source.keys()
    assert stream.items_received == len(source.keys())
    stream._check_invariants()


def test_the_rate_limit_spaces_the_pulls() -> None:
    source = Source([b"%d" % i for i in range(400)])
    stream = RangeStream(TRANSFER, 0, 1, ["src"], batch_bytes=400, rate=1000.0)
    _, finished_at = run(stream, source)
    total = 40 * len(source.keys())
    # All but the last batch wait bytes / rate before the next pull.
    assert finished_at >= (total - 400) / 1000.0 - 1e-9


def test_a_silent_source_is_retried_then_replaced_and_the_cursor_reset() -> None:
    stream = RangeStream(
        TRANSFER, 0, 1, ["src", "alt"], timeout=1.0, tries_per_source=2, batch_bytes=40
    )
    first = pulls(stream.start(0.0))[0]
    batch = Source([b"a", b"b", b"c", b"d"]).answer(first.pull)
    stream.receive("src", batch, 0.0)
    assert stream.cursor is not None
    now = 0.0
    sources: list[tuple[str, bytes | None]] = []
    for _ in range(6):
        now = stream.deadline() or now
        sent = pulls(stream.on_timer(now))
        sources.extend((effect.source, effect.pull.after) for effect in sent)
    assert ("alt", None) in sources  # moved on, from the beginning of the range
    assert stream.source == "alt" and stream.restarts >= 1


def test_a_source_that_lost_its_disk_restarts_the_stream() -> None:
    source = Source([b"%d" % i for i in range(20)])
    stream = RangeStream(TRANSFER, 0, 1, ["src"], batch_bytes=40, rate=1e9)
    effects = stream.start(0.0)
    effects = stream.receive("src", source.answer(pulls(effects)[0].pull), 0.0)
    assert stream.cursor is not None
    source.life = 8  # wiped and restarted
    effects = stream.receive("src", source.answer(next_pull(stream, effects)), 1.0)
    assert any(isinstance(e, StoreItems) and e.cursor is None for e in effects)
    assert pulls(effects)[0].pull.after is None
    assert stream.restarts == 1


def test_answers_that_do_not_match_the_pull_are_ignored() -> None:
    source = Source([b"x", b"y"])
    stream = RangeStream(TRANSFER, 4, 2, ["src"])
    pull = pulls(stream.start(0.0))[0].pull
    batch = source.answer(pull)
    assert stream.receive("other", batch, 0.0) == []
    assert stream.receive("src", StreamBatch(2, 4, pull.op + 1, "ok"), 0.0) == []
    assert stream.receive("src", StreamBatch(3, 4, pull.op, "ok"), 0.0) == []
    effects = stream.receive("src", batch, 0.0)
    assert any(isinstance(e, StreamFinished) and e.served_by == "src" for e in effects)
    assert stream.receive("src", batch, 0.0) == []  # a duplicate after the end
    assert stream.deadline() is None


def test_a_source_that_has_not_caught_up_is_asked_again_later() -> None:
    stream = RangeStream(TRANSFER, 0, 5, ["src"], timeout=1.0)
    pull = pulls(stream.start(0.0))[0].pull
    effects = stream.receive("src", StreamBatch(5, 0, pull.op, "not_yet"), 0.2)
    assert effects == []
    assert stream.deadline() == 1.2
    assert stream.on_timer(1.0) == []
    again = pulls(stream.on_timer(1.2))
    assert again and again[0].pull.after is None


def test_a_resumed_stream_continues_from_its_cursor() -> None:
    source = Source([b"%d" % i for i in range(30)])
    stream = RangeStream(TRANSFER, 0, 1, ["src"], batch_bytes=200, rate=1e9)
    effects = stream.start(0.0)
    effects = stream.receive("src", source.answer(pulls(effects)[0].pull), 0.0)
    saved = [e for e in effects if isinstance(e, StoreItems)][-1]
    resumed = RangeStream(
        TRANSFER, 0, 1, ["src"], batch_bytes=200, rate=1e9,
        cursor=saved.cursor, source=saved.source, life=saved.life,
    )  # fmt: skip
    got, _ = run(resumed, source)
    first = {k for k, _ in saved.items}
    assert got | first == source.keys()
    assert not got & first  # nothing received twice


class StreamMachine(RuleBasedStateMachine):
    """A stream against a source that keeps changing, with losses, timeouts, crashes and wipes.

    Model: every key the source held when a complete scan began ends up at the target.
    """

    def __init__(self) -> None:
        super().__init__()
        self.source = Source([b"%d" % i for i in range(25)])
        self.stored: set[bytes] = set()
        self.cursor: StoreItems | None = None
        self.now = 0.0
        self.stream = self.new_stream(None)
        self.outbox = pulls(self.stream.start(self.now))
        self.scan_start: set[bytes] = set(self.source.keys())

    def new_stream(self, saved: StoreItems | None) -> RangeStream:
        return RangeStream(
            TRANSFER, 0, 1, ["src"], batch_bytes=90, rate=1e6, timeout=1.0,
            cursor=None if saved is None else saved.cursor,
            source=None if saved is None else saved.source,
            life=None if saved is None else saved.life,
        )  # fmt: skip

    def apply(self, effects: Sequence[object]) -> None:
        for effect in effects:
            if isinstance(effect, StoreItems):
                self.stored.update(k for k, _ in effect.items)
                self.cursor = effect
                if effect.cursor is None:
                    self.scan_start = set(self.source.keys())
            elif isinstance(effect, SendPull):
                self.outbox.append(effect)

    @precondition(lambda self: bool(self.outbox))
    @rule()
    def deliver(self) -> None:
        pull = self.outbox.pop(0).pull
        if pull.after is None:
            self.scan_start = set(self.source.keys())
        self.apply(self.stream.receive("src", self.source.answer(pull), self.now))

    @precondition(lambda self: bool(self.outbox))
    @rule()
    def lose(self) -> None:
        self.outbox.pop(0)

    @rule(key=st.binary(min_size=1, max_size=4))
    def write_at_source(self, key: bytes) -> None:
        self.source.add(key)

    @rule()
    def tick(self) -> None:
        due = self.stream.deadline()
        if due is not None:
            self.now = max(self.now, due)
            self.apply(self.stream.on_timer(self.now))

    @rule()
    def target_restarts(self) -> None:
        if self.stream.finished:
            return
        self.outbox.clear()
        self.stream = self.new_stream(self.cursor)
        self.apply(self.stream.start(self.now))

    @rule()
    def source_wiped_and_refilled(self) -> None:
        self.source.life += 1

    @invariant()
    def sound(self) -> None:
        self.stream._check_invariants()
        if self.stream.finished:
            assert self.scan_start <= self.stored
        else:
            assert self.stream.deadline() is not None


TestStreamMachine = StreamMachine.TestCase
TestStreamMachine.settings = settings(max_examples=60, stateful_step_count=40)


def _records(keys: list[bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """Stored records as a node keeps them: ``(token + key, key, encoded state)``, by token."""
    rows = [(token(k).to_bytes(8, "big") + k, k, codec.dumps(state_of(k).to_dict())) for k in keys]
    return sorted(rows)


def _reader(
    rows: list[tuple[bytes, bytes, bytes]],
) -> Callable[[TokenRange, bytes | None], list[tuple[bytes, bytes, bytes]]]:
    def read(piece: TokenRange, after: bytes | None) -> list[tuple[bytes, bytes, bytes]]:
        return [
            r
            for r in rows
            if int.from_bytes(r[0][:8], "big") in piece and (after is None or r[0] > after)
        ]

    return read


def _decode(position: bytes, raw: bytes) -> DVVSet[bytes] | None:
    return None if position[8:] == b"bad" else DVVSet.from_dict(codec.loads(raw))


@pytest.mark.parametrize(
    ("epoch", "outside", "status"),
    [(4, False, "stale"), (2, False, "not_yet"), (3, True, "not_yet")],
)
def test_a_source_on_another_version_answers_with_a_status_and_no_items(
    epoch: int, outside: bool, status: str
) -> None:
    pull = StreamPull(3, 1, 9, RANGE, None, 4096)
    batch = serve_pull(pull, epoch=epoch, outside=outside, life=7, read=_reader([]), decode=_decode)
    assert (batch.status, batch.items, batch.op, batch.index) == (status, (), 9, 1)


def test_serving_pulls_walks_a_wrapping_range_once_in_order_skipping_unshippable_records() -> None:
    keys = [b"k%d" % i for i in range(300)] + [b"bad"]
    rows = [r for r in _records(keys) if int.from_bytes(r[0][:8], "big") in RANGE]
    read = _reader(rows)
    served: list[bytes] = []
    after = None
    for _ in range(len(rows) + 1):
        pull = StreamPull(3, 1, 9, RANGE, after, 300)  # a few states per batch
        batch = serve_pull(pull, epoch=3, outside=False, life=7, read=read, decode=_decode)
        assert batch.status == "ok" and batch.life == 7
        assert batch.items or batch.last
        assert batch.size <= 300 or len(batch.items) == 1
        served += [k for k, _ in batch.items]
        after = batch.after
        if batch.last:
            break
    expected = [k for _, k, _ in rows if k != b"bad"]
    assert sorted(served) == sorted(expected) and len(served) == len(expected)
    # range order: the piece from the start token to the top first, then from zero
    tokens = [token(k) for k in served]
    top = [t for t in tokens if t >= RANGE.start]
    assert tokens == sorted(top) + sorted(t for t in tokens if t < RANGE.start)
