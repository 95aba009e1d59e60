"""The hinted-handoff delivery core: a sans-I/O state machine over any `HintSource`."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Generic, Literal, Protocol, TypeAlias, runtime_checkable

import attrs

from dynamo_core import codec
from dynamo_core._check import (
    check_node_id,
    check_positive_float,
    check_positive_int,
    check_time,
)
from dynamo_core.errors import (
    LocalProtocolError,
    RemoteProtocolError,
)
from dynamo_core.hints.wire import MAX_BATCH_HINTS, Hint, HintBatch, S

__all__ = [
    "DeliveryFailed",
    "Handoff",
    "HandoffEffect",
    "HintSource",
    "HintsDelivered",
    "HintsExpired",
    "SendHints",
]

# Bytes of rounding forgiven, so a bucket refilled exactly on time is never "almost" full.
_TOKEN_SLACK: Final = 1e-6


# -- the hint source --------------------------------------------------------------------------


@runtime_checkable
class HintSource(Protocol[S]):
    """What [`Handoff`][dynamo_core.hints.Handoff] needs from the hints it delivers.

    [`HintStore`][dynamo_core.hints.HintStore] implements it; a driver may hand `Handoff` any
    other object with these methods (a store over another medium, a test double). Times are on
    the clock the driver gives `Handoff`.
    """

    def count(self, target: str) -> int:
        """The number of hints pending for `target`."""

    def pending_sized(self, target: str, limit: int | None = None) -> list[tuple[Hint[S], int]]:
        """At most `limit` hints of `target`, oldest first, each with its encoded size in bytes."""

    def remove_many(self, hints: Iterable[Hint[S]]) -> int:
        """Delete the hints that are still exactly as given (delivered); return how many."""

    def next_expiry(self) -> float | None:
        """When the next hint outlives its TTL, or `None` with no hints."""

    def expire(self, now: float) -> int:
        """Delete the hints that outlived their TTL at `now`; return how many."""

    def window_closes_at(self, target: str) -> float | None:
        """When `target`'s hint window closes, or `None` when it is not open."""

    def reset_window(self, target: str) -> None:
        """Forget `target`'s hint window: it was reached with nothing pending."""


# -- the delivery core -------------------------------------------------------------------------


@attrs.frozen
class SendHints(Generic[S]):
    """Effect: send `batch` to `target`, then report `on_ack` or `on_failure` with its id.

    Attributes:
        target: The node to send to.
        batch: The message (encode it with ``batch.to_dict()``).
        nbytes: The encoded size of its hints, as charged to the rate limit.
    """

    target: str
    batch: HintBatch[S]
    nbytes: int


@attrs.frozen
class HintsDelivered:
    """Effect (informational): `target` acknowledged `batch_id`.

    Attributes:
        target: The node.
        batch_id: The acknowledged batch.
        removed: Hints deleted from the store as delivered.
        kept: Hints of the batch not deleted: merged with a newer write since they were sent
            (they are sent again) or already gone (delivered or expired).
    """

    target: str
    batch_id: int
    removed: int
    kept: int


@attrs.frozen
class DeliveryFailed:
    """Effect (informational): a batch failed or timed out; `target` is retried at `retry_at`.

    Attributes:
        target: The node.
        batch_id: The failed batch.
        reason: ``"timeout"`` or ``"failure"`` (reported by the driver).
        attempt: Consecutive failures for this target so far (1 for the first).
        retry_at: When the next batch may be sent to the target.
    """

    target: str
    batch_id: int
    reason: Literal["timeout", "failure"]
    attempt: int
    retry_at: float


@attrs.frozen
class HintsExpired:
    """Effect (informational): `count` hints outlived the store's TTL and were deleted."""

    count: int


HandoffEffect: TypeAlias = "SendHints[Any] | HintsDelivered | DeliveryFailed | HintsExpired"
"""Everything [`Handoff`][dynamo_core.hints.Handoff] inputs return; dispatch with `match`."""


class _Outstanding:
    """A batch sent and not yet acknowledged or failed."""

    __slots__ = ("batch", "deadline", "nbytes", "timed_out")

    def __init__(self, batch: HintBatch[Any], nbytes: int, deadline: float) -> None:
        self.batch = batch
        self.nbytes = nbytes
        self.deadline = deadline
        self.timed_out = False


class _Peer:
    """Handoff's view of one target."""

    __slots__ = ("failures", "in_flight", "late", "retry_at", "up")

    def __init__(self) -> None:
        self.up = False
        self.in_flight: int | None = None
        self.late: deque[int] = deque()  # timed-out batches whose ack may still come
        self.failures = 0
        self.retry_at = 0.0


def _check_batch_id(batch_id: object) -> int:
    if type(batch_id) is not int:
        raise TypeError(f"batch_id must be an int, not {type(batch_id).__name__}")
    if batch_id < 0:
        raise ValueError(f"batch_id must be >= 0, got {batch_id}")
    return batch_id


class Handoff(Generic[S]):
    """The hinted-handoff delivery protocol, as a sans-I/O state machine over a `HintSource`.

    Told which targets are reachable (`target_up` / `target_down`), it sends their pending hints
    oldest first, in batches of at most `max_batch_hints` hints and `max_batch_bytes` bytes
    (a single larger hint goes alone), and deletes a hint from the store only when the target
    acknowledged the batch that carried it. At most one batch is in flight per target. A batch
    not acknowledged within `timeout` seconds, or reported failed, is retried after an exponential
    backoff (`backoff`, doubling per consecutive failure, at most `max_backoff`, optionally
    jittered by `rng`). An acknowledgement that arrives after the timeout still counts; a
    duplicate or stale one is ignored. Redelivery is harmless because the receiver merges.

    Sending is throttled by a token bucket of `rate` bytes per second holding at most `burst`
    bytes, shared by all targets (the fallback's outbound budget), and targets take turns. A
    batch waits until the bucket holds its size (or is full, for a batch larger than `burst`),
    so over any interval of T seconds at most ``burst + rate * T`` bytes are sent, plus, if a
    batch is larger than `burst`, its excess.

    Like h11, it never reads a clock, sleeps or does I/O: every input takes ``now`` and returns a
    list of effects ([`HandoffEffect`][dynamo_core.hints.HandoffEffect]) for the driver to carry
    out, and [`deadline`][dynamo_core.hints.Handoff.deadline] says when to call
    [`on_timer`][dynamo_core.hints.Handoff.on_timer] next. Pending hints are read from the store
    on every input, so hints added between inputs are picked up; the driver should also call
    `on_timer` at least every `poll_interval` seconds, which `deadline` includes while any target
    is up. With `expire=True` (default) the core also runs the store's
    [`expire`][dynamo_core.hints.HintStore.expire] when hints are due. Times must not go
    backwards and must come from the same clock as the store's. A storage error raised by the
    store propagates; a batch registered as sent by that call is then simply resent after its
    timeout, and no hint is deleted without an ack.

    Args:
        store: The hints to deliver: a [`HintStore`][dynamo_core.hints.HintStore] or any
            [`HintSource`][dynamo_core.hints.HintSource].
        max_batch_hints: The most hints per batch (1 ..
            [`MAX_BATCH_HINTS`][dynamo_core.hints.MAX_BATCH_HINTS]).
        max_batch_bytes: The most encoded bytes per batch.
        rate: The sending budget, in bytes per second (Cassandra's default is 1024 KiB/s).
        burst: The bucket size in bytes (default: `max_batch_bytes`).
        timeout: Seconds to wait for an acknowledgement.
        backoff: The delay after the first consecutive failure, in seconds.
        max_backoff: The longest delay between retries.
        poll_interval: How often an idle, reachable target is checked for new hints.
        expire: Whether to expire the store's hints when they are due.
        first_batch_id: The first batch id. A driver that restarts while acks from its previous
            run may still arrive should start above the ids it used before.
        rng: Randomness for backoff jitter (each delay is scaled by a factor in [0.5, 1]); no
            jitter by default, so a run is deterministic.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """

    __slots__ = (
        "_backoff",
        "_burst",
        "_expire",
        "_first_id",
        "_max_backoff",
        "_max_batch_bytes",
        "_max_batch_hints",
        "_need",
        "_next_id",
        "_next_poll",
        "_now",
        "_outstanding",
        "_peers",
        "_poll",
        "_rate",
        "_refilled_at",
        "_rng",
        "_served",
        "_slack",
        "_store",
        "_timeout",
        "_tokens",
    )

    _MAX_LATE: Final = 8  # timed-out batches per target whose late ack still counts

    def __init__(
        self,
        store: HintSource[S],
        *,
        max_batch_hints: int = 100,
        max_batch_bytes: int = 128 * 1024,
        rate: float = 1024 * 1024.0,
        burst: int | None = None,
        timeout: float = 10.0,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        poll_interval: float = 10.0,
        expire: bool = True,
        first_batch_id: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(store, HintSource):
            raise TypeError(
                f"store must be a HintSource (such as a HintStore), not {type(store).__name__}"
            )
        self._store: HintSource[S] = store
        self._max_batch_hints = check_positive_int(
            max_batch_hints, "max_batch_hints", maximum=MAX_BATCH_HINTS
        )
        self._max_batch_bytes = check_positive_int(max_batch_bytes, "max_batch_bytes")
        self._rate = check_positive_float(rate, "rate")
        # Bytes forgiven when checking the bucket: what it refills in a microsecond (at least
        # 1e-6), so rounding never leaves a batch waiting for less than the clock can resolve.
        self._slack = max(_TOKEN_SLACK, self._rate * 1e-6)
        self._burst = float(
            self._max_batch_bytes if burst is None else check_positive_int(burst, "burst")
        )
        self._timeout = check_positive_float(timeout, "timeout")
        self._backoff = check_positive_float(backoff, "backoff")
        self._max_backoff = check_positive_float(max_backoff, "max_backoff")
        if self._max_backoff < self._backoff:
            raise ValueError(
                f"max_backoff must be >= backoff ({self._backoff}), got {self._max_backoff}"
            )
        self._poll = check_positive_float(poll_interval, "poll_interval")
        if type(expire) is not bool:
            raise TypeError(f"expire must be a bool, not {type(expire).__name__}")
        self._expire = expire
        if type(first_batch_id) is not int:
            raise TypeError(f"first_batch_id must be an int, not {type(first_batch_id).__name__}")
        if not 0 <= first_batch_id <= codec.MAX_COUNTER:
            raise ValueError(f"first_batch_id must be in 0..2**63-1, got {first_batch_id}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        self._rng = rng
        self._first_id = first_batch_id
        self._next_id = first_batch_id
        self._peers: dict[str, _Peer] = {}
        self._outstanding: dict[int, _Outstanding] = {}
        self._tokens = self._burst
        self._refilled_at: float | None = None
        self._now: float | None = None
        self._need: float | None = None  # bytes the next batch waits for, when throttled
        self._next_poll: float | None = None
        self._served: str | None = None  # the target served last (round robin)

    # -- introspection -------------------------------------------------------------------------

    @property
    def store(self) -> HintSource[S]:
        """The store the hints are delivered from."""
        return self._store

    def is_up(self, target: str) -> bool:
        """Whether `target` was last reported reachable."""
        peer = self._peers.get(target)
        return peer is not None and peer.up

    def in_flight(self, target: str) -> int | None:
        """The id of the batch in flight to `target`, or `None`."""
        peer = self._peers.get(target)
        return None if peer is None else peer.in_flight

    def retry_at(self, target: str) -> float | None:
        """When `target` may next be sent a batch after failures, or `None` if not backing off."""
        peer = self._peers.get(target)
        if peer is None or not peer.failures:
            return None
        return peer.retry_at

    # -- inputs --------------------------------------------------------------------------------

    def _check_now(self, now: object) -> float:
        value = check_time(now, "now")
        if self._now is not None and value < self._now:
            raise LocalProtocolError(f"now went backwards: {value!r} < {self._now!r}")
        return value

    def _peer(self, target: str) -> _Peer:
        peer = self._peers.get(target)
        if peer is None:
            peer = self._peers[target] = _Peer()
        return peer

    def target_up(self, target: str, now: float) -> list[HandoffEffect]:
        """The target is reachable: deliver its pending hints.

        Calling it again while the target is up is harmless (and picks up new hints). A target
        that comes back with nothing pending gets its hint window reset in the store.

        Returns:
            The effects to carry out.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `target` is not a valid node id or `now` is negative or not finite.
            dynamo_core.errors.LocalProtocolError: `now` is earlier than a previous input's.
        """
        check_node_id(target, "target")
        now = self._check_now(now)
        peer = self._peer(target)
        if not peer.up:
            peer.up = True
            peer.failures = 0
            peer.retry_at = now
            if self._store.count(target) == 0 and self._store.window_closes_at(target) is not None:
                self._store.reset_window(target)
        return self._service(now)

    def target_down(self, target: str, now: float) -> list[HandoffEffect]:
        """The target is unreachable: send it nothing more until `target_up`.

        A batch already in flight still counts if its ack arrives before the timeout (or after).

        Returns:
            The effects of timers that fell due (never a send to `target`).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `target` is not a valid node id or `now` is negative or not finite.
            dynamo_core.errors.LocalProtocolError: `now` is earlier than a previous input's.
        """
        check_node_id(target, "target")
        now = self._check_now(now)
        self._peer(target).up = False
        return self._service(now)

    def _resolve(
        self, target: object, batch_id: object, now: object
    ) -> tuple[float, _Outstanding | None]:
        """Check an ack's or failure's arguments; find its outstanding batch (None if stale)."""
        target = check_node_id(target, "target")
        batch_id = _check_batch_id(batch_id)
        return self._check_now(now), self._outstanding_for(target, batch_id)

    def _outstanding_for(self, target: str, batch_id: int) -> _Outstanding | None:
        out = self._outstanding.get(batch_id)
        if out is None:
            if batch_id >= self._next_id:
                raise RemoteProtocolError(f"batch {batch_id} was never sent")
            return None
        if out.batch.target != target:
            raise RemoteProtocolError(
                f"batch {batch_id} was sent to {out.batch.target!r}, not {target!r}"
            )
        return out

    def _forget(self, batch_id: int, out: _Outstanding) -> None:
        del self._outstanding[batch_id]
        peer = self._peers[out.batch.target]
        if peer.in_flight == batch_id:
            peer.in_flight = None
        elif batch_id in peer.late:
            peer.late.remove(batch_id)

    def on_ack(self, target: str, batch_id: int, now: float) -> list[HandoffEffect]:
        """`target` acknowledged `batch_id`: delete the batch's hints that are unchanged.

        An ack for a batch already acknowledged, failed or forgotten is ignored.

        Returns:
            A [`HintsDelivered`][dynamo_core.hints.HintsDelivered] for a live batch, then the
            effects of sending on.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `target`, `batch_id` or `now` is invalid.
            dynamo_core.errors.RemoteProtocolError: `batch_id` was never sent, or not to
                `target`; nothing changed.
            dynamo_core.errors.LocalProtocolError: `now` is earlier than a previous input's.
        """
        now, out = self._resolve(target, batch_id, now)
        effects: list[HandoffEffect] = []
        if out is not None:
            removed = self._store.remove_many(out.batch.hints)
            self._forget(batch_id, out)
            peer = self._peers[target]
            peer.failures = 0
            peer.retry_at = now
            effects.append(
                HintsDelivered(target, batch_id, removed, len(out.batch.hints) - removed)
            )
        return effects + self._service(now)

    def on_failure(self, target: str, batch_id: int, now: float) -> list[HandoffEffect]:
        """Sending `batch_id` to `target` failed (the driver knows it was not delivered).

        Returns:
            A [`DeliveryFailed`][dynamo_core.hints.DeliveryFailed] if the batch was in flight,
            then the effects of sending on. A batch already timed out, acknowledged or
            forgotten changes nothing.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `target`, `batch_id` or `now` is invalid.
            dynamo_core.errors.RemoteProtocolError: `batch_id` was never sent, or not to
                `target`; nothing changed.
            dynamo_core.errors.LocalProtocolError: `now` is earlier than a previous input's.
        """
        now, out = self._resolve(target, batch_id, now)
        effects: list[HandoffEffect] = []
        if out is not None:
            in_flight = not out.timed_out
            self._forget(batch_id, out)
            if in_flight:
                effects.append(self._fail(target, batch_id, "failure", now))
        return effects + self._service(now)

    def on_timer(self, now: float) -> list[HandoffEffect]:
        """Time has reached `now`: time out batches, expire hints and send what is due.

        Returns:
            The effects to carry out.

        Raises:
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
            dynamo_core.errors.LocalProtocolError: `now` is earlier than a previous input's.
        """
        return self._service(self._check_now(now))

    # -- the engine ----------------------------------------------------------------------------

    def _fail(
        self, target: str, batch_id: int, reason: Literal["timeout", "failure"], now: float
    ) -> DeliveryFailed:
        peer = self._peers[target]
        peer.failures += 1
        delay = min(self._max_backoff, self._backoff * 2.0 ** min(peer.failures - 1, 1023))
        if self._rng is not None:
            delay *= self._rng.uniform(0.5, 1.0)
        peer.retry_at = now + delay
        return DeliveryFailed(target, batch_id, reason, peer.failures, peer.retry_at)

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None:
            elapsed = max(0.0, now - self._refilled_at)
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._refilled_at = now

    def _timeouts(self, now: float) -> list[HandoffEffect]:
        effects: list[HandoffEffect] = []
        due = sorted(
            batch_id
            for batch_id, out in self._outstanding.items()
            if not out.timed_out and out.deadline <= now
        )
        for batch_id in due:
            out = self._outstanding[batch_id]
            target = out.batch.target
            peer = self._peers[target]
            out.timed_out = True
            peer.in_flight = None
            peer.late.append(batch_id)
            while len(peer.late) > self._MAX_LATE:
                del self._outstanding[peer.late.popleft()]
            effects.append(self._fail(target, batch_id, "timeout", now))
        return effects

    def _eligible(self, target: str, peer: _Peer, now: float) -> bool:
        return (
            peer.up
            and peer.in_flight is None
            and peer.retry_at <= now
            and self._store.count(target) > 0
        )

    def _rotation(self) -> list[str]:
        """Targets in round-robin order, starting after the one served last."""
        names = sorted(self._peers)
        if self._served is None:
            return names
        start = next((i for i, name in enumerate(names) if name > self._served), 0)
        return names[start:] + names[:start]

    def _build(self, target: str) -> tuple[HintBatch[S], int] | None:
        sized = self._store.pending_sized(target, self._max_batch_hints)
        chosen: list[Hint[S]] = []
        nbytes = 0
        for hint, size in sized:
            if chosen and nbytes + size > self._max_batch_bytes:
                break
            chosen.append(hint)
            nbytes += size
        if not chosen:
            return None
        batch = HintBatch(self._next_id, tuple(chosen))
        return batch, nbytes

    def _service(self, now: float) -> list[HandoffEffect]:
        self._now = now
        self._refill(now)
        effects = self._timeouts(now)
        if self._expire:
            due = self._store.next_expiry()
            if due is not None and due <= now:
                expired = self._store.expire(now)
                if expired:
                    effects.append(HintsExpired(expired))
        if self._next_poll is None or now >= self._next_poll:
            self._next_poll = now + self._poll
        self._need = None
        for target in self._rotation():
            peer = self._peers[target]
            if not self._eligible(target, peer, now):
                continue
            built = self._build(target)
            if built is None:
                continue
            batch, nbytes = built
            need = min(float(nbytes), self._burst)
            if need - self._tokens > self._slack:
                self._need = need
                break
            self._tokens -= nbytes
            self._next_id += 1
            self._outstanding[batch.batch_id] = _Outstanding(batch, nbytes, now + self._timeout)
            peer.in_flight = batch.batch_id
            self._served = target
            effects.append(SendHints(target, batch, nbytes))
        return effects

    def deadline(self) -> float | None:
        """Return when [`on_timer`][dynamo_core.hints.Handoff.on_timer] should next be called.

        The earliest of: an ack timeout, a target's backoff ending, the rate limit allowing the
        next batch, a hint expiring, and the next poll of idle reachable targets. `None` when
        nothing is pending and no target is up. May be in the past: call `on_timer` at once.
        """
        times: list[float] = [
            out.deadline for out in self._outstanding.values() if not out.timed_out
        ]
        ready: float | None = None
        any_up = False
        for target, peer in sorted(self._peers.items()):
            if not peer.up:
                continue
            any_up = True
            if peer.in_flight is None and self._store.count(target) > 0:
                ready = peer.retry_at if ready is None else min(ready, peer.retry_at)
        if ready is not None:
            if self._need is not None and self._refilled_at is not None:
                wait = (self._need - self._tokens) / self._rate
                at = self._refilled_at + wait
                if at <= self._refilled_at:  # far below the clock's resolution: still move on
                    at = math.nextafter(self._refilled_at, math.inf)
                ready = max(ready, at)
            times.append(ready)
        if self._expire:
            due = self._store.next_expiry()
            if due is not None:
                times.append(due)
        if any_up and self._next_poll is not None:
            times.append(self._next_poll)
        return min(times) if times else None

    def __repr__(self) -> str:
        up = sum(1 for peer in self._peers.values() if peer.up)
        flying = sum(1 for out in self._outstanding.values() if not out.timed_out)
        return f"<Handoff {up} targets up, {flying} batches in flight>"

    def _check_invariants(self) -> None:
        """Check the bookkeeping of batches, peers and the token bucket."""
        assert self._tokens <= self._burst + 1e-9
        assert self._first_id <= self._next_id
        in_flight = {}
        for target, peer in self._peers.items():
            assert peer.failures >= 0
            if peer.in_flight is not None:
                out = self._outstanding[peer.in_flight]
                assert out.batch.target == target
                assert not out.timed_out
                in_flight[peer.in_flight] = target
            assert len(peer.late) <= self._MAX_LATE
            for batch_id in peer.late:
                out = self._outstanding[batch_id]
                assert out.timed_out
                assert out.batch.target == target
        for batch_id, out in self._outstanding.items():
            assert self._first_id <= batch_id < self._next_id
            assert out.batch.batch_id == batch_id
            assert (batch_id in in_flight) != out.timed_out
            assert out.nbytes >= 1
            assert len(out.batch.hints) <= self._max_batch_hints
            if len(out.batch.hints) > 1:
                assert out.nbytes <= self._max_batch_bytes
