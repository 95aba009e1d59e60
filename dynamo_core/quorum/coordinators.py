"""The put and get coordinators: one transition table each and the state machine that walks it."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final, Generic, cast

import attrs

from dynamo_core._check import (
    MAX_NODE_ID_LEN,
    check_key,
    check_node_id,
    check_positive_float,
    check_time,
)
from dynamo_core.errors import (
    DotCollision,
    LocalProtocolError,
    RemoteProtocolError,
    Unavailable,
)
from dynamo_core.quorum.messages import (
    Complete,
    Fetched,
    GetEffect,
    GetResult,
    Key,
    PutEffect,
    PutResult,
    Refused,
    S,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.quorum.policy import ConsistencyLevel, QuorumPolicy

_new: Final = object.__new__

__all__ = [
    "DEFAULT_TIMEOUT",
    "CoordinatorEvent",
    "CoordinatorState",
    "GetCoordinator",
    "PutCoordinator",
    "Transition",
]

DEFAULT_TIMEOUT: Final = 1.0
"""The default overall time budget of one request, in seconds."""


# -- the state machine -------------------------------------------------------------------------


class CoordinatorState(enum.Enum):
    """The states of both coordinators (see the diagrams in the quorum concept page)."""

    IDLE = "IDLE"
    """Built, `start` not called yet."""
    WAITING = "WAITING"
    """Requests sent; the outcome is not known yet."""
    DRAINING = "DRAINING"
    """The outcome is known (success or `Unavailable`); still collecting the replies of the
    replicas asked, to place every copy (put) or to repair stale replicas (get)."""
    CLOSED = "CLOSED"
    """Finished: every input is now a `LocalProtocolError`."""

    __hash__ = object.__hash__  # members are singletons: hash by identity, in C


class CoordinatorEvent(enum.Enum):
    """What moves a coordinator from one state to the next."""

    START = "start"
    """`start(now)` was called."""
    REPLY = "reply"
    """A replica answered in time."""
    LATE_REPLY = "late reply"
    """A replica answered after its replica timeout: recorded, not counted."""
    REFUSAL = "refusal"
    """A replica refused."""
    REPLICA_TIMEOUT = "replica timeout"
    """A replica did not answer within its replica timeout."""
    QUORUM_REACHED = "quorum reached"
    """`w` acknowledgements (`r` answers) arrived, at least `pw` (`pr`) of them from primaries."""
    QUORUM_IMPOSSIBLE = "quorum impossible"
    """The replicas still able to answer are too few to reach the quorum, or its primaries."""
    SETTLED = "settled"
    """Every replica asked has answered, refused or timed out."""
    DEADLINE = "deadline"
    """The request's overall deadline passed."""

    __hash__ = object.__hash__


@attrs.frozen
class Transition:
    """One row of a coordinator's transition table.

    The coordinators move only along the rows of their table (`PutCoordinator.TRANSITIONS`,
    `GetCoordinator.TRANSITIONS`), and the state diagrams in the docs are generated from the
    same rows.

    Attributes:
        source: The state before.
        event: What happened.
        target: The state after.
        action: What the coordinator does, in words (for the docs).
    """

    source: CoordinatorState
    event: CoordinatorEvent
    target: CoordinatorState
    action: str


_St = CoordinatorState
_Ev = CoordinatorEvent
# Module-level names for the hot paths (a global lookup beats an enum attribute lookup).
_WAITING: Final = CoordinatorState.WAITING
_DRAINING: Final = CoordinatorState.DRAINING
_CLOSED: Final = CoordinatorState.CLOSED
_START: Final = CoordinatorEvent.START
_INF: Final = float("inf")


def _index(rows: tuple[Transition, ...]) -> dict[tuple[_St, _Ev], _St]:
    table: dict[tuple[_St, _Ev], _St] = {}
    for row in rows:
        if (row.source, row.event) in table:  # pragma: no cover - a table typo
            raise AssertionError(f"duplicate transition {row}")
        table[row.source, row.event] = row.target
    return table


_PENDING: Final = 0
_ANSWERED: Final = 1
_REFUSED: Final = 2
_TIMED_OUT: Final = 3


class _Slot(Generic[S]):
    """One replica asked: its node, the primary it stands in for, and what became of it."""

    __slots__ = ("counts", "deadline", "hint", "late", "node", "state", "status")

    def __init__(self, node: str, hint: str | None, counts: bool, deadline: float) -> None:
        self.node = node
        self.hint = hint
        self.counts = counts
        self.deadline = deadline
        self.status = _PENDING
        self.late = False  # replied after timing out
        self.state: S | None = None  # get: what it answered


def _check_candidates(candidates: object) -> tuple[str, ...]:
    fast = type(candidates) is list or type(candidates) is tuple
    if not fast and (isinstance(candidates, str | bytes) or not isinstance(candidates, Iterable)):
        raise TypeError(
            f"candidates must be a sequence of node ids, not {type(candidates).__name__}"
        )
    nodes: tuple[str, ...] = tuple(cast("Iterable[str]", candidates))  # each checked below
    for i, node in enumerate(nodes):
        if type(node) is not str or not 0 < len(node) <= MAX_NODE_ID_LEN:
            check_node_id(node, f"candidates[{i}]")
    if len(set(nodes)) != len(nodes):
        dupes = sorted(node for node, count in Counter(nodes).items() if count > 1)
        raise ValueError(f"candidates must be distinct nodes; repeated: {', '.join(dupes)}")
    return nodes


def _check_primaries(
    preference_list: object, candidates: tuple[str, ...], n: int
) -> tuple[str, ...]:
    if preference_list is None:
        return candidates[:n]
    if isinstance(preference_list, str | bytes) or not isinstance(preference_list, Iterable):
        raise TypeError(
            f"preference_list must be a sequence of node ids, not {type(preference_list).__name__}"
        )
    primaries = tuple(preference_list)
    for i, node in enumerate(primaries):
        check_node_id(node, f"preference_list[{i}]")
    if len(set(primaries)) != len(primaries):
        raise ValueError("preference_list must hold distinct nodes")
    if len(primaries) > n:
        raise ValueError(f"preference_list must hold at most n={n} nodes, got {len(primaries)}")
    alive = [node for node in primaries if node in candidates]
    if list(candidates[: len(alive)]) != alive:
        raise ValueError(
            "candidates must start with the live nodes of preference_list, in the same order "
            "(pass ring.walk(key) minus the nodes believed down)"
        )
    if len(primaries) < n and len(candidates) > len(alive):
        raise ValueError(
            f"preference_list holds {len(primaries)} < n={n} nodes, so it must be the whole "
            "cluster, but candidates hold other nodes"
        )
    return primaries


def _shown(key: Key) -> str:
    """A key for people: UTF-8 text in quotes (not ``b'...'``), else hex."""
    text = key
    if isinstance(key, bytes):
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + key[:64].hex() + ("..." if len(key) > 64 else "")
    return repr(text[:200]) + ("..." if len(text) > 200 else "")


class _Coordinator(Generic[S]):
    """What both coordinators share: input checks, the clock, timers, the transition table."""

    __slots__ = (
        "_candidates",
        "_deadline",
        "_expires",
        "_have",
        "_have_primaries",
        "_key",
        "_live",
        "_live_primaries",
        "_need",
        "_need_primaries",
        "_next",
        "_now",
        "_pending",
        "_policy",
        "_primaries",
        "_result_value",
        "_slots",
        "_state",
        "_timeouts",
    )

    TRANSITIONS: ClassVar[tuple[Transition, ...]]
    _TABLE: ClassVar[dict[tuple[CoordinatorState, CoordinatorEvent], CoordinatorState]]
    _KIND: ClassVar[str]

    def __init__(
        self,
        policy: QuorumPolicy,
        key: Key,
        candidates: Sequence[str],
        preference_list: Sequence[str] | None,
    ) -> None:
        if not isinstance(policy, QuorumPolicy):
            raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
        nodes = _check_candidates(candidates)
        self._setup(
            policy, check_key(key, "key"), nodes, _check_primaries(preference_list, nodes, policy.n)
        )

    def _setup(
        self,
        policy: QuorumPolicy,
        key: Key,
        candidates: tuple[str, ...],
        primaries: tuple[str, ...],
    ) -> None:
        """Set the fields from checked arguments (`__init__`, or a node's own values)."""
        self._key = key
        self._policy = policy
        self._candidates = candidates
        self._primaries = primaries
        self._timeouts = 0  # replicas that timed out: a driver reads `timed_out` when it grows
        self._need = self._required()  # the policy is fixed: _decide reads these at every input
        self._need_primaries = self._required_primaries()
        self._next = 0  # index of the next unused candidate
        self._slots: dict[str, _Slot[S]] = {}  # asked nodes, in the order asked
        self._state = CoordinatorState.IDLE
        self._now = 0.0
        self._expires = 0.0
        self._deadline: float | None = None  # deadline(), as of the end of the last input
        self._result_value: object = None
        # Kept up to date as replies come, and recounted by _check_invariants:
        self._pending = 0  # replicas asked that have not answered, refused or timed out
        self._live = 0  # ... of which would count toward the quorum
        self._have = 0  # replies that count toward the quorum
        self._live_primaries = 0  # ... the same two counts for the primaries (pr, pw)
        self._have_primaries = 0

    # -- public views ----------------------------------------------------------------------

    @property
    def policy(self) -> QuorumPolicy:
        """The policy in force for this request (per-request overrides applied)."""
        return self._policy

    @property
    def key(self) -> Key:
        """The key of this request."""
        return self._key

    @property
    def state(self) -> CoordinatorState:
        """The current state."""
        return self._state

    @property
    def asked(self) -> tuple[tuple[str, str | None], ...]:
        """``(node, hint)`` for every replica asked so far, in the order asked."""
        return tuple((slot.node, slot.hint) for slot in self._slots.values())

    @property
    def refused(self) -> tuple[str, ...]:
        """The nodes that refused, in the order asked."""
        return tuple(s.node for s in self._slots.values() if s.status == _REFUSED and not s.late)

    @property
    def timed_out(self) -> tuple[str, ...]:
        """The nodes that did not answer within their replica timeout, in the order asked."""
        return tuple(s.node for s in self._slots.values() if s.status == _TIMED_OUT)

    @property
    def late(self) -> tuple[str, ...]:
        """The timed-out nodes that replied afterwards (not counted), in the order asked."""
        return tuple(s.node for s in self._slots.values() if s.late)

    def deadline(self) -> float | None:
        """When `on_timer` must next be called, or `None` (not started, or closed).

        The coordinator's one timer channel: poll it after every input. Cost: O(1) (each input
        recomputes it, in O(n)).
        """
        return self._deadline

    # -- inputs ------------------------------------------------------------------------------

    def _begin(self, event: CoordinatorEvent, now: object) -> float:
        """Check that `event` is allowed now and that time does not go backwards."""
        if (
            type(now) is float
            and self._now <= now < _INF
            and (self._state is _WAITING or self._state is _DRAINING)
            and event is not _START
        ):
            return now  # the common case: a reply or a timer while running
        if (self._state, event) not in self._TABLE:
            if self._state is CoordinatorState.CLOSED:
                raise LocalProtocolError(f"the {self._KIND} coordinator is closed")
            if self._state is CoordinatorState.IDLE:
                raise LocalProtocolError(
                    f"the {self._KIND} coordinator has not been started: call start(now) first"
                )
            raise LocalProtocolError(
                f"the {self._KIND} coordinator was already started"
                if event is CoordinatorEvent.START
                else f"{event.value} is not allowed in state {self._state.value}"
            )
        t = check_time(now, "now")
        if t < self._now:
            raise LocalProtocolError(f"time went backwards: now={t} < {self._now}")
        return t

    def _check_sender(self, sender: object, reply: object) -> _Slot[S]:
        node = sender if type(sender) is str else check_node_id(sender, "sender")
        slot = self._slots.get(node)
        if slot is None:
            raise RemoteProtocolError(f"{node!r} replied but was never asked for {self._key!r}")
        if slot.status != _PENDING and (slot.status != _TIMED_OUT or slot.late):
            raise RemoteProtocolError(f"{node!r} replied twice for {self._key!r}: {reply!r}")
        return slot

    def _timer_input(self, now: float) -> list[Any]:
        t = self._begin(CoordinatorEvent.DEADLINE, now)
        self._now = t
        effects: list[Any] = []  # the subclass's effect union
        self._fire_timers(t, effects)
        self._update_deadline()
        return effects

    # -- machinery ---------------------------------------------------------------------------

    def _move(self, event: CoordinatorEvent) -> None:
        self._state = self._TABLE[self._state, event]

    def _fire_timers(self, t: float, effects: list[object]) -> None:
        at = self._deadline  # as of the end of the previous input
        if at is not None and t < at:
            return  # nothing is due
        while self._state is _WAITING or self._state is _DRAINING:
            due: _Slot[S] | None = None
            for slot in self._slots.values():
                if (
                    slot.status == _PENDING
                    and slot.deadline <= t
                    and slot.deadline < self._expires
                    and (due is None or slot.deadline < due.deadline)
                ):
                    due = slot
            if due is None:
                if self._expires <= t:
                    self._on_deadline(effects)
                return
            self._settle(due, _TIMED_OUT)
            self._move(CoordinatorEvent.REPLICA_TIMEOUT)
            self._after_failure(due, t, effects)
            self._decide(effects)

    def _update_deadline(self) -> None:
        """Recompute `deadline()` at the end of an input: the earliest pending timer."""
        if self._state is _WAITING or self._state is _DRAINING:
            at = self._expires
            for slot in self._slots.values():
                if slot.status == _PENDING and slot.deadline < at:
                    at = slot.deadline
            self._deadline = at
        else:
            self._deadline = None

    def _settle(self, slot: _Slot[S], status: int) -> None:
        """Record what became of a pending replica."""
        slot.status = status
        if status == _TIMED_OUT:
            self._timeouts += 1
        self._pending -= 1
        if slot.counts:
            self._live -= 1
            if slot.hint is None:
                self._live_primaries -= 1

    def _count(self, slot: _Slot[S]) -> None:
        """Count a reply toward the quorum (the caller checked that it counts)."""
        self._have += 1
        if slot.hint is None:
            self._have_primaries += 1

    def _decide(self, effects: list[object]) -> None:
        """Complete when the quorum is reached or impossible; close when settled."""
        if self._state is _WAITING:
            required, primaries = self._need, self._need_primaries
            if self._have >= required and self._have_primaries >= primaries:
                self._move(CoordinatorEvent.QUORUM_REACHED)
                self._result_value = self._success()
                effects.append(Complete(self._result_value))
            elif (
                self._have + self._live < required
                or self._have_primaries + self._live_primaries < primaries
            ):
                self._move(CoordinatorEvent.QUORUM_IMPOSSIBLE)
                self._result_value = self._unavailable(self._have, required)
                effects.append(Complete(self._result_value))
        if self._state is _DRAINING and self._pending == 0:
            self._move(CoordinatorEvent.SETTLED)
            self._on_close(effects)

    def _on_deadline(self, effects: list[object]) -> None:
        for slot in self._slots.values():
            if slot.status == _PENDING:
                self._settle(slot, _TIMED_OUT)
        if self._state is _St.WAITING:
            self._result_value = self._unavailable(self._have, self._required())
            effects.append(Complete(self._result_value))
        self._move(CoordinatorEvent.DEADLINE)
        self._on_close(effects)

    def _unavailable(self, have: int, required: int) -> Unavailable:
        answered = self._counted()
        primaries = self._counted_primaries()
        need = self._required_primaries()
        verb = "acknowledgements" if self._KIND == "put" else "answers"
        shown = ", ".join(sorted(answered)) or "none"
        message = (
            f"{self._KIND} of {_shown(self._key)} needed {required} {verb} from distinct replicas "
            f"and got {have} (from: {shown})"
        )
        if need:
            name = "pw" if self._KIND == "put" else "pr"
            message += (
                f"; {name}={need} of them from primaries, got {len(primaries)} "
                f"(primaries: {', '.join(sorted(primaries)) or 'none'})"
            )
        return Unavailable(
            message,
            required=required,
            answered=answered,
            primaries=primaries,
            required_primaries=need,
        )

    def _ask(self, node: str, hint: str | None, t: float, timeout: float) -> _Slot[S]:
        counts = node in self._primaries or self._fallbacks_count()
        slot: _Slot[S] = _Slot(node, hint, counts, t + timeout)
        self._slots[node] = slot
        self._pending += 1
        if counts:
            self._live += 1
            if hint is None:
                self._live_primaries += 1
        return slot

    def _initial(self, limit: int) -> list[tuple[str, str | None]]:
        """The first `limit` candidates, each with the primary it stands in for."""
        chosen = self._candidates[:limit]
        if chosen == self._primaries:  # the common case: every primary is up
            return [(node, None) for node in chosen]
        missing = [p for p in self._primaries if p not in self._candidates]
        out: list[tuple[str, str | None]] = []
        for node in chosen:
            if node in self._primaries:
                out.append((node, None))
            else:
                out.append((node, missing.pop(0)))
        return out

    def _check_invariants(self) -> None:
        """Check the internal invariants (tests call this after every input)."""
        assert self._state in _St
        slots = list(self._slots.values())
        assert len({s.node for s in slots}) == len(slots)
        assert all(s.node in self._candidates for s in slots)
        used = set(self._candidates[: self._next])
        assert {s.node for s in slots} == used, "the asked nodes are exactly the used candidates"
        pending = [s for s in slots if s.status == _PENDING]
        assert self._pending == len(pending) <= self._policy.n
        assert self._live == sum(1 for s in pending if s.counts)
        assert self._live_primaries == sum(1 for s in pending if s.counts and s.hint is None)
        assert self._have == self._recount()
        assert self._have_primaries == len(self._counted_primaries())
        assert self._timeouts == len(self.timed_out)
        assert (self._need, self._need_primaries) == (self._required(), self._required_primaries())
        for s in slots:
            assert (s.hint is None) == (s.node in self._primaries), s.node
            assert s.hint is None or s.hint in self._primaries
            assert not s.late or s.status == _TIMED_OUT
        if self._state is _St.IDLE:
            assert not slots
            assert self._result_value is None
        elif self._state is _St.WAITING:
            assert self._result_value is None
            need, have_p = self._required_primaries(), self._have_primaries
            assert self._have < self._required() or have_p < need, "not decided yet"
            assert self._required() <= self._have + self._live
            assert need <= have_p + self._live_primaries
            assert self.deadline() is not None
        elif self._state is _St.DRAINING:
            assert self._result_value is not None
            assert self._pending > 0
        else:
            assert self._result_value is not None
            assert self._pending == 0
            assert self.deadline() is None

    # -- hooks ---------------------------------------------------------------------------------

    def _fallbacks_count(self) -> bool:
        raise NotImplementedError

    def _required(self) -> int:
        """The quorum: `w` or `r`."""
        raise NotImplementedError

    def _required_primaries(self) -> int:
        """How many of the quorum must be primaries: `pw` or `pr`."""
        raise NotImplementedError

    def _counted_primaries(self) -> list[str]:
        """The counted replies from primaries (nodes asked without a hint)."""
        return [node for node in self._counted() if self._slots[node].hint is None]

    def _recount(self) -> int:
        """Count the replies that count toward the quorum, from scratch (for the checks)."""
        raise NotImplementedError

    def _counted(self) -> list[str]:
        raise NotImplementedError

    def _success(self) -> object:
        raise NotImplementedError

    def _after_failure(self, slot: _Slot[S], t: float, effects: list[object]) -> None:
        raise NotImplementedError

    def _on_close(self, effects: list[object]) -> None:
        raise NotImplementedError


def _check_reply(
    sender: object, reply: object, allowed: tuple[type, ...], other: type, kind: str
) -> None:
    if not isinstance(reply, allowed):
        if isinstance(reply, other):
            raise RemoteProtocolError(f"{sender!r} answered a {kind} request with {reply!r}")
        names = " or ".join(t.__name__ for t in allowed)
        raise TypeError(f"reply must be {names}, not {type(reply).__name__}")


def _rows(*rows: tuple[_St, _Ev, _St, str]) -> tuple[Transition, ...]:
    return tuple(Transition(*row) for row in rows)


class PutCoordinator(_Coordinator[S]):
    """Coordinates one write: store `state` on `w` distinct replicas out of `n`.

    The coordinator sends the state to the first `n` candidates (the live primaries, then
    fallbacks standing in for the primaries believed down). When a replica refuses or does not
    answer within `replica_timeout`, the next unused candidate takes its place, and the request
    names the primary it stands in for (the hint). Each physical node is asked at most once and
    its acknowledgement counts once.

    The write **succeeds** at `w` counted acknowledgements of which at least `pw` come from
    primaries (Riak's PW). It **fails** with [`Unavailable`][dynamo_core.errors.Unavailable] as
    soon as that has become impossible — the counted acknowledgements plus the replicas still
    pending that would count fall below `w`, or the primaries' fall below `pw` (a fallback
    never stands in for a primary's share) — or when the overall deadline passes first. When
    too few candidates or primaries exist from the start, it fails in `start` before sending
    anything. Under ``sloppy=False`` only the primaries' acknowledgements count (fallbacks
    still get hinted copies), except with `write_any`.

    After the outcome the coordinator keeps placing copies (it still replaces failed replicas)
    until every replica asked has answered, refused or timed out, or the deadline passes; then it
    closes.

    Examples:
        >>> from dynamo_core import DVVSet
        >>> state = DVVSet().update(b"1 book", "a")
        >>> put = PutCoordinator(QuorumPolicy(3, 2, 2), "k", ["a", "b", "c", "d"], state)
        >>> [type(e).__name__ for e in put.start(0.0)]
        ['SendStore', 'SendStore', 'SendStore']
        >>> put.deadline()  # b's replica timeout: call on_timer then, unless it answers
        0.25
        >>> put.receive("a", Stored(), 0.01)
        []
        >>> put.receive("c", Stored(), 0.02)
        [Complete(result=PutResult(acked=('a', 'c'), hinted=()))]

    Args:
        policy: The quorum policy.
        key: The key written (echoed in the requests).
        candidates: The key's nodes in ring order, minus those believed down
            (``ring.walk(key)`` filtered); the first `n` are asked, the rest are fallbacks.
        state: The new state to store (for a [`DVVSet`][dynamo_core.DVVSet], the result of
            `update` at the coordinating node).
        preference_list: The key's primaries (``ring.preference_list(key)``), so a fallback
            asked at the start can name the primary it stands in for. Defaults to the first `n`
            candidates (no primary believed down).
        w: Per-request write quorum, a count or a level (overrides ``policy.w``).
        pw: Per-request primaries among the acknowledgements (overrides ``policy.pw``).
        timeout: Overall time budget in seconds, from `start`.
        replica_timeout: How long one replica may take before a fallback replaces it; defaults
            to a quarter of `timeout`. At most `timeout`.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: An argument is out of range, `candidates` repeat a node, or
            `preference_list` does not agree with `candidates`.
    """

    __slots__ = ("_replica_timeout", "_timeout", "_value")

    _KIND = "put"
    TRANSITIONS: ClassVar[tuple[Transition, ...]] = _rows(
        (_St.IDLE, _Ev.START, _St.WAITING, "send the state to the first n candidates"),
        (_St.WAITING, _Ev.REPLY, _St.WAITING, "count the acknowledgement once per node"),
        (_St.WAITING, _Ev.LATE_REPLY, _St.WAITING, "record it; it does not count"),
        (_St.WAITING, _Ev.REFUSAL, _St.WAITING, "ask the next candidate, naming the primary"),
        (
            _St.WAITING,
            _Ev.REPLICA_TIMEOUT,
            _St.WAITING,
            "ask the next candidate, naming the primary",
        ),
        (_St.WAITING, _Ev.QUORUM_REACHED, _St.DRAINING, "complete with PutResult (w, pw met)"),
        (_St.WAITING, _Ev.QUORUM_IMPOSSIBLE, _St.DRAINING, "complete with Unavailable"),
        (_St.WAITING, _Ev.DEADLINE, _St.CLOSED, "complete with Unavailable"),
        (_St.DRAINING, _Ev.REPLY, _St.DRAINING, "record the acknowledgement"),
        (_St.DRAINING, _Ev.LATE_REPLY, _St.DRAINING, "record it"),
        (_St.DRAINING, _Ev.REFUSAL, _St.DRAINING, "ask the next candidate"),
        (_St.DRAINING, _Ev.REPLICA_TIMEOUT, _St.DRAINING, "ask the next candidate"),
        (_St.DRAINING, _Ev.SETTLED, _St.CLOSED, "close"),
        (_St.DRAINING, _Ev.DEADLINE, _St.CLOSED, "give up on the rest; close"),
    )
    _TABLE = _index(TRANSITIONS)

    def __init__(
        self,
        policy: QuorumPolicy,
        key: Key,
        candidates: Sequence[str],
        state: S,
        *,
        preference_list: Sequence[str] | None = None,
        w: int | ConsistencyLevel | None = None,
        pw: int | ConsistencyLevel | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        replica_timeout: float | None = None,
    ) -> None:
        if not isinstance(policy, QuorumPolicy):
            raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
        if not (hasattr(state, "sync") and hasattr(state, "descends")):
            raise TypeError(
                f"state must be a ReplicaState (sync, descends), not {type(state).__name__}"
            )
        super().__init__(policy.override(w=w, pw=pw), key, candidates, preference_list)
        self._value = state
        self._timeout = check_positive_float(timeout, "timeout")
        if replica_timeout is None:
            self._replica_timeout = self._timeout / 4
        else:
            self._replica_timeout = check_positive_float(replica_timeout, "replica_timeout")
            if self._replica_timeout > self._timeout:
                raise ValueError(
                    f"replica_timeout must be at most timeout={self._timeout}, "
                    f"got {replica_timeout}"
                )

    @classmethod
    def _trusted(  # noqa: PLR0917 - the constructor's arguments, already checked
        cls,
        policy: QuorumPolicy,
        key: Key,
        candidates: tuple[str, ...],
        primaries: tuple[str, ...],
        state: S,
        timeout: float,
        replica_timeout: float,
    ) -> PutCoordinator[S]:
        """A coordinator built from values its caller has checked, without checking them again.

        A node's: candidates and primaries from its ring, timeouts from its config, a key it
        checked, a state it made.
        """
        coordinator: PutCoordinator[S] = _new(cls)
        coordinator._setup(policy, key, candidates, primaries)
        coordinator._value = state
        coordinator._timeout = timeout
        coordinator._replica_timeout = replica_timeout
        return coordinator

    @property
    def value(self) -> S:
        """The state being written."""
        return self._value

    @property
    def result(self) -> PutResult | Unavailable | None:
        """The outcome once known (from the `Complete` effect on), else `None`."""
        return cast("PutResult | Unavailable | None", self._result_value)

    @property
    def acked(self) -> tuple[str, ...]:
        """Every node that acknowledged in time so far (counted or not), in the order asked."""
        return tuple(s.node for s in self._slots.values() if s.status == _ANSWERED)

    def start(self, now: float) -> list[PutEffect[S]]:
        """Send the state to the first `n` candidates.

        Cost: O(n + len(candidates)).

        Args:
            now: The current time, in seconds.

        Returns:
            A `SendStore` per replica — or, when fewer than `w` of them could ever count, only
            `Complete` with `Unavailable` (nothing is sent).

        Raises:
            LocalProtocolError: Already started.
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
        """
        t = self._begin(CoordinatorEvent.START, now)
        self._now = t
        self._expires = t + self._timeout
        self._move(CoordinatorEvent.START)
        plan = self._initial(self._policy.n)
        primaries = sum(1 for _, hint in plan if hint is None)
        could = len(plan) if self._fallbacks_count() else primaries
        effects: list[Any] = []  # the subclass's effect union
        if could < self._policy.w or primaries < self._policy.pw:
            self._decide(effects)  # QUORUM_IMPOSSIBLE, then SETTLED: nothing was sent
            return effects
        for node, hint in plan:
            self._ask(node, hint, t, self._replica_timeout)
            effects.append(SendStore(node, self._key, self._value, hint))
        self._next = len(plan)
        self._decide(effects)
        self._update_deadline()
        return effects

    def receive(self, sender: str, reply: Stored | Refused, now: float) -> list[PutEffect[S]]:
        """Handle a replica's reply to its store request.

        Timers due at or before `now` are handled first, so a reply at or after its replica's
        timeout is late (recorded, not counted) and a reply at or after the overall deadline is
        dropped.

        Cost: O(n).

        Args:
            sender: The replying node.
            reply: `Stored` or `Refused`.
            now: The current time, in seconds.

        Returns:
            The effects: possibly a `SendStore` to a replacement, `Complete`.

        Raises:
            LocalProtocolError: Not started, closed, or `now` is earlier than a previous input.
            RemoteProtocolError: `sender` was never asked or already replied, or `reply` is a
                reply to another kind of request. The coordinator is unchanged.
            TypeError: An argument has the wrong type.
        """
        t = self._begin(CoordinatorEvent.REPLY, now)
        if type(reply) is not Stored:
            _check_reply(sender, reply, (Stored, Refused), Fetched, "store")
        slot = self._check_sender(sender, reply)
        self._now = t
        effects: list[Any] = []  # the subclass's effect union
        at = self._deadline
        if at is None or t >= at:  # a timer is due (`_fire_timers` would return at once)
            self._fire_timers(t, effects)
        if self._state is not _CLOSED:
            if slot.status == _TIMED_OUT:
                slot.late = True
                self._move(CoordinatorEvent.LATE_REPLY)
            elif isinstance(reply, Stored):
                self._settle(slot, _ANSWERED)
                if slot.counts:
                    self._count(slot)
                self._move(CoordinatorEvent.REPLY)
            else:
                self._settle(slot, _REFUSED)
                self._move(CoordinatorEvent.REFUSAL)
                self._after_failure(slot, t, effects)
            self._decide(effects)
        self._update_deadline()
        return effects

    def on_timer(self, now: float) -> list[PutEffect[S]]:
        """Handle every timer due at or before `now` (see `deadline()`).

        Calling it early is harmless: nothing is due and no effects are returned.

        Cost: O(n) per timer handled.

        Args:
            now: The current time, in seconds; never earlier than the previous input's.

        Returns:
            The effects: replacements' `SendStore`s, `Complete`.

        Raises:
            LocalProtocolError: Not started, closed, or `now` is earlier than a previous input.
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
        """
        return self._timer_input(now)

    # -- hooks -------------------------------------------------------------------------------

    def _fallbacks_count(self) -> bool:
        return self._policy.sloppy or self._policy.write_any

    def _counted(self) -> list[str]:
        return [s.node for s in self._slots.values() if s.status == _ANSWERED and s.counts]

    def _required(self) -> int:
        return self._policy.w

    def _required_primaries(self) -> int:
        return self._policy.pw

    def _recount(self) -> int:
        return len(self._counted())

    def _success(self) -> PutResult:
        hinted = sorted(
            (s.node, s.hint)
            for s in self._slots.values()
            if s.status == _ANSWERED and s.hint is not None
        )
        return PutResult(tuple(sorted(self._counted())), tuple(hinted))

    def _after_failure(self, slot: _Slot[S], t: float, effects: list[object]) -> None:
        if self._next >= len(self._candidates) or t >= self._expires:
            return  # no fallback left, or a timer handled so late that the request is over
        node = self._candidates[self._next]
        self._next += 1
        # Every live primary was asked at the start, so `node` is a fallback.
        hint = slot.hint if slot.hint is not None else slot.node
        self._ask(node, hint, t, self._replica_timeout)
        effects.append(SendStore(node, self._key, self._value, hint))

    def _on_close(self, effects: list[object]) -> None:
        return


class GetCoordinator(_Coordinator[S]):
    """Coordinates one read: collect `r` answers, merge them, and repair stale replicas.

    The coordinator asks the first `n` candidates (with ``sloppy=False``, only the live
    primaries). It **completes** at `r` counted answers, at least `pr` of them from primaries
    (Riak's PR), with the merge (``sync``) of the states answered so far — a "not found" counts
    as an answer when `notfound_ok` — and **fails** with
    [`Unavailable`][dynamo_core.errors.Unavailable] as soon as that has become impossible, or at
    the deadline. A read does not replace failed replicas (a fallback that never saw the
    key would only answer "not found").

    After completing it keeps collecting until every replica asked has answered, refused or
    timed out (or the deadline passes), then emits **read repair**: the merge of every answer to
    each replica that answered an older or concurrent state, or "not found" — exactly the
    replicas whose answer does not descend the merge. Replicas that refused or never answered
    are not repaired (their state is unknown).

    Args:
        policy: The quorum policy.
        key: The key read (echoed in the requests).
        candidates: The key's nodes in ring order minus those believed down.
        preference_list: The key's primaries; see
            [`PutCoordinator`][dynamo_core.quorum.PutCoordinator].
        r: Per-request read quorum, a count or a level (overrides ``policy.r``).
        notfound_ok: Per-request override of ``policy.notfound_ok``.
        pr: Per-request primaries among the answers (overrides ``policy.pr``).
        timeout: Overall time budget in seconds, from `start`; a replica that has not answered
            by then is given up.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: An argument is out of range, `candidates` repeat a node, or
            `preference_list` does not agree with `candidates`.
    """

    __slots__ = ("_merged", "_repaired", "_timeout")

    _KIND = "get"
    TRANSITIONS: ClassVar[tuple[Transition, ...]] = _rows(
        (_St.IDLE, _Ev.START, _St.WAITING, "ask the first n candidates"),
        (_St.WAITING, _Ev.REPLY, _St.WAITING, "keep the answer"),
        (_St.WAITING, _Ev.REFUSAL, _St.WAITING, "stop waiting for it"),
        (_St.WAITING, _Ev.QUORUM_REACHED, _St.DRAINING, "complete with the merge (r, pr met)"),
        (_St.WAITING, _Ev.QUORUM_IMPOSSIBLE, _St.DRAINING, "complete with Unavailable"),
        (_St.WAITING, _Ev.DEADLINE, _St.CLOSED, "complete with Unavailable; read repair"),
        (_St.DRAINING, _Ev.REPLY, _St.DRAINING, "keep the answer"),
        (_St.DRAINING, _Ev.REFUSAL, _St.DRAINING, "stop waiting for it"),
        (_St.DRAINING, _Ev.SETTLED, _St.CLOSED, "read repair to the stale replicas"),
        (_St.DRAINING, _Ev.DEADLINE, _St.CLOSED, "read repair to the stale replicas"),
    )
    _TABLE = _index(TRANSITIONS)

    def __init__(
        self,
        policy: QuorumPolicy,
        key: Key,
        candidates: Sequence[str],
        *,
        preference_list: Sequence[str] | None = None,
        r: int | ConsistencyLevel | None = None,
        notfound_ok: bool | None = None,
        pr: int | ConsistencyLevel | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(policy, QuorumPolicy):
            raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
        super().__init__(
            policy.override(r=r, notfound_ok=notfound_ok, pr=pr), key, candidates, preference_list
        )
        self._timeout = check_positive_float(timeout, "timeout")
        self._repaired: tuple[str, ...] = ()
        self._merged: S | None = None  # the merge of every state answered in time so far

    @classmethod
    def _trusted(
        cls,
        policy: QuorumPolicy,
        key: Key,
        candidates: tuple[str, ...],
        primaries: tuple[str, ...],
        timeout: float,
    ) -> GetCoordinator[S]:
        """A coordinator built from values its caller has checked (see `PutCoordinator`)."""
        coordinator: GetCoordinator[S] = _new(cls)
        coordinator._setup(policy, key, candidates, primaries)
        coordinator._timeout = timeout
        coordinator._repaired = ()
        coordinator._merged = None
        return coordinator

    @property
    def result(self) -> GetResult[S] | Unavailable | None:
        """The outcome once known (from the `Complete` effect on), else `None`."""
        return cast("GetResult[S] | Unavailable | None", self._result_value)

    @property
    def answered(self) -> tuple[str, ...]:
        """Every node that answered in time so far (counted or not), in the order asked."""
        return tuple(s.node for s in self._slots.values() if s.status == _ANSWERED)

    @property
    def repaired(self) -> tuple[str, ...]:
        """The nodes sent read repair, in the order asked (empty until closed)."""
        return self._repaired

    def merged(self) -> S | None:
        """The merge of every state answered in time so far, or `None` if none was found.

        It is kept up to date as answers arrive (one `sync` per answer). Cost: O(1).
        """
        return self._merged

    def start(self, now: float) -> list[GetEffect[S]]:
        """Ask the first `n` candidates (the live primaries only, when not sloppy).

        Cost: O(n + len(candidates)).

        Args:
            now: The current time, in seconds.

        Returns:
            A `SendFetch` per replica — or, when fewer than `r` replicas can be asked, only
            `Complete` with `Unavailable` (nothing is sent).

        Raises:
            LocalProtocolError: Already started.
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
        """
        t = self._begin(CoordinatorEvent.START, now)
        self._now = t
        self._expires = t + self._timeout
        self._move(CoordinatorEvent.START)
        plan = self._initial(self._policy.n)
        if not self._policy.sloppy:
            plan = [(node, hint) for node, hint in plan if hint is None]
        effects: list[Any] = []  # the subclass's effect union
        primaries = sum(1 for _, hint in plan if hint is None)
        if len(plan) >= self._policy.r and primaries >= self._policy.pr:
            for node, hint in plan:
                self._ask(node, hint, t, self._timeout)
                effects.append(SendFetch(node, self._key, hint))
            self._next = len(plan)  # a prefix of the candidates; a read never asks further
        self._decide(effects)
        self._update_deadline()
        return effects

    def receive(self, sender: str, reply: Fetched[S] | Refused, now: float) -> list[GetEffect[S]]:
        """Handle a replica's answer to its fetch request.

        Timers due at or before `now` are handled first (see
        [`PutCoordinator.receive`][dynamo_core.quorum.PutCoordinator.receive]).

        Cost: O(n), plus O(n) merges and `descends` checks when the request closes.

        Args:
            sender: The replying node.
            reply: `Fetched` (``state=None`` for not found) or `Refused`.
            now: The current time, in seconds.

        Returns:
            The effects: possibly `Complete`, `SendRepair`s (when the request closes).

        Raises:
            LocalProtocolError: Not started, closed, or `now` is earlier than a previous input.
            RemoteProtocolError: `sender` was never asked or already replied, or `reply` is a
                reply to another kind of request. The coordinator is unchanged.
            TypeError: An argument has the wrong type.
        """
        t = self._begin(CoordinatorEvent.REPLY, now)
        if type(reply) is not Fetched:
            _check_reply(sender, reply, (Fetched, Refused), Stored, "fetch")
        slot = self._check_sender(sender, reply)
        self._now = t
        effects: list[Any] = []  # the subclass's effect union
        at = self._deadline
        if at is None or t >= at:  # a timer is due (`_fire_timers` would return at once)
            self._fire_timers(t, effects)
        if self._state is not _CLOSED:  # a read's replicas time out only at the deadline
            merged = self._merged
            if isinstance(reply, Fetched) and reply.state is not None and merged is not None:
                try:
                    merged = merged.sync(reply.state)
                except DotCollision:  # a reused writer identity: this answer cannot count
                    reply = Refused("its state holds a dot another replica holds with a new value")
            if isinstance(reply, Fetched):
                self._settle(slot, _ANSWERED)
                slot.state = found = reply.state
                if found is not None:
                    self._merged = found if merged is None else merged
                if self._counts_answer(slot):
                    self._count(slot)
                self._move(CoordinatorEvent.REPLY)
            else:
                self._settle(slot, _REFUSED)
                self._move(CoordinatorEvent.REFUSAL)
            self._decide(effects)
        self._update_deadline()
        return effects

    def on_timer(self, now: float) -> list[GetEffect[S]]:
        """Handle every timer due at or before `now` (see `deadline()`).

        Calling it early is harmless: nothing is due and no effects are returned.

        Cost: O(n) per timer handled.

        Args:
            now: The current time, in seconds; never earlier than the previous input's.

        Returns:
            The effects: `Complete`, `SendRepair`s.

        Raises:
            LocalProtocolError: Not started, closed, or `now` is earlier than a previous input.
            TypeError: `now` is not a number.
            ValueError: `now` is negative or not finite.
        """
        return self._timer_input(now)

    # -- hooks -------------------------------------------------------------------------------

    def _fallbacks_count(self) -> bool:
        return self._policy.sloppy

    def _counts_answer(self, slot: _Slot[S]) -> bool:
        return slot.counts and (slot.state is not None or self._policy.notfound_ok)

    def _counted(self) -> list[str]:
        return [
            s.node for s in self._slots.values() if s.status == _ANSWERED and self._counts_answer(s)
        ]

    def _required(self) -> int:
        return self._policy.r

    def _required_primaries(self) -> int:
        return self._policy.pr

    def _recount(self) -> int:
        return len(self._counted())

    def _success(self) -> GetResult[S]:
        not_found = sorted(
            s.node for s in self._slots.values() if s.status == _ANSWERED and s.state is None
        )
        return GetResult(self.merged(), tuple(sorted(self._counted())), tuple(not_found))

    def _after_failure(self, slot: _Slot[S], t: float, effects: list[object]) -> None:
        return

    def _on_close(self, effects: list[object]) -> None:
        merged = self.merged()
        if merged is None:
            return
        stale: list[str] = []
        for slot in self._slots.values():
            if slot.status == _ANSWERED and (slot.state is None or not slot.state.descends(merged)):
                stale.append(slot.node)
                effects.append(SendRepair(slot.node, self._key, merged, slot.hint))
        self._repaired = tuple(stale)
