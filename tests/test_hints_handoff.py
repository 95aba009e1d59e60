"""Handoff: batching, throttling, one batch in flight, timeouts and backoff, ack-only removal."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dynamo_core import DVVSet, codec
from dynamo_core.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from dynamo_core.hints import (
    MAX_BATCH_HINTS,
    DeliveryFailed,
    Handoff,
    HandoffEffect,
    Hint,
    HintBatch,
    HintsDelivered,
    HintsExpired,
    HintStore,
    SendHints,
)

from gset import GSet, gs


def gstore(**options: Any) -> HintStore[GSet]:
    options.setdefault("ttl", 1e9)
    return HintStore(state_type=GSet, **options)


def sends(effects: list[HandoffEffect]) -> list[SendHints[Any]]:
    return [e for e in effects if isinstance(e, SendHints)]


def only_send(effects: list[HandoffEffect]) -> SendHints[Any]:
    (send,) = sends(effects)
    return send


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_batch_hints": 0}, ValueError, "max_batch_hints"),
        ({"max_batch_hints": MAX_BATCH_HINTS + 1}, ValueError, "max_batch_hints"),
        ({"max_batch_bytes": 0}, ValueError, "max_batch_bytes"),
        ({"rate": 0.0}, ValueError, "rate"),
        ({"rate": math.inf}, ValueError, "rate"),
        ({"burst": 0}, ValueError, "burst"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"backoff": math.nan}, ValueError, "backoff"),
        ({"backoff": 10.0, "max_backoff": 5.0}, ValueError, "max_backoff"),
        ({"poll_interval": 0}, ValueError, "poll_interval"),
        ({"expire": 1}, TypeError, "expire"),
        ({"first_batch_id": -1}, ValueError, "first_batch_id"),
        ({"first_batch_id": True}, TypeError, "first_batch_id"),
        ({"rng": 42}, TypeError, "rng"),
    ],
)
def test_rejects_bad_options(options: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Handoff(gstore(), **options)


def test_rejects_a_non_store() -> None:
    with pytest.raises(TypeError, match="store must be a HintSource"):
        Handoff({})  # type: ignore[arg-type]


class ListSource:
    """A hint source that is not a `HintStore`: hints in a list, each 10 bytes, no TTL."""

    def __init__(self, hints: list[Hint[GSet]]) -> None:
        self.hints = hints
        self.windows_reset: list[str] = []

    def count(self, target: str) -> int:
        return sum(h.target == target for h in self.hints)

    def pending_sized(self, target: str, limit: int | None = None) -> list[tuple[Hint[GSet], int]]:
        mine = [(h, 10) for h in self.hints if h.target == target]
        return mine if limit is None else mine[:limit]

    def remove_many(self, hints: Iterable[Hint[GSet]]) -> int:
        gone = [h for h in hints if h in self.hints]
        self.hints = [h for h in self.hints if h not in gone]
        return len(gone)

    def next_expiry(self) -> float | None:
        return None

    def expire(self, now: float) -> int:
        return 0

    def window_closes_at(self, target: str) -> float | None:
        return None

    def reset_window(self, target: str) -> None:
        self.windows_reset.append(target)


def test_delivers_from_any_hint_source() -> None:
    source = ListSource([Hint("b", f"k{i}", gs(str(i)), float(i)) for i in range(3)])
    handoff = Handoff(source, max_batch_hints=2, rate=1e12)
    assert handoff.store is source
    first = only_send(handoff.target_up("b", 5.0))
    assert [h.key for h in first.batch.hints] == ["k0", "k1"]
    assert first.nbytes == 20  # the sizes the source reported
    assert source.count("b") == 3  # nothing removed before the ack
    effects = handoff.on_ack("b", first.batch.batch_id, 6.0)
    assert HintsDelivered("b", first.batch.batch_id, removed=2, kept=0) in effects
    second = only_send(effects)
    assert [h.key for h in second.batch.hints] == ["k2"]
    handoff.on_ack("b", second.batch.batch_id, 7.0)
    assert source.hints == []
    handoff._check_invariants()


# -- the basic exchange ------------------------------------------------------------------------


def test_delivers_after_target_up_and_removes_only_on_ack() -> None:
    store = gstore()
    store.add("b", "k1", gs("1"), 0.0)
    store.add("b", "k2", gs("2"), 1.0)
    handoff = Handoff(store)
    assert handoff.deadline() == 1e9  # nothing is up: only the oldest hint's expiry is due
    assert handoff.target_down("b", 2.0) == []
    send = only_send(handoff.target_up("b", 3.0))
    assert send.target == "b"
    assert send.batch.target == "b"
    assert [h.key for h in send.batch.hints] == ["k1", "k2"]
    assert send.nbytes == sum(len(codec.dumps(h.to_dict())) for h in send.batch.hints)
    assert handoff.in_flight("b") == send.batch.batch_id
    assert store.count("b") == 2  # nothing removed before the ack
    handoff._check_invariants()
    effects = handoff.on_ack("b", send.batch.batch_id, 4.0)
    assert effects == [HintsDelivered("b", send.batch.batch_id, removed=2, kept=0)]
    assert store.count("b") == 0
    assert handoff.in_flight("b") is None
    assert store.stats().delivered == 2
    # A duplicate ack is harmless.
    assert handoff.on_ack("b", send.batch.batch_id, 5.0) == []
    handoff._check_invariants()
    store._check_invariants()
    assert "Handoff" in repr(handoff)


def test_batches_are_bounded_by_count_and_bytes() -> None:
    store = gstore()
    for i in range(10):
        store.add("b", f"k{i}", gs(f"{i:03d}"), float(i))
    size = len(codec.dumps(store.pending("b")[0].to_dict()))
    handoff = Handoff(store, max_batch_hints=4, max_batch_bytes=3 * size, rate=1e12)
    seen: list[int] = []
    effects = handoff.target_up("b", 0.0)
    now = 0.0
    while store.count("b"):
        send = only_send(effects)
        assert len(send.batch.hints) <= 3
        assert send.nbytes <= 3 * size
        seen.append(len(send.batch.hints))
        now += 1.0  # lets the bucket refill
        effects = handoff.on_ack("b", send.batch.batch_id, now)
        handoff._check_invariants()
    assert seen == [3, 3, 3, 1]
    handoff = Handoff(store, max_batch_hints=2, max_batch_bytes=10**9, rate=1e12)
    for i in range(5):
        store.add("b", f"k{i}", gs(), 1.0)
    assert len(only_send(handoff.target_up("b", 1.0)).batch.hints) == 2


def test_a_hint_larger_than_a_batch_goes_alone() -> None:
    store = gstore()
    store.add("b", "big", gs("x" * 500), 0.0)
    store.add("b", "small", gs("y"), 1.0)
    handoff = Handoff(store, max_batch_bytes=100, rate=1e12)
    send = only_send(handoff.target_up("b", 0.0))
    assert [h.key for h in send.batch.hints] == ["big"]
    assert send.nbytes > 100
    handoff._check_invariants()


def test_one_batch_in_flight_per_target() -> None:
    store = gstore()
    for i in range(6):
        store.add("b", f"k{i}", gs(), 0.0)
        store.add("c", f"k{i}", gs(), 0.0)
    handoff = Handoff(store, max_batch_hints=2, rate=1e12)
    first = sends(handoff.target_up("b", 0.0) + handoff.target_up("c", 0.0))
    assert [s.target for s in first] == ["b", "c"]
    # More inputs do not send a second batch to a target with one in flight.
    assert sends(handoff.on_timer(1.0)) == []
    assert sends(handoff.target_up("b", 1.0)) == []
    store.add("b", "new", gs(), 1.0)
    assert sends(handoff.on_timer(1.5)) == []
    nxt = sends(handoff.on_ack("b", first[0].batch.batch_id, 2.0))
    assert [s.target for s in nxt] == ["b"]
    handoff._check_invariants()


def test_a_write_merged_during_delivery_is_delivered_again() -> None:
    store = gstore()
    store.add("b", "k", gs("1"), 0.0)
    handoff = Handoff(store, rate=1e12)
    first = only_send(handoff.target_up("b", 0.0))
    store.add("b", "k", gs("2"), 0.5)  # a newer write for the same key while in flight
    effects = handoff.on_ack("b", first.batch.batch_id, 1.0)
    assert effects[0] == HintsDelivered("b", first.batch.batch_id, removed=0, kept=1)
    second = only_send(effects[1:])
    assert second.batch.hints[0].state == gs("1", "2")
    handoff.on_ack("b", second.batch.batch_id, 2.0)
    assert store.count("b") == 0


def test_target_down_stops_sending_but_a_late_ack_still_counts() -> None:
    store = gstore()
    for i in range(4):
        store.add("b", f"k{i}", gs(), 0.0)
    handoff = Handoff(store, max_batch_hints=2, rate=1e12)
    send = only_send(handoff.target_up("b", 0.0))
    assert handoff.target_down("b", 0.5) == []
    assert not handoff.is_up("b")
    effects = handoff.on_ack("b", send.batch.batch_id, 1.0)
    assert effects == [HintsDelivered("b", send.batch.batch_id, 2, 0)]  # no new send: b is down
    assert store.count("b") == 2
    assert sends(handoff.target_up("b", 2.0))


# -- failures, timeouts, backoff ---------------------------------------------------------------


def test_timeouts_back_off_exponentially_up_to_the_cap() -> None:
    store = gstore()
    store.add("b", "k", gs(), 0.0)
    handoff = Handoff(store, timeout=1.0, backoff=2.0, max_backoff=10.0, poll_interval=1e6)
    now = 0.0
    send = only_send(handoff.target_up("b", now))
    delays = []
    for _ in range(6):
        deadline = handoff.deadline()
        assert deadline == now + 1.0  # the ack timeout
        now = deadline
        effects = handoff.on_timer(now)
        failed = effects[0]
        assert isinstance(failed, DeliveryFailed)
        assert failed.batch_id == send.batch.batch_id
        assert failed.reason == "timeout"
        delays.append(failed.retry_at - now)
        assert handoff.retry_at("b") == failed.retry_at
        assert sends(effects) == []
        assert handoff.deadline() == failed.retry_at
        now = failed.retry_at
        send = only_send(handoff.on_timer(now))
        handoff._check_invariants()
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    # An ack resets the backoff.
    handoff.on_ack("b", send.batch.batch_id, now)
    assert handoff.retry_at("b") is None
    assert store.count("b") == 0


def test_jitter_scales_each_delay_into_half_to_full() -> None:
    store = gstore()
    store.add("b", "k", gs(), 0.0)
    handoff = Handoff(store, backoff=4.0, max_backoff=4.0, rng=random.Random(7))
    now = 0.0
    for _ in range(20):
        send = only_send(handoff.on_timer(now) if now else handoff.target_up("b", now))
        (failed,) = handoff.on_failure("b", send.batch.batch_id, now)
        assert isinstance(failed, DeliveryFailed)
        assert failed.reason == "failure"
        assert 2.0 <= failed.retry_at - now <= 4.0
        now = failed.retry_at


def test_an_ack_after_the_timeout_still_removes_the_hints() -> None:
    store = gstore()
    store.add("b", "k1", gs(), 0.0)
    handoff = Handoff(store, timeout=1.0, backoff=5.0)
    first = only_send(handoff.target_up("b", 0.0))
    assert isinstance(handoff.on_timer(1.0)[0], DeliveryFailed)
    assert handoff.in_flight("b") is None
    effects = handoff.on_ack("b", first.batch.batch_id, 2.0)
    assert effects[0] == HintsDelivered("b", first.batch.batch_id, 1, 0)
    assert store.count("b") == 0
    # A failure report for a batch that already timed out changes nothing.
    second_store = gstore()
    second_store.add("b", "k", gs(), 0.0)
    other = Handoff(second_store, timeout=1.0, backoff=5.0)
    batch = only_send(other.target_up("b", 0.0)).batch
    other.on_timer(1.0)
    retry = other.retry_at("b")
    assert other.on_failure("b", batch.batch_id, 1.5) == []
    assert other.retry_at("b") == retry
    other._check_invariants()


def test_acks_that_were_never_sent_are_protocol_errors_and_change_nothing() -> None:
    store = gstore()
    store.add("b", "k", gs(), 0.0)
    store.add("c", "k", gs(), 0.0)
    handoff = Handoff(store, first_batch_id=100, rate=1e12)
    send_b = only_send(handoff.target_up("b", 0.0))
    assert send_b.batch.batch_id == 100
    with pytest.raises(RemoteProtocolError, match="never sent"):
        handoff.on_ack("b", 101, 1.0)
    with pytest.raises(RemoteProtocolError, match="sent to 'b'"):
        handoff.on_ack("c", 100, 1.0)
    with pytest.raises(RemoteProtocolError, match="never sent"):
        handoff.on_failure("b", 999, 1.0)
    assert handoff.in_flight("b") == 100
    assert store.count("b") == 1
    # An id from before this run (below first_batch_id) is stale, not an error.
    assert handoff.on_ack("b", 5, 1.0) == []
    assert store.count("b") == 1
    handoff._check_invariants()


def test_bad_inputs_raise_and_change_nothing() -> None:
    store = gstore()
    store.add("b", "k", gs(), 0.0)
    handoff = Handoff(store)
    handoff.target_up("b", 5.0)
    with pytest.raises(LocalProtocolError, match="backwards"):
        handoff.on_timer(4.0)
    with pytest.raises(ValueError, match="now"):
        handoff.on_timer(math.nan)
    with pytest.raises(ValueError, match="now"):
        handoff.target_up("b", -1.0)
    with pytest.raises(TypeError, match="now"):
        handoff.on_timer("5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target"):
        handoff.target_up("", 6.0)
    with pytest.raises(TypeError, match="target"):
        handoff.target_down(None, 6.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_id"):
        handoff.on_ack("b", True, 6.0)
    with pytest.raises(ValueError, match="batch_id"):
        handoff.on_failure("b", -1, 6.0)
    assert handoff.in_flight("b") == 1
    handoff.on_timer(5.0)  # time did not move backwards through any failed call
    handoff._check_invariants()


# -- throttling and fairness -------------------------------------------------------------------


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=40),
    rate=st.sampled_from([200.0, 1000.0, 5000.0]),
    burst=st.sampled_from([150, 400, 2000]),
    max_batch_bytes=st.sampled_from([150, 600]),
    ack_delay=st.sampled_from([0.0, 0.01, 0.3]),
)
def test_token_bucket_bounds_bytes_sent_in_every_interval(
    sizes: list[int], rate: float, burst: int, max_batch_bytes: int, ack_delay: float
) -> None:
    store = gstore()
    for i, size in enumerate(sizes):
        store.add("b" if i % 3 else "c", f"k{i}", gs("x" * size), 0.0)
    handoff = Handoff(
        store, rate=rate, burst=burst, max_batch_bytes=max_batch_bytes, poll_interval=1e6
    )
    sent: list[tuple[float, int]] = []
    pending_acks: list[tuple[float, SendHints[Any]]] = []
    now = 0.0
    effects = handoff.target_up("b", now) + handoff.target_up("c", now)
    for _ in range(2000):
        for effect in sends(effects):
            sent.append((now, effect.nbytes))
            pending_acks.append((now + ack_delay, effect))
        if not len(store):
            break
        candidates = [t for t, _ in pending_acks]
        deadline = handoff.deadline()
        if deadline is not None:
            candidates.append(deadline)
        nxt = max(now, min(candidates))
        now = nxt
        due = [p for p in pending_acks if p[0] <= now]
        pending_acks = [p for p in pending_acks if p[0] > now]
        effects = []
        for _, effect in due:
            effects += handoff.on_ack(effect.target, effect.batch.batch_id, now)
        effects += handoff.on_timer(now)
        handoff._check_invariants()
    assert len(store) == 0
    largest = max(n for _, n in sent)
    excess = max(0, largest - burst)
    slack = rate * 1e-6  # a microsecond of refill is forgiven per send (clock resolution)
    for i, (start, _) in enumerate(sent):
        total = 0
        for j, (when, nbytes) in enumerate(sent[i:]):
            total += nbytes
            assert total <= burst + rate * (when - start) + excess + (j + 1) * slack


def test_a_throttled_deadline_always_moves_time_forward() -> None:
    # With an absurd rate and epoch-sized times, the refill wait is far below the resolution of
    # the clock: deadline() must still be later than now, or a driver would spin forever.
    store = gstore()
    for i in range(50):
        store.add("b", f"k{i}", gs("x" * 50), 1.7e9)
        store.add("c", f"k{i}", gs("x" * 50), 1.7e9)
    handoff = Handoff(store, max_batch_hints=10, burst=300, rate=1e12, timeout=1e9)
    now = 1.7e9
    effects = handoff.target_up("b", now) + handoff.target_up("c", now)
    for _ in range(500):
        if sends(effects):
            acked: list[HandoffEffect] = []
            for send in sends(effects):
                acked += handoff.on_ack(send.target, send.batch.batch_id, now)
            effects = acked
            continue
        if not len(store):
            break
        deadline = handoff.deadline()
        assert deadline is not None
        effects = handoff.on_timer(now)
        assert deadline > now or sends(effects), "deadline() is due but on_timer did nothing"
        if not sends(effects):
            now = deadline
            effects = handoff.on_timer(now)
    assert len(store) == 0


def test_targets_take_turns() -> None:
    store = gstore()
    for target in ("a", "b", "c"):
        for i in range(4):
            store.add(target, f"k{i}", gs(), 0.0)
    size = len(codec.dumps(store.pending("a")[0].to_dict()))
    # A bucket that holds exactly one single-hint batch: sends alternate between targets.
    handoff = Handoff(store, max_batch_hints=1, rate=float(size), burst=size, timeout=1e6)
    order: list[str] = []
    effects = handoff.target_up("a", 0.0) + handoff.target_up("b", 0.0)
    effects += handoff.target_up("c", 0.0)
    now = 0.0
    while len(order) < 12:
        for send in sends(effects):
            order.append(send.target)
            effects = handoff.on_ack(send.target, send.batch.batch_id, now)
            break
        else:
            deadline = handoff.deadline()
            assert deadline is not None
            now = max(now, deadline)
            effects = handoff.on_timer(now)
    assert order == ["a", "b", "c"] * 4


# -- expiry, window, polling -------------------------------------------------------------------


def test_on_timer_expires_due_hints() -> None:
    store = gstore(ttl=10.0)
    store.add("b", "k", gs(), 0.0)
    handoff = Handoff(store)
    assert handoff.deadline() == 10.0
    assert handoff.on_timer(10.0) == [HintsExpired(1)]
    assert store.count("b") == 0
    assert store.needs_repair() == ["b"]
    assert handoff.deadline() is None
    manual_store = gstore(ttl=10.0)
    manual = Handoff(manual_store, expire=False)
    manual_store.add("b", "k", gs(), 0.0)
    assert manual.deadline() is None
    assert manual.on_timer(20.0) == []
    assert manual.store.count("b") == 1


def test_target_up_with_nothing_pending_resets_its_window() -> None:
    store = gstore(ttl=10.0)
    store.add("b", "k", gs(), 0.0)
    handoff = Handoff(store)
    handoff.on_timer(10.0)  # expired while b was down; b's window stays closed
    assert not store.add("b", "k2", gs(), 11.0)
    handoff.target_up("b", 12.0)
    assert store.window_closes_at("b") is None
    assert store.add("b", "k2", gs(), 12.0)


def test_poll_picks_up_hints_added_between_inputs() -> None:
    store = gstore()
    handoff = Handoff(store, poll_interval=5.0)
    assert handoff.target_up("b", 0.0) == []
    assert handoff.deadline() == 5.0
    store.add("b", "k", gs(), 1.0)
    # deadline() reads the store: the new hint is due at once.
    assert handoff.deadline() == 0.0
    assert only_send(handoff.on_timer(1.0)).batch.hints[0].key == "k"


# -- the wire message --------------------------------------------------------------------------


def test_hint_batch_round_trip_and_validation() -> None:
    batch = HintBatch(7, (Hint("b", "k", gs("1"), 1.0), Hint("b", b"k", gs("2"), 2.0)))
    data = codec.loads(codec.dumps(batch.to_dict()))
    assert HintBatch.from_dict(data, state_type=GSet) == batch
    with pytest.raises(ValueError, match="one target"):
        HintBatch(1, (Hint("b", "k", gs(), 0.0), Hint("c", "k", gs(), 0.0)))
    with pytest.raises(ValueError, match="same key"):
        HintBatch(1, (Hint("b", "k", gs(), 0.0), Hint("b", "k", gs("x"), 0.0)))
    with pytest.raises(ValueError, match="1.."):
        HintBatch(1, ())
    with pytest.raises(TypeError, match="tuple"):
        HintBatch(1, [Hint("b", "k", gs(), 0.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_id"):
        HintBatch(True, (Hint("b", "k", gs(), 0.0),))
    bad = dict(batch.to_dict())
    for value in (
        {**bad, "hints": []},
        {**bad, "hints": [bad["hints"][0], bad["hints"][0]]},  # type: ignore[index]
        {**bad, "batch_id": -1},
        {**bad, "hints": [{"type": "hint"}]},
    ):
        with pytest.raises(DecodeError):
            HintBatch.from_dict(value, state_type=GSet)


# -- delivery through a faulty network ---------------------------------------------------------


class Network:
    """Batches and acks in flight, with drops, duplicates and reordering from a seeded RNG."""

    def __init__(
        self, handoff: Handoff[Any], rng: random.Random, faults: float, empty: Any
    ) -> None:
        self.handoff = handoff
        self.empty = empty
        self.rng = rng
        self.faults = faults
        self.messages: list[tuple[str, Any]] = []  # ("batch", HintBatch) or ("ack", (target, id))
        self.replicas: dict[str, dict[str | bytes, Any]] = {}
        self.now = 0.0

    def carry_out(self, effects: list[HandoffEffect]) -> None:
        for effect in effects:
            match effect:
                case SendHints(batch=batch):
                    # Through the wire format, as a driver would.
                    wire = codec.loads(codec.dumps(batch.to_dict()))
                    state_type = type(self.empty)
                    self.messages.append(
                        ("batch", HintBatch.from_dict(wire, state_type=state_type))
                    )
                case HintsDelivered() | DeliveryFailed() | HintsExpired():
                    pass

    def step(self) -> None:
        """Deliver, drop or duplicate one message, or let time pass."""
        roll = self.rng.random()
        if self.messages and roll < 0.7:
            index = self.rng.randrange(len(self.messages))  # any order: reordering
            kind, payload = self.messages[index]
            if self.rng.random() < self.faults:
                del self.messages[index]  # dropped
                return
            if self.rng.random() >= self.faults:
                del self.messages[index]  # else: a duplicate stays behind
            if kind == "batch":
                replica = self.replicas.setdefault(payload.target, {})
                for hint in payload.hints:
                    replica[hint.key] = replica.get(hint.key, self.empty).sync(hint.state)
                self.messages.append(("ack", (payload.target, payload.batch_id)))
            else:
                target, batch_id = payload
                self.carry_out(self.handoff.on_ack(target, batch_id, self.now))
        else:
            self.now += self.rng.choice([0.01, 0.1, 0.6])
            self.carry_out(self.handoff.on_timer(self.now))


@settings(max_examples=80, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["b", "c"]), st.integers(0, 7), st.integers(0, 99)),
        min_size=1,
        max_size=40,
    ),
    seed=st.integers(0, 2**32 - 1),
    faults=st.sampled_from([0.0, 0.2, 0.5]),
    max_batch_hints=st.integers(1, 4),
    kind=st.sampled_from(["dvv", "gset"]),
)
def test_delivery_through_drops_duplicates_and_reordering_converges(
    writes: list[tuple[str, int, int]], seed: int, faults: float, max_batch_hints: int, kind: str
) -> None:
    store: HintStore[Any] = HintStore(ttl=1e9) if kind == "dvv" else gstore()
    handoff = Handoff(
        store, max_batch_hints=max_batch_hints, timeout=0.5, backoff=0.1, max_backoff=1.0
    )
    rng = random.Random(seed)
    net = Network(handoff, rng, faults, DVVSet[bytes]() if kind == "dvv" else GSet())
    coordinators: dict[tuple[str, str], DVVSet[bytes]] = {}
    hinted: list[tuple[str, str, Any]] = []
    for target in ("b", "c"):
        net.carry_out(handoff.target_up(target, 0.0))
    for i, (target, k, dot) in enumerate(writes):
        state: Any = gs(f"{dot}-{i}")
        if kind == "dvv":
            # One coordinator per key writes, sometimes with the context it read, sometimes
            # blind: the hinted states are supersedes and siblings of one history.
            prior = coordinators.get((target, f"k{k}"), DVVSet[bytes]())
            context = prior.context if rng.random() < 0.5 else None
            state = prior.update(b"%d-%d" % (dot, i), "coord", context)
            coordinators[target, f"k{k}"] = state
        assert store.add(target, f"k{k}", state, net.now)
        hinted.append((target, f"k{k}", state))
        for _ in range(rng.randrange(4)):
            net.step()
            handoff._check_invariants()
        if rng.random() < 0.1:
            net.carry_out(handoff.target_down(target, net.now))
        elif rng.random() < 0.3:
            net.carry_out(handoff.target_up(target, net.now))
    for target in ("b", "c"):
        net.carry_out(handoff.target_up(target, net.now))
    for _ in range(20_000):
        if not len(store):
            break
        net.step()
    handoff._check_invariants()
    store._check_invariants()
    assert len(store) == 0, "the backlog did not drain"
    for target, key, state in hinted:
        assert net.replicas[target][key].descends(state)
    assert store.stats().dropped == 0


# -- stateful: Handoff beside a model of what each target must end up with ---------------------


class HandoffMachine(RuleBasedStateMachine):
    """No acknowledged-lost writes: what the target has plus what is hinted covers every write."""

    @initialize(
        max_batch_hints=st.integers(1, 3),
        rate=st.sampled_from([100.0, 1e9]),
        seed=st.integers(0, 2**16),
    )
    def setup(self, max_batch_hints: int, rate: float, seed: int) -> None:
        self.store = gstore()
        self.handoff = Handoff(
            self.store,
            max_batch_hints=max_batch_hints,
            rate=rate,
            burst=400,
            timeout=1.0,
            backoff=0.5,
            max_backoff=4.0,
            rng=random.Random(seed),
        )
        self.now = 0.0
        self.wire: list[HintBatch[GSet]] = []
        self.acks: list[tuple[str, int]] = []
        self.replicas: dict[str, dict[str | bytes, GSet]] = {"b": {}, "c": {}}
        self.written: dict[tuple[str, str], GSet] = {}
        self.dot = 0

    def apply(self, effects: list[HandoffEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendHints):
                target = effect.target
                assert self.handoff.is_up(target), "sent to a target that is down"
                assert self.handoff.in_flight(target) == effect.batch.batch_id
                self.wire.append(effect.batch)

    @rule(node=st.sampled_from(["b", "c"]), k=st.integers(0, 4))
    def write(self, node: str, k: int) -> None:
        self.dot += 1
        state = gs(f"d{self.dot}")
        assert self.store.add(node, f"k{k}", state, self.now)
        key = (node, f"k{k}")
        self.written[key] = self.written.get(key, GSet()).sync(state)

    @rule(node=st.sampled_from(["b", "c"]), up=st.booleans())
    def reachability(self, node: str, up: bool) -> None:
        change = self.handoff.target_up if up else self.handoff.target_down
        self.apply(change(node, self.now))

    @rule(dt=st.sampled_from([0.1, 0.6, 1.5, 5.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.apply(self.handoff.on_timer(self.now))

    @precondition(lambda self: self.wire)
    @rule(data=st.data(), keep=st.booleans())
    def deliver_batch(self, data: st.DataObject, keep: bool) -> None:
        batch = data.draw(st.sampled_from(self.wire))
        if not keep:
            self.wire.remove(batch)
        replica = self.replicas[batch.target]
        for hint in batch.hints:
            replica[hint.key] = replica.get(hint.key, GSet()).sync(hint.state)
        self.acks.append((batch.target, batch.batch_id))

    @precondition(lambda self: self.wire)
    @rule(data=st.data())
    def lose_batch(self, data: st.DataObject) -> None:
        self.wire.remove(data.draw(st.sampled_from(self.wire)))

    @precondition(lambda self: self.acks)
    @rule(data=st.data(), keep=st.booleans())
    def deliver_ack(self, data: st.DataObject, keep: bool) -> None:
        target, batch_id = data.draw(st.sampled_from(self.acks))
        if not keep:
            self.acks.remove((target, batch_id))
        self.apply(self.handoff.on_ack(target, batch_id, self.now))

    @precondition(lambda self: self.wire)
    @rule(data=st.data())
    def report_failure(self, data: st.DataObject) -> None:
        batch = data.draw(st.sampled_from(self.wire))
        self.apply(self.handoff.on_failure(batch.target, batch.batch_id, self.now))

    @invariant()
    def nothing_acknowledged_is_lost(self) -> None:
        if not hasattr(self, "store"):
            return
        self.handoff._check_invariants()
        self.store._check_invariants()
        for (target, key), state in self.written.items():
            have = self.replicas[target].get(key, GSet())
            hint = self.store.get(target, key)
            if hint is not None:
                have = have.sync(hint.state)
            assert have.descends(state), f"write to {target}/{key} lost"

    @invariant()
    def deadline_is_consistent(self) -> None:
        if not hasattr(self, "store"):
            return
        deadline = self.handoff.deadline()
        flying = [t for t in ("b", "c") if self.handoff.in_flight(t) is not None]
        if flying:
            assert deadline is not None


TestHandoffMachine = HandoffMachine.TestCase
TestHandoffMachine.settings = settings(stateful_step_count=40, deadline=None)
