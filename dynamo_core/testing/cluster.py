"""A deterministic, single-threaded cluster of [`Node`][dynamo_core.node.Node]s in virtual time.

[`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] is a driver for the node's pure core:
it keeps an event heap ordered by ``(time, sequence number)``, delivers every
[`Send`][dynamo_core.node.Send] through a seeded network that delays, drops, duplicates and
reorders messages and honours partitions, fires each node's timers at its
[`deadline`][dynamo_core.node.Node.deadline], and routes client replies. Nodes crash (their
volatile state is lost, their storage kept), restart, or come back with no storage at all
(amnesia). Nothing depends on the wall clock, threads, `hash()` or set order: the same seed
and the same calls give the same event trace, byte for byte, in any process —
[`trace_hash`][dynamo_core.testing.SimulatedCluster.trace_hash] is its SHA-256.

Use it to script a scenario (``put``, ``crash``, ``partition``, ``run``, ``get``), as the demo
and the tutorial do, or as the substrate of the randomized
[`Simulation`][dynamo_core.testing.Simulation].
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Final

from dynamo_core._check import check_node_id, check_positive_float, check_positive_int, check_time
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DynamoError
from dynamo_core.hashing import TokenRange
from dynamo_core.membership import RingVersion
from dynamo_core.messages import (
    ExchangeMessage,
    Message,
    RequestFailed,
    RequestResult,
)
from dynamo_core.node import Effect, Node, NodeConfig, Reply, Send
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing
from dynamo_core.storage import MemoryStorage
from dynamo_core.testing.world import NetworkConfig

__all__ = ["NetworkConfig", "SimulatedCluster"]

_DELIVER: Final = 0
_TIMER: Final = 1
_CALL: Final = 2
_TIMEOUT: Final = 3
_EPSILON: Final = 1e-6


def _describe(message: Message) -> str:
    """A short, deterministic summary of a message for the trace."""
    name = type(message).__name__
    for field in ("op", "fwd", "session", "batch_id", "seq"):
        value = getattr(message, field, None)
        if value is not None:
            name += f" {field}={value}"
    if isinstance(message, ExchangeMessage):
        name += f" {type(message.message).__name__}"
    key = getattr(message, "key", None)
    if isinstance(key, bytes):
        name += f" key={key.hex()}"
    return name


class SimulatedCluster:
    """Nodes, a seeded network and virtual time in one thread.

    Every node starts at `start` with the same ring (strategy 3 with `partitions` partitions),
    the same policy and config, and a fresh [`MemoryStorage`][dynamo_core.storage.MemoryStorage]
    as its durable disk.

    Args:
        nodes: How many nodes (named ``n1``, ``n2``, ...), or their names.
        policy: The quorum policy (default ``QuorumPolicy(3, 2, 2)``); ``policy.n`` is the
            ring's replication factor.
        config: The nodes' [`NodeConfig`][dynamo_core.node.NodeConfig].
        network: The network's behaviour (default: 1 ms + jitter, no faults).
        seed: Seeds every random choice of the network.
        partitions: The ring's partition count (a power of two).
        start: The virtual time at which the nodes boot.
        record_trace: Keep the trace lines in `trace_lines` (the hash is always kept).

    Raises:
        TypeError, ValueError: An argument is invalid.
    """

    def __init__(
        self,
        nodes: int | Sequence[str] = 5,
        *,
        policy: QuorumPolicy | None = None,
        config: NodeConfig | None = None,
        network: NetworkConfig | None = None,
        seed: int = 0,
        partitions: int = 64,
        start: float = 0.0,
        record_trace: bool = False,
    ) -> None:
        if isinstance(nodes, int) and not isinstance(nodes, bool):
            check_positive_int(nodes, "nodes", maximum=1024)
            names = [f"n{i}" for i in range(1, nodes + 1)]
        elif isinstance(nodes, str | bytes) or not isinstance(nodes, Sequence):
            raise TypeError(
                f"nodes must be an int or a sequence of names, not {type(nodes).__name__}"
            )
        else:
            names = [check_node_id(name, "nodes[]") for name in nodes]
            if not names or len(set(names)) != len(names):
                raise ValueError("nodes must name at least one node, each once")
        if type(seed) is not int:
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self._policy = policy if policy is not None else QuorumPolicy()
        self._config = config if config is not None else NodeConfig()
        self._network = network if network is not None else NetworkConfig()
        if not isinstance(self._network, NetworkConfig):
            raise TypeError(f"network must be a NetworkConfig, not {type(network).__name__}")
        ring = HashRing(self._policy.n, partitions=partitions)
        for name in names:
            ring.add_node(name)
        self._ring = ring  # the bootstrap ring every node starts from
        self._names = tuple(names)
        self._seeds = tuple(names)
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._now = check_time(start, "start")
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._storages: dict[str, MemoryStorage] = {name: MemoryStorage() for name in names}
        self._nodes: dict[str, Node | None] = {}
        self._incarnations = dict.fromkeys(names, 0)
        self._scheduled: dict[str, float | None] = dict.fromkeys(names)
        self._blocked: set[tuple[str, str]] = set()
        self._isolated: list[str] = []
        self._groups: list[list[str]] = []
        self._cuts: set[tuple[str, str]] = set()
        self._link_last: dict[tuple[str, str], float] = {}
        self._pending: dict[str, Callable[[RequestResult], None]] = {}
        self._paused: dict[str, list[Callable[[], None]]] = {}  # node -> held inputs, in order
        self._request_seq = itertools.count(1)
        self._observers: list[Callable[[float, str, Effect], None]] = []
        self._hash = hashlib.sha256()
        self.trace_lines: list[str] | None = [] if record_trace else None
        self._counts = dict.fromkeys(
            (
                "sent",
                "delivered",
                "dropped",
                "duplicated",
                "slowed",
                "reordered",
                "partitioned",
                "to_down_node",
                "held",
            ),
            0,
        )
        for name in names:
            self._boot(name, first_epoch=0)

    # -- views -------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The current virtual time, in seconds."""
        return self._now

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node's name, in the order given."""
        return self._names

    @property
    def ring(self) -> HashRing:
        """A copy of the cluster's current ring: the newest version any running node holds."""
        return self._current_ring().copy()

    def _current_ring(self) -> HashRing:
        best: Node | None = None
        for node in self._nodes.values():
            if node is not None and (best is None or node.ring_version > best.ring_version):
                best = node
        return self._ring if best is None else best._ring

    def ring_versions(self) -> dict[str, RingVersion]:
        """Every running node's installed ring version, by name (in cluster order)."""
        return {name: node.ring_version for name, node in self._nodes.items() if node is not None}

    def settled(self) -> bool:
        """Whether every running node holds the same settled ring version, and no change waits.

        A node that has not heard from any member yet (``membership.outside``) or knows a
        requested change no version has applied counts as not settled.
        """
        live = self.live_nodes()
        views = [node.membership for node in live]
        return bool(live) and all(
            view.version == views[0].version
            and view.settled
            and not view.outside
            and not view.pending_changes
            for view in views
        )

    @property
    def policy(self) -> QuorumPolicy:
        """The quorum policy every node uses."""
        return self._policy

    @property
    def network(self) -> NetworkConfig:
        """The network's current behaviour."""
        return self._network

    @network.setter
    def network(self, value: NetworkConfig) -> None:
        if not isinstance(value, NetworkConfig):
            raise TypeError(f"network must be a NetworkConfig, not {type(value).__name__}")
        self._network = value

    @property
    def trace_hash(self) -> str:
        """SHA-256 (hex) of the event trace so far: equal for equal seeds and calls."""
        return self._hash.hexdigest()

    def counts(self) -> dict[str, int]:
        """Message counters, by name.

        ``sent``, ``delivered``, ``dropped``, ``duplicated``, ``slowed``, ``reordered`` (overtook
        an earlier message on its link), ``partitioned`` and ``to_down_node`` (lost on the way),
        ``held`` (delivered to a paused node, which handles it when it resumes).
        """
        return dict(self._counts)

    def is_up(self, name: str) -> bool:
        """Whether node `name` is running."""
        return self._nodes.get(name) is not None

    def node(self, name: str) -> Node:
        """Return the running node `name` (to inspect it; drive it through the cluster).

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is down.
        """
        if name not in self._nodes:
            raise KeyError(name)
        node = self._nodes[name]
        if node is None:
            raise DynamoError(f"node {name} is down")
        return node

    def live_nodes(self) -> list[Node]:
        """The running nodes, in cluster order."""
        return [node for node in self._nodes.values() if node is not None]

    def replicas(self, key: str | bytes) -> tuple[str, ...]:
        """The preference list of `key` in the current ring."""
        return self._current_ring().preference_list(key)

    def observe(self, callback: Callable[[float, str, Effect], None]) -> None:
        """Call ``callback(now, node, effect)`` for every effect a node returns."""
        self._observers.append(callback)

    def record(self, line: str) -> None:
        """Add a line of your own (a workload event) to the trace."""
        self._trace(f"{self._now:.9f} {line}")

    # -- tracing -----------------------------------------------------------------------------

    def _trace(self, line: str) -> None:
        self._hash.update(line.encode("utf-8"))
        self._hash.update(b"\n")
        if self.trace_lines is not None:
            self.trace_lines.append(line)

    # -- node lifecycle ----------------------------------------------------------------------

    def _boot(self, name: str, *, first_epoch: int | None) -> None:
        self._incarnations[name] += 1
        node = Node(
            name,
            self._ring,
            policy=self._policy,
            config=self._config,
            storage=self._storages[name],
            now=self._now,
            incarnation=self._incarnations[name],
            first_epoch=first_epoch,
            seeds=self._seeds,
        )
        self._nodes[name] = node
        self._scheduled[name] = None
        self._schedule(name)

    def add_node(self, name: str) -> Node:
        """Boot a new node outside the ring (its seeds are the cluster's first nodes).

        It learns the ring by gossip and replicates nothing until a
        [`join`][dynamo_core.testing.SimulatedCluster.join] of it is applied.

        Returns:
            The new node.

        Raises:
            TypeError, ValueError: `name` is invalid or already a node of the cluster.
        """
        check_node_id(name, "name")
        if name in self._incarnations:
            raise ValueError(f"{name!r} is already a node of the cluster")
        self._names = (*self._names, name)
        self._storages[name] = MemoryStorage()
        self._incarnations[name] = 0
        self._scheduled[name] = None
        self._trace(f"{self._now:.9f} add {name}")
        self._boot(name, first_epoch=0)
        self._refresh_links()
        return self.node(name)

    def _admin_via(self, via: str | None) -> str:
        if via is not None:
            self.node(via)
            return via
        ring = self._current_ring()
        for name in (*ring.nodes, *self._names):
            if self.is_up(name):
                return name
        raise DynamoError("no node is running")

    def join(
        self, name: str, *, via: str | None = None, zone: str | None = None, weight: float = 1.0
    ) -> None:
        """Ask node `via` (default: the first running member) to add `name` to the ring.

        Raises:
            ValueError: `name` is already a member (see [`Node.join`][dynamo_core.node.Node.join]).
            dynamo_core.errors.DynamoError: `via` is down.
        """
        target = self._admin_via(via)
        node = self.node(target)
        effects = node.join(name, self._now, zone=zone, weight=weight)
        self._trace(f"{self._now:.9f} admin join {name} via {target}")
        self._apply(target, effects)
        self._schedule(target)

    def leave(self, name: str, *, via: str | None = None) -> None:
        """Ask node `via` (default: the first running member) to remove `name` from the ring.

        Raises:
            ValueError: `name` is not a member, or too few would remain.
            dynamo_core.errors.DynamoError: `via` is down.
        """
        target = self._admin_via(via)
        node = self.node(target)
        effects = node.leave(name, self._now)
        self._trace(f"{self._now:.9f} admin leave {name} via {target}")
        self._apply(target, effects)
        self._schedule(target)

    def replace(self, old: str, new: str, *, via: str | None = None) -> None:
        """Ask node `via` (default: the first running member) to put `new` in `old`'s place.

        Raises:
            ValueError: `old` is not a member or `new` is one (see
                [`Node.replace`][dynamo_core.node.Node.replace]).
            dynamo_core.errors.DynamoError: `via` is down.
        """
        target = self._admin_via(via)
        node = self.node(target)
        effects = node.replace(old, new, self._now)
        self._trace(f"{self._now:.9f} admin replace {old} by {new} via {target}")
        self._apply(target, effects)
        self._schedule(target)

    def crash(self, name: str, *, wipe: bool = False) -> None:
        """Stop node `name`: its volatile state is gone; with `wipe`, its storage too (amnesia).

        Messages to a down node are lost; its clients' requests fail.

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is already down.
        """
        self.node(name)
        self._nodes[name] = None
        self._scheduled[name] = None
        self._paused.pop(name, None)  # what a paused node held dies with it
        if wipe:
            self._storages[name] = MemoryStorage()
        self._trace(f"{self._now:.9f} crash {name}{' wipe' if wipe else ''}")

    def restart(self, name: str) -> None:
        """Start node `name` again on its storage, as a new incarnation.

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is running.
        """
        if name not in self._nodes:
            raise KeyError(name)
        if self._nodes[name] is not None:
            raise DynamoError(f"node {name} is running")
        self._trace(f"{self._now:.9f} restart {name}")
        self._boot(name, first_epoch=None)

    def pause(self, name: str) -> None:
        """Pause node `name` (SIGSTOP): it keeps its connections but processes nothing.

        Messages and client requests sent to it are held, in order, and its timers do not
        fire; [`resume`][dynamo_core.testing.SimulatedCluster.resume] delivers what it held.
        Peers only notice that it stopped answering: a gray failure.

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is down or already paused.
        """
        self.node(name)
        if name in self._paused:
            raise DynamoError(f"node {name} is already paused")
        self._paused[name] = []
        self._trace(f"{self._now:.9f} pause {name}")

    def resume(self, name: str) -> None:
        """Let a paused node go on: it handles what it held, then its timers run again.

        Raises:
            KeyError: `name` is not paused.
        """
        held = self._paused.pop(name)
        self._trace(f"{self._now:.9f} resume {name} ({len(held)} held)")
        for run in held:
            run()
        self._scheduled[name] = None
        self._schedule(name)

    def is_paused(self, name: str) -> bool:
        """Whether node `name` is paused."""
        return name in self._paused

    def storage(self, name: str) -> MemoryStorage:
        """The storage (the durable disk) of node `name`, kept across crashes unless wiped."""
        return self._storages[name]

    # -- partitions --------------------------------------------------------------------------

    def _refresh_links(self) -> None:
        blocked: set[tuple[str, str]] = set(self._cuts)
        for i, group in enumerate(self._groups):
            for other in self._groups[i + 1 :]:
                for a in group:
                    for b in other:
                        blocked.add((a, b))
                        blocked.add((b, a))
        for node in self._isolated:
            for peer in self._names:
                if peer != node:
                    blocked.add((node, peer))
                    blocked.add((peer, node))
        self._blocked = blocked

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the cluster: no message passes between nodes of different groups.

        Nodes named in no group form one more group together. Replaces any earlier
        `partition` (isolations and cuts stay).

        Raises:
            ValueError: A name is unknown or appears in two groups.
        """
        named = [list(group) for group in groups]
        seen: list[str] = []
        for group in named:
            for node in group:
                if node not in self._incarnations or node in seen:
                    raise ValueError(f"unknown or repeated node {node!r} in partition groups")
                seen.append(node)
        rest = [node for node in self._names if node not in seen]
        if rest:
            named.append(rest)
        self._groups = [group for group in named if group]
        self._refresh_links()
        shown = " | ".join(",".join(group) for group in self._groups)
        self._trace(f"{self._now:.9f} partition {shown}")

    def cut(self, a: str, b: str) -> None:
        """Block the link between `a` and `b`, both ways."""
        for node in (a, b):
            if node not in self._incarnations:
                raise ValueError(f"unknown node {node!r}")
        self._cuts.update({(a, b), (b, a)})
        self._refresh_links()
        self._trace(f"{self._now:.9f} cut {a} {b}")

    def isolate(self, name: str) -> None:
        """Cut node `name` off from every other node (it keeps running)."""
        if name not in self._incarnations:
            raise ValueError(f"unknown node {name!r}")
        if name not in self._isolated:
            self._isolated.append(name)
        self._refresh_links()
        self._trace(f"{self._now:.9f} isolate {name}")

    def rejoin(self, name: str) -> None:
        """Undo `isolate(name)`."""
        if name in self._isolated:
            self._isolated.remove(name)
        self._refresh_links()
        self._trace(f"{self._now:.9f} rejoin {name}")

    def heal(self) -> None:
        """Remove every partition, isolation and cut."""
        self._groups = []
        self._isolated = []
        self._cuts = set()
        self._refresh_links()
        self._trace(f"{self._now:.9f} heal")

    def can_talk(self, a: str, b: str) -> bool:
        """Whether a message from `a` to `b` would pass the current partitions."""
        return (a, b) not in self._blocked

    # -- the event loop ----------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, payload))

    def _schedule(self, name: str) -> None:
        node = self._nodes[name]
        if node is None:
            return
        at = max(node.deadline(), self._now)
        if self._scheduled[name] != at:
            self._scheduled[name] = at
            self._push(at, _TIMER, (name, self._incarnations[name]))

    def call_at(self, at: float, callback: Callable[[], None], label: str = "call") -> None:
        """Run `callback()` at virtual time `at` (not before now); `label` goes to the trace."""
        self._push(max(check_time(at, "at"), self._now), _CALL, (callback, label))

    def step(self) -> bool:
        """Process the next event. Returns `False` when there is none."""
        if not self._heap:
            return False
        at, _, kind, payload = heapq.heappop(self._heap)
        self._now = max(self._now, at)
        if kind == _DELIVER:
            self._deliver(*payload)
        elif kind == _TIMER:
            name, incarnation = payload
            node = self._nodes[name]
            if node is None or incarnation != self._incarnations[name] or name in self._paused:
                return True
            if self._scheduled[name] != at:
                return True  # superseded by a newer deadline
            self._scheduled[name] = None
            self._apply(name, node.on_timer(self._now))
            if self._nodes[name] is node:  # a callback may have crashed it
                if node.deadline() <= self._now:
                    # A core that keeps asking for "now" must not spin the loop.
                    self._scheduled[name] = self._now + _EPSILON
                    self._push(self._now + _EPSILON, _TIMER, (name, incarnation))
                else:
                    self._schedule(name)
        elif kind == _CALL:
            callback, label = payload
            self._trace(f"{self._now:.9f} {label}")
            callback()
        else:
            request_id = payload
            callback = self._pending.pop(request_id, None)
            if callback is not None:
                self._trace(f"{self._now:.9f} client-timeout {request_id}")
                callback(RequestFailed("the client gave up waiting"))
        return True

    def run_until(self, t: float) -> None:
        """Process every event due at or before virtual time `t`, then set the time to `t`."""
        t = check_time(t, "t")
        while self._heap and self._heap[0][0] <= t:
            self.step()
        self._now = max(self._now, t)

    def run(self, seconds: float) -> None:
        """Advance virtual time by `seconds`, processing every event due meanwhile."""
        self.run_until(self._now + check_time(seconds, "seconds"))

    def run_while(self, condition: Callable[[], bool], *, limit: float) -> bool:
        """Process events while `condition()` holds, for at most `limit` virtual seconds.

        Returns:
            `True` if `condition()` became false, `False` if the time limit was reached first.
        """
        deadline = self._now + check_positive_float(limit, "limit")
        while condition():
            if not self._heap or self._heap[0][0] > deadline:
                self._now = max(self._now, deadline)
                return not condition()
            self.step()
        return True

    # -- the network -------------------------------------------------------------------------

    def _apply(self, name: str, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(target=target, message=message):
                    self._send(name, target, message)
                case Reply(request_id=request_id, result=result):
                    callback = self._pending.pop(request_id, None)
                    kind = type(result).__name__
                    self._trace(f"{self._now:.9f} reply {name} {request_id} {kind}")
                    if callback is not None:
                        callback(result)
                case _:
                    self._trace(f"{self._now:.9f} note {name} {type(effect).__name__}")
            for observer in self._observers:
                observer(self._now, name, effect)

    def _send(self, source: str, target: str, message: Message) -> None:
        net = self._network
        rng = self._rng
        self._counts["sent"] += 1
        if net.drop and rng.random() < net.drop:
            self._counts["dropped"] += 1
            self._trace(f"{self._now:.9f} drop {source}>{target} {_describe(message)}")
            return
        copies = 2 if net.duplicate and rng.random() < net.duplicate else 1
        if copies == 2:
            self._counts["duplicated"] += 1
        for _ in range(copies):
            delay = net.latency + (rng.expovariate(1.0 / net.jitter) if net.jitter else 0.0)
            if net.slow and rng.random() < net.slow:
                self._counts["slowed"] += 1
                delay += rng.uniform(*net.slow_delay)
            at = self._now + delay
            link = (source, target)
            last = self._link_last.get(link, 0.0)
            if at <= last:
                if net.reorder:
                    self._counts["reordered"] += 1  # it overtakes an earlier message
                else:
                    at = last + _EPSILON
            self._link_last[link] = max(at, last)
            self._push(at, _DELIVER, (source, target, message))

    def _deliver(self, source: str, target: str, message: Message) -> None:
        if (source, target) in self._blocked:
            self._counts["partitioned"] += 1
            self._trace(f"{self._now:.9f} cut {source}>{target} {_describe(message)}")
            return
        node = self._nodes.get(target)
        if node is None:
            self._counts["to_down_node"] += 1
            self._trace(f"{self._now:.9f} lost {source}>{target} {_describe(message)}")
            return
        held = self._paused.get(target)
        if held is not None:
            self._counts["held"] += 1
            held.append(partial(self._deliver, source, target, message))
            return
        self._counts["delivered"] += 1
        self._trace(f"{self._now:.9f} recv {source}>{target} {_describe(message)}")
        self._apply(target, node.receive(source, message, self._now))
        self._schedule(target)

    # -- clients -----------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        via: str,
        key: str | bytes,
        callback: Callable[[RequestResult], None],
        *,
        value: bytes | None = None,
        context: bytes | None = None,
        timeout: float = 5.0,
        request_id: str | None = None,
    ) -> str:
        """Send a client request to node `via`; `callback(result)` is called with its outcome.

        The outcome is the node's [`Reply`][dynamo_core.node.Reply] result, or a
        [`RequestFailed`][dynamo_core.messages.RequestFailed] when `via` is down (at once) or
        does not answer within `timeout` seconds.

        Args:
            kind: ``"put"`` or ``"get"``.
            via: The node the client talks to.
            key: The key.
            callback: Receives the outcome, exactly once.
            value: The value (puts).
            context: The context from an earlier get (puts), or `None`.
            timeout: How long the client waits.
            request_id: The request's id (default: a fresh ``"r<N>"``).

        Returns:
            The request id.

        Raises:
            ValueError: `kind` is neither, or `via` is not a node.
        """
        if kind not in ("put", "get"):
            raise ValueError(f"kind must be 'put' or 'get', got {kind!r}")
        if via not in self._nodes:
            raise ValueError(f"via must be a node of the cluster, got {via!r}")
        rid = request_id if request_id is not None else f"r{next(self._request_seq)}"
        node = self._nodes[via]
        self._trace(f"{self._now:.9f} client {kind} {rid} via {via}")
        if node is None:
            down = RequestFailed(f"{via} is down")
            self.call_at(self._now, lambda: callback(down), f"refused {rid}")
            return rid
        if kind == "put" and value is None:
            raise ValueError("a put needs a value")
        self._pending[rid] = callback
        self._push(self._now + check_positive_float(timeout, "timeout"), _TIMEOUT, rid)
        held = self._paused.get(via)
        if held is not None:
            held.append(partial(self._request, via, kind, rid, key, value, context))
        else:
            self._request(via, kind, rid, key, value, context)
        return rid

    def _request(  # noqa: PLR0917 - a held request, replayed as it was submitted
        self,
        via: str,
        kind: str,
        rid: str,
        key: str | bytes,
        value: bytes | None,
        context: bytes | None,
    ) -> None:
        """Hand a client request to node `via`, as the driver does (a bad one is refused)."""
        node = self._nodes[via]
        if node is None:
            return  # crashed while it held the request: the client times out
        try:
            if kind == "put":
                assert value is not None
                effects = node.put(rid, key, value, context, self._now)
            else:
                effects = node.get(rid, key, self._now)
        except (TypeError, ValueError) as exc:  # the client's fault, as the driver answers it
            callback = self._pending.pop(rid, None)
            if callback is not None:
                failed = RequestFailed(f"bad request: {exc}"[:1024], code="bad_request")
                self.call_at(self._now, lambda: callback(failed), f"refused {rid}")
            return
        self._apply(via, effects)
        self._schedule(via)

    def _sync(
        self, kind: str, key: str | bytes, via: str | None, timeout: float, **kw: Any
    ) -> RequestResult:
        target = via if via is not None else self._current_ring().preference_list(key)[0]
        box: list[RequestResult] = []
        self.submit(kind, target, key, box.append, timeout=timeout, **kw)
        self.run_while(lambda: not box, limit=timeout + 1.0)
        assert box, "the client timeout always answers"
        return box[0]

    def put(
        self,
        key: str | bytes,
        value: bytes,
        context: bytes | None = None,
        *,
        via: str | None = None,
        timeout: float = 5.0,
    ) -> RequestResult:
        """Write and wait: submit a put through `via` and run the cluster until it is answered.

        Args:
            key: The key.
            value: The value.
            context: The context of the read this write is based on (`None`: a blind write).
            via: The node to ask (default: the key's first primary).
            timeout: How long the client waits.

        Returns:
            A [`PutReply`][dynamo_core.messages.PutReply] or
            [`RequestFailed`][dynamo_core.messages.RequestFailed].
        """
        return self._sync("put", key, via, timeout, value=value, context=context)

    def get(
        self, key: str | bytes, *, via: str | None = None, timeout: float = 5.0
    ) -> RequestResult:
        """Read and wait: submit a get through `via` and run the cluster until it is answered.

        Returns:
            A [`GetReply`][dynamo_core.messages.GetReply] or
            [`RequestFailed`][dynamo_core.messages.RequestFailed].
        """
        return self._sync("get", key, via, timeout)

    # -- convergence -------------------------------------------------------------------------

    def pending_hints(self) -> int:
        """Hints held, summed over the running nodes."""
        return sum(len(node.hints) for node in self.live_nodes())

    def divergent_keys(self, keys: Iterable[str | bytes]) -> list[bytes]:
        """The keys whose replicas (the preference list) do not hold identical states.

        A key held by no replica is not divergent. A replica that is down counts as divergent.
        """
        out: list[bytes] = []
        ring = self._current_ring()
        for key in keys:
            data = key.encode("utf-8") if isinstance(key, str) else key
            states: list[DVVSet[bytes] | None] = []
            for name in ring.preference_list(data):
                node = self._nodes[name]
                states.append(None if node is None else node.state_of(data))
            if any(state != states[0] for state in states) or (
                any(self._nodes[n] is None for n in ring.preference_list(data))
            ):
                out.append(data)
        return out

    def divergent_ranges(self) -> list[TokenRange]:
        """The ring segments whose replicas' Merkle roots differ (or whose replica is down)."""
        out: list[TokenRange] = []
        for rng, replicas in self._current_ring().segments():
            roots = set()
            for name in replicas:
                node = self._nodes[name]
                roots.add(None if node is None else node.merkle_root(rng))
            if len(roots) != 1 or None in roots:
                out.append(rng)
        return out
