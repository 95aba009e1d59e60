"""A tiny in-process harness for the quorum coordinators, and a minimal replica state.

[`QuorumHarness`][dynamo_core.testing.QuorumHarness] wires
[`PutCoordinator`][dynamo_core.quorum.PutCoordinator] and
[`GetCoordinator`][dynamo_core.quorum.GetCoordinator] to in-memory replicas over a simulated
network in **virtual time**: every message gets a delay (random from a seeded generator, or
scripted per node), and messages can be dropped, requests refused and nodes silenced. The same
seed gives the same run, byte for byte. Use it to test your own policies and replica states
without a network::

    harness = QuorumHarness(["a", "b", "c", "d"], policy=QuorumPolicy(3, 2, 3), seed=1)
    harness.script("b", silent=True)             # b has crashed: it never answers
    result = harness.put("cart", DotSet.of(("client", 1)))
    assert result.hinted == (("d", "b"),)        # d stood in for b and holds a hint
    harness.run()                                # deliver whatever is still in flight

[`DotSet`][dynamo_core.testing.DotSet] is the smallest state that satisfies
[`ReplicaState`][dynamo_core.interfaces.ReplicaState]: a grow-only set of ``(node, counter)``
dots, merged by union. It keeps every write, so a test can ask exactly which writes a replica or
a read has seen.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

import attrs

from dynamo_core import codec
from dynamo_core._check import check_node_id, check_positive_float, check_time
from dynamo_core.errors import DecodeError, Unavailable
from dynamo_core.interfaces import ReplicaState
from dynamo_core.quorum import (
    DEFAULT_TIMEOUT,
    Complete,
    ConsistencyLevel,
    CoordinatorState,
    Fetched,
    GetCoordinator,
    GetResult,
    Key,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)

__all__ = ["Behaviour", "DotSet", "QuorumHarness"]

S = TypeVar("S", bound=ReplicaState)

_MAX_DOTS = 100_000


def _check_dots(
    _instance: object, attribute: attrs.Attribute[frozenset[tuple[str, int]]], value: object
) -> None:
    if type(value) is not frozenset:
        raise TypeError(f"{attribute.name} must be a frozenset, not {type(value).__name__}")
    for dot in value:
        if not (isinstance(dot, tuple) and len(dot) == 2):
            raise TypeError(f"{attribute.name} must hold (node, counter) pairs, got {dot!r}")
        check_node_id(dot[0], "dot node")
        if type(dot[1]) is not int or not 0 <= dot[1] <= codec.MAX_COUNTER:
            raise ValueError(f"dot counter must be an int in 0..2**63-1, got {dot[1]!r}")


@attrs.frozen
class DotSet:
    """A grow-only set of ``(node, counter)`` dots: the smallest lawful replica state.

    `sync` is set union and ``a.descends(b)`` is ``a ⊇ b``, so it satisfies every law of
    [`ReplicaState`][dynamo_core.interfaces.ReplicaState]. A write is a new dot; a state that
    descends a write has seen it.

    Examples:
        >>> a = DotSet.of(("x", 1))
        >>> b = DotSet.of(("y", 1))
        >>> a.sync(b).descends(a), a.descends(b)
        (True, False)

    Attributes:
        dots: The dots.
    """

    dots: frozenset[tuple[str, int]] = attrs.field(default=frozenset(), validator=_check_dots)

    @classmethod
    def of(cls, *dots: tuple[str, int]) -> DotSet:
        """Return the set of the given dots.

        Raises:
            TypeError: A dot is not a ``(str, int)`` pair.
            ValueError: A node id or counter is out of range.
        """
        return cls(frozenset(dots))

    def sync(self, other: DotSet) -> DotSet:
        """Return the union of both sets. Cost: O(len(self) + len(other))."""
        if self.dots >= other.dots:
            return self
        return DotSet(self.dots | other.dots)

    def descends(self, other: DotSet) -> bool:
        """Whether every dot of `other` is in this set. Cost: O(len(other))."""
        return self.dots >= other.dots

    def sorted(self) -> list[tuple[str, int]]:
        """The dots in sorted order."""
        return sorted(self.dots)

    def __len__(self) -> int:
        return len(self.dots)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as ``{"type": "DotSet", "v": 1, "dots": [[node, counter], ...]}`` (sorted)."""
        return codec.envelope("DotSet", {"dots": [[node, c] for node, c in self.sorted()]})

    @classmethod
    def from_dict(cls, data: object) -> DotSet:
        """Decode what [`to_dict`][dynamo_core.testing.DotSet.to_dict] produced.

        Raises:
            DecodeError: `data` is not a valid encoded `DotSet` (at most 100,000 dots).
        """
        obj = codec.open_envelope(data, "DotSet", required=("dots",))
        items = codec.as_list(obj["dots"], "DotSet.dots", max_items=_MAX_DOTS)
        dots = []
        for i, item in enumerate(items):
            pair = codec.as_list(item, f"DotSet.dots[{i}]", max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"DotSet.dots[{i}] must be a [node, counter] pair")
            node = codec.as_str(pair[0], f"DotSet.dots[{i}][0]", max_len=255)
            counter = codec.as_int(pair[1], f"DotSet.dots[{i}][1]")
            dots.append((node, counter))
        if len(set(dots)) != len(dots):
            raise DecodeError("DotSet.dots has a repeated dot")
        return cls(frozenset(dots))


@attrs.frozen
class Behaviour:
    """How one node behaves in a [`QuorumHarness`][dynamo_core.testing.QuorumHarness].

    Attributes:
        delay: A fixed one-way delay, in seconds, for every message to and from the node;
            `None` uses the harness's random delay.
        refuse: The node refuses every request.
        silent: The node never answers and ignores repairs (crashed or cut off).
    """

    delay: float | None = attrs.field(default=None)
    refuse: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    silent: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @delay.validator
    def _check_delay(self, _attribute: attrs.Attribute[float | None], value: object) -> None:
        if value is not None:
            check_time(value, "delay")


_Walk = Callable[[Key], Iterable[str]]


class QuorumHarness(Generic[S]):
    """In-memory replicas, a simulated network in virtual time, and the quorum coordinators.

    Each `put`/`get` builds a coordinator for the key's candidates (``walk(key)`` minus the
    nodes marked with `suspect`), starts it at the current virtual time and runs the event
    queue until the request has an outcome, which it returns. Messages still in flight —
    stores to slow replicas, read repairs — stay queued: later operations see them arrive at
    their time, and [`run`][dynamo_core.testing.QuorumHarness.run] delivers them all.

    Each replica keeps, per key, the merge (``sync``) of every state it received, and records
    the hints it holds as ``(key, primary)``.

    Args:
        nodes: The cluster's nodes.
        policy: The quorum policy for every request (per-request overrides are options of
            `put` and `get`).
        walk: The key's nodes in ring order, preference list first (pass ``ring.walk``);
            by default every key walks `nodes` in the given order.
        seed: Seeds the network's random generator (delays, drops, refusals).
        min_delay: The shortest random one-way delay, in seconds.
        max_delay: The longest random one-way delay, in seconds.
        drop_rate: The probability that a message (request or reply) is lost.
        refuse_rate: The probability that a replica refuses a request.
        timeout: The coordinators' overall timeout.
        replica_timeout: The put coordinator's per-replica timeout (default: its own default).

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range, or `nodes` repeat a node.
    """

    __slots__ = (
        "_behaviour",
        "_drop_rate",
        "_events",
        "_hints",
        "_max_delay",
        "_min_delay",
        "_nodes",
        "_now",
        "_policy",
        "_refuse_rate",
        "_replica_timeout",
        "_replicas",
        "_rng",
        "_seq",
        "_suspected",
        "_timeout",
        "_timers",
        "_walk",
        "trace",
    )

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        policy: QuorumPolicy | None = None,
        walk: _Walk | None = None,
        seed: int = 0,
        min_delay: float = 0.001,
        max_delay: float = 0.010,
        drop_rate: float = 0.0,
        refuse_rate: float = 0.0,
        timeout: float = DEFAULT_TIMEOUT,
        replica_timeout: float | None = None,
    ) -> None:
        names = tuple(check_node_id(node, "nodes[]") for node in nodes)
        if not names or len(set(names)) != len(names):
            raise ValueError("nodes must be a non-empty sequence of distinct node ids")
        self._nodes = names
        self._policy = QuorumPolicy() if policy is None else policy
        if not isinstance(self._policy, QuorumPolicy):
            raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
        self._walk: _Walk = walk if walk is not None else (lambda _key: names)
        if type(seed) is not int:
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._min_delay = check_time(min_delay, "min_delay")
        self._max_delay = check_time(max_delay, "max_delay")
        if self._max_delay < self._min_delay:
            raise ValueError(f"max_delay must be >= min_delay={min_delay}, got {max_delay}")
        self._drop_rate = _probability(drop_rate, "drop_rate")
        self._refuse_rate = _probability(refuse_rate, "refuse_rate")
        self._timeout = check_positive_float(timeout, "timeout")
        self._replica_timeout = (
            None
            if replica_timeout is None
            else check_positive_float(replica_timeout, "replica_timeout")
        )
        self._behaviour: dict[str, Behaviour] = {}
        self._suspected: set[str] = set()
        self._replicas: dict[str, dict[Key, S]] = {node: {} for node in names}
        self._hints: dict[str, set[tuple[Key, str]]] = {node: set() for node in names}
        self._events: list[tuple[float, int, _Event[S]]] = []
        self._seq = 0
        # each coordinator's deadline() when its last timer was scheduled (the open ones only)
        self._timers: dict[PutCoordinator[S] | GetCoordinator[S], float] = {}
        self._now = 0.0
        self.trace: list[str] = []
        """One line per message and timer, in order: the run's deterministic log."""

    # -- configuration ---------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The virtual time, in seconds."""
        return self._now

    @property
    def nodes(self) -> tuple[str, ...]:
        """The cluster's nodes."""
        return self._nodes

    @property
    def policy(self) -> QuorumPolicy:
        """The policy every request uses."""
        return self._policy

    def script(
        self, node: str, *, delay: float | None = None, refuse: bool = False, silent: bool = False
    ) -> None:
        """Set how `node` behaves from now on; with no options, back to the random default.

        Raises:
            ValueError: `node` is not in the cluster, or `delay` is negative.
        """
        self._check_member(node)
        behaviour = Behaviour(delay, refuse, silent)
        if behaviour == Behaviour():
            self._behaviour.pop(node, None)
        else:
            self._behaviour[node] = behaviour

    def suspect(self, node: str) -> None:
        """Believe `node` is down: leave it out of the candidates of later requests.

        Raises:
            ValueError: `node` is not in the cluster.
        """
        self._suspected.add(self._check_member(node))

    def trust(self, node: str) -> None:
        """Believe `node` is up again.

        Raises:
            ValueError: `node` is not in the cluster.
        """
        self._suspected.discard(self._check_member(node))

    def preference_list(self, key: Key) -> tuple[str, ...]:
        """The first `n` nodes of the key's walk (its primaries)."""
        return tuple(self._walk(key))[: self._policy.n]

    def candidates(self, key: Key) -> tuple[str, ...]:
        """The key's walk minus the suspected nodes: what the coordinators are given."""
        return tuple(node for node in self._walk(key) if node not in self._suspected)

    # -- replicas ----------------------------------------------------------------------------

    def state_of(self, node: str, key: Key) -> S | None:
        """What `node` holds for `key`, or `None`."""
        return self._replicas[self._check_member(node)].get(key)

    def load(self, node: str, key: Key, state: S) -> None:
        """Merge `state` into what `node` holds for `key`, bypassing the network."""
        self._apply(self._check_member(node), key, state, None)

    def hints_on(self, node: str) -> list[tuple[Key, str]]:
        """The ``(key, primary)`` hints `node` holds, sorted."""
        return sorted(self._hints[self._check_member(node)], key=lambda kv: (repr(kv[0]), kv[1]))

    # -- requests ----------------------------------------------------------------------------

    def start_put(
        self,
        key: Key,
        state: S,
        *,
        w: int | ConsistencyLevel | None = None,
        timeout: float | None = None,
        replica_timeout: float | None = None,
    ) -> PutCoordinator[S]:
        """Build and start a put coordinator now, without running the network.

        Returns:
            The coordinator; `run` or `run_until_done` drives it.
        """
        put = PutCoordinator(
            self._policy,
            key,
            self.candidates(key),
            state,
            preference_list=self.preference_list(key),
            w=w,
            timeout=self._timeout if timeout is None else timeout,
            replica_timeout=self._replica_timeout if replica_timeout is None else replica_timeout,
        )
        self._dispatch(put, put.start(self._now))
        return put

    def start_get(
        self,
        key: Key,
        *,
        r: int | ConsistencyLevel | None = None,
        notfound_ok: bool | None = None,
        timeout: float | None = None,
    ) -> GetCoordinator[S]:
        """Build and start a get coordinator now, without running the network.

        Returns:
            The coordinator; `run` or `run_until_done` drives it.
        """
        get: GetCoordinator[S] = GetCoordinator(
            self._policy,
            key,
            self.candidates(key),
            preference_list=self.preference_list(key),
            r=r,
            notfound_ok=notfound_ok,
            timeout=self._timeout if timeout is None else timeout,
        )
        self._dispatch(get, get.start(self._now))
        return get

    def put(
        self,
        key: Key,
        state: S,
        *,
        w: int | ConsistencyLevel | None = None,
        timeout: float | None = None,
        replica_timeout: float | None = None,
    ) -> PutResult | Unavailable:
        """Write `state` under `key` and run the network until the write has an outcome.

        Returns:
            The `PutResult`, or the `Unavailable` error (returned, not raised).
        """
        put = self.start_put(key, state, w=w, timeout=timeout, replica_timeout=replica_timeout)
        self.run_until_done(put)
        assert put.result is not None
        return put.result

    def get(
        self,
        key: Key,
        *,
        r: int | ConsistencyLevel | None = None,
        notfound_ok: bool | None = None,
        timeout: float | None = None,
    ) -> GetResult[S] | Unavailable:
        """Read `key` and run the network until the read has an outcome.

        Read repair happens later, when every replica asked has answered or timed out: call
        [`run`][dynamo_core.testing.QuorumHarness.run] to let it land.

        Returns:
            The `GetResult`, or the `Unavailable` error (returned, not raised).
        """
        get = self.start_get(key, r=r, notfound_ok=notfound_ok, timeout=timeout)
        self.run_until_done(get)
        assert get.result is not None
        return get.result

    # -- the event loop ----------------------------------------------------------------------

    def step(self) -> bool:
        """Process the next event.

        Returns:
            Whether there was one.
        """
        if not self._events:
            return False
        at, _, event = heapq.heappop(self._events)
        self._now = max(self._now, at)
        event.fire(self)
        return True

    def run(self, until: float | None = None) -> None:
        """Process events until none is left, or until the next one is after `until`.

        When `until` is given the virtual time ends at `until`.
        """
        while self._events and (until is None or self._events[0][0] <= until):
            self.step()
        if until is not None:
            self._now = max(self._now, check_time(until, "until"))

    def run_until_done(self, coordinator: PutCoordinator[S] | GetCoordinator[S]) -> None:
        """Process events until `coordinator` has an outcome."""
        while coordinator.result is None and self.step():
            pass

    # -- internals ---------------------------------------------------------------------------

    def _check_member(self, node: object) -> str:
        name = check_node_id(node, "node")
        if name not in self._replicas:
            raise ValueError(f"node {name!r} is not in the cluster {list(self._nodes)}")
        return name

    def _push(self, at: float, event: _Event[S]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, event))

    def _delay(self, node: str) -> float | None:
        """A one-way delay for a message to or from `node`, or `None` if it is lost."""
        fixed = self._behaviour.get(node, _DEFAULT).delay
        if self._drop_rate and self._rng.random() < self._drop_rate:
            return None
        if fixed is not None:
            return fixed
        return self._rng.uniform(self._min_delay, self._max_delay)

    def _dispatch(
        self, coordinator: PutCoordinator[S] | GetCoordinator[S], effects: Sequence[object]
    ) -> None:
        for effect in effects:
            match effect:
                case SendStore(target=target) | SendFetch(target=target):
                    delay = self._delay(target)
                    self._log(
                        f"-> {target}: {_describe(effect)}" + (" (lost)" if delay is None else "")
                    )
                    if delay is not None:
                        self._push(self._now + delay, _Request(coordinator, effect))
                case SendRepair(target=target):
                    delay = self._delay(target)
                    self._log(
                        f"-> {target}: {_describe(effect)}" + (" (lost)" if delay is None else "")
                    )
                    if delay is not None:
                        self._push(self._now + delay, _Request(None, effect))
                case Complete(result=result):
                    self._log(f"complete {coordinator.key!r}: {_describe_result(result)}")
                case _:  # pragma: no cover - the coordinators emit nothing else
                    raise AssertionError(f"unexpected effect {effect!r}")
        at = coordinator.deadline()  # the one timer channel: schedule it when it moved
        if at is None:
            self._timers.pop(coordinator, None)
        elif self._timers.get(coordinator) != at:
            self._timers[coordinator] = at
            self._push(at, _Timer(coordinator))

    def _apply(self, node: str, key: Key, state: S, hint: str | None) -> None:
        store = self._replicas[node]
        current = store.get(key)
        store[key] = state if current is None else current.sync(state)
        if hint is not None:
            self._hints[node].add((key, hint))

    def _serve(self, request: _Request[S]) -> None:
        effect = request.effect
        node = effect.target
        behaviour = self._behaviour.get(node, _DEFAULT)
        if behaviour.silent:
            self._log(f"{node} is silent: {_describe(effect)} ignored")
            return
        if isinstance(effect, SendRepair):
            self._apply(node, effect.key, effect.state, effect.hint)
            self._log(f"{node} repaired {effect.key!r}")
            return
        coordinator = request.coordinator
        assert coordinator is not None
        reply: Stored | Refused | Fetched[S]
        if behaviour.refuse or (self._refuse_rate and self._rng.random() < self._refuse_rate):
            reply = Refused("refused by the harness")
        elif isinstance(effect, SendStore):
            self._apply(node, effect.key, effect.state, effect.hint)
            reply = Stored()
        else:
            reply = Fetched(self._replicas[node].get(effect.key))
        delay = self._delay(node)
        self._log(
            f"{node} -> coordinator: {_describe(reply)}" + (" (lost)" if delay is None else "")
        )
        if delay is not None:
            self._push(self._now + delay, _Reply(coordinator, node, reply))

    def _deliver(self, reply: _Reply[S]) -> None:
        coordinator = reply.coordinator
        if coordinator.state is CoordinatorState.CLOSED:  # a driver drops late replies
            self._log(f"{reply.sender}'s reply dropped: the request is closed")
            return
        if isinstance(coordinator, PutCoordinator):
            assert not isinstance(reply.reply, Fetched)
            effects: Sequence[object] = coordinator.receive(reply.sender, reply.reply, self._now)
        else:
            assert not isinstance(reply.reply, Stored)
            effects = coordinator.receive(reply.sender, reply.reply, self._now)
        self._dispatch(coordinator, effects)

    def _tick(self, coordinator: PutCoordinator[S] | GetCoordinator[S]) -> None:
        due = coordinator.deadline()
        if due is None or due > self._now:
            return  # closed, or a stale timer
        self._log(f"timer {coordinator.key!r}")
        self._dispatch(coordinator, coordinator.on_timer(self._now))

    def _check_invariants(self) -> None:
        """Check the harness's invariants (its tests call this after every step)."""
        assert set(self._replicas) == set(self._nodes) == set(self._hints)
        assert self._suspected <= set(self._nodes)
        assert set(self._behaviour) <= set(self._nodes)
        assert all(behaviour != _DEFAULT for behaviour in self._behaviour.values())
        assert all(at >= self._now for at, _, _ in self._events), "an event is in the past"
        for i in range(1, len(self._events)):  # the heap property
            assert self._events[(i - 1) // 2][:2] <= self._events[i][:2]
        assert len({seq for _, seq, _ in self._events}) == len(self._events)

    def _log(self, line: str) -> None:
        self.trace.append(f"{self._now:.6f} {line}")


_DEFAULT = Behaviour()


def _probability(value: object, name: str) -> float:
    if type(value) is not float and type(value) is not int:
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in 0..1, got {value!r}")
    return float(value)


def _lost(delay: float | None) -> str:
    return " (lost)" if delay is None else ""


def _describe(message: object) -> str:
    match message:
        case SendStore(key=key, hint=hint):
            return f"store {key!r}" + (f" (hint for {hint})" if hint else "")
        case SendFetch(key=key, hint=hint):
            return f"fetch {key!r}" + (f" (hint for {hint})" if hint else "")
        case SendRepair(key=key):
            return f"repair {key!r}"
        case Fetched(state=state):
            return "not found" if state is None else "found"
        case Refused():
            return "refused"
        case _:
            return "stored"


def _describe_result(result: object) -> str:
    if isinstance(result, Unavailable):
        return f"unavailable ({result.required} required, answered {list(result.answered)})"
    if isinstance(result, PutResult):
        return f"ok, acked by {list(result.acked)}"
    assert isinstance(result, GetResult)
    return f"ok, answered by {list(result.answered)}"


class _Event(Generic[S]):
    __slots__ = ()

    def fire(self, harness: QuorumHarness[S]) -> None:
        raise NotImplementedError

    def __lt__(self, other: object) -> bool:  # pragma: no cover - the sequence number decides
        return False


class _Request(_Event[S]):
    __slots__ = ("coordinator", "effect")

    def __init__(
        self,
        coordinator: PutCoordinator[S] | GetCoordinator[S] | None,
        effect: SendStore[S] | SendFetch | SendRepair[S],
    ) -> None:
        self.coordinator = coordinator
        self.effect = effect

    def fire(self, harness: QuorumHarness[S]) -> None:
        harness._serve(self)


class _Reply(_Event[S]):
    __slots__ = ("coordinator", "reply", "sender")

    def __init__(
        self,
        coordinator: PutCoordinator[S] | GetCoordinator[S],
        sender: str,
        reply: Stored | Refused | Fetched[S],
    ) -> None:
        self.coordinator = coordinator
        self.sender = sender
        self.reply = reply

    def fire(self, harness: QuorumHarness[S]) -> None:
        harness._deliver(self)


class _Timer(_Event[S]):
    __slots__ = ("coordinator",)

    def __init__(self, coordinator: PutCoordinator[S] | GetCoordinator[S]) -> None:
        self.coordinator = coordinator

    def fire(self, harness: QuorumHarness[S]) -> None:
        harness._tick(self.coordinator)
