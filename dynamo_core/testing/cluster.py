"""A deterministic, single-threaded cluster of [`Node`][dynamo_core.node.Node]s in virtual time.

[`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] hosts the node's pure core in a
[`World`][dynamo_core.testing.World] — the generic simulator your own protocols run in — which
keeps the event heap, delivers every [`Send`][dynamo_core.node.Send] through a seeded network
that delays, drops, duplicates and reorders messages and honours partitions, and fires each
node's timers at its [`deadline`][dynamo_core.node.Node.deadline]; the cluster adds the ring,
the clients and their replies. Nodes crash (their
volatile state is lost, their storage kept), restart, or come back with no storage at all
(amnesia). Nothing depends on the wall clock, threads, `hash()` or set order: the same seed
and the same calls give the same event trace, byte for byte, in any process —
[`trace_hash`][dynamo_core.testing.SimulatedCluster.trace_hash] is its SHA-256.

Use it to script a scenario (``put``, ``crash``, ``partition``, ``run``, ``get``), as the demo
and the tutorial do, or as the substrate of the randomized
[`Simulation`][dynamo_core.testing.Simulation].
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Final

import attrs

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
from dynamo_core.testing.world import NetworkConfig, World

__all__ = ["NetworkConfig", "SimulatedCluster"]


_TRACED_FIELDS: Final = ("op", "fwd", "session", "batch_id", "seq")
_fields_of: dict[type, tuple[tuple[str, ...], bool]] = {}


def _traced_fields(kind: type) -> tuple[tuple[str, ...], bool]:
    """The traced fields a message type has, and whether it has a key (looked up once)."""
    known = _fields_of.get(kind)
    if known is None:
        names = {field.name for field in attrs.fields(kind)} if attrs.has(kind) else None
        present = tuple(f for f in _TRACED_FIELDS if names is None or f in names)
        known = _fields_of[kind] = (present, names is None or "key" in names)
    return known


def _describe(message: Message) -> str:
    """A short, deterministic summary of a message for the trace."""
    kind = type(message)
    fields, keyed = _traced_fields(kind)
    name = kind.__name__
    for field in fields:
        value = getattr(message, field, None)
        if value is not None:
            name += f" {field}={value}"
    if isinstance(message, ExchangeMessage):
        name += f" {type(message.message).__name__}"
    if keyed:
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
        self._world = World(
            seed=seed,
            network=network,
            start=check_time(start, "start"),
            record_trace=record_trace,
            describe=_describe,  # type: ignore[arg-type]  # only node messages travel
        )
        ring = HashRing(self._policy.n, partitions=partitions)
        for name in names:
            ring.add_node(name)
        self._ring = ring  # the bootstrap ring every node starts from
        self._names = tuple(names)
        self._seeds = tuple(names)
        self._incarnations = dict.fromkeys(names, 0)
        self._pending: dict[str, Callable[[RequestResult], None]] = {}
        self._request_seq = itertools.count(1)
        self._observers: list[Callable[[float, str, Effect], None]] = []
        self._world.observe(self._on_effect)
        for name in names:
            self._spawn(name)

    # -- views -------------------------------------------------------------------------------

    @property
    def world(self) -> World:
        """The [`World`][dynamo_core.testing.World] the nodes run in (faults, time, trace)."""
        return self._world

    @property
    def now(self) -> float:
        """The current virtual time, in seconds."""
        return self._world.now

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node's name, in the order given."""
        return self._names

    @property
    def ring(self) -> HashRing:
        """A copy of the cluster's current ring: the newest version any running node holds."""
        return self._current_ring().copy()

    def _node_or_none(self, name: str) -> Node | None:
        if not self._world.is_up(name):
            return None
        node = self._world.process(name)
        assert isinstance(node, Node)
        return node

    def _current_ring(self) -> HashRing:
        best: Node | None = None
        for node in self.live_nodes():
            if best is None or node.ring_version > best.ring_version:
                best = node
        return self._ring if best is None else best.ring

    def ring_versions(self) -> dict[str, RingVersion]:
        """Every running node's installed ring version, by name (in cluster order)."""
        return {node.node_id: node.ring_version for node in self.live_nodes()}

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
        return self._world.network

    @network.setter
    def network(self, value: NetworkConfig) -> None:
        self._world.network = value

    @property
    def trace_hash(self) -> str:
        """SHA-256 (hex) of the event trace so far: equal for equal seeds and calls."""
        return self._world.trace_hash

    @property
    def trace_lines(self) -> list[str] | None:
        """The trace lines, when the cluster was made with ``record_trace=True``."""
        return self._world.trace_lines

    def log(self, last: int = 50) -> str:
        """The last `last` trace lines (see [`World.log`][dynamo_core.testing.World.log])."""
        return self._world.log(last)

    def counts(self) -> dict[str, int]:
        """Message counters, by name.

        ``sent``, ``delivered``, ``dropped``, ``duplicated``, ``slowed``, ``reordered`` (overtook
        an earlier message on its link), ``partitioned`` and ``to_down_node`` (lost on the way),
        ``held`` (delivered to a paused node, which handles it when it resumes).
        """
        counts = self._world.counts()
        counts["to_down_node"] = counts.pop("to_down_process")
        return counts

    def is_up(self, name: str) -> bool:
        """Whether node `name` is running."""
        return name in self._incarnations and self._world.is_up(name)

    def node(self, name: str) -> Node:
        """Return the running node `name` (to inspect it; drive it through the cluster).

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is down.
        """
        if name not in self._incarnations:
            raise KeyError(name)
        node = self._node_or_none(name)
        if node is None:
            raise DynamoError(f"node {name} is down")
        return node

    def live_nodes(self) -> list[Node]:
        """The running nodes, in cluster order."""
        return [node for name in self._names if (node := self._node_or_none(name)) is not None]

    def replicas(self, key: str | bytes) -> tuple[str, ...]:
        """The preference list of `key` in the current ring."""
        return self._current_ring().preference_list(key)

    def observe(self, callback: Callable[[float, str, Effect], None]) -> None:
        """Call ``callback(now, node, effect)`` for every effect a node returns."""
        self._observers.append(callback)

    def record(self, line: str) -> None:
        """Add a line of your own (a workload event) to the trace."""
        self._world.record(line)

    # -- node lifecycle ----------------------------------------------------------------------

    def _spawn(self, name: str) -> None:
        self._world.spawn(name, partial(self._boot, name), disk=MemoryStorage)

    def _boot(self, name: str, storage: MemoryStorage, now: float) -> Node:
        self._incarnations[name] += 1
        return Node(
            name,
            self._ring,
            policy=self._policy,
            config=self._config,
            storage=storage,
            now=now,
            incarnation=self._incarnations[name],
            first_epoch=0 if self._incarnations[name] == 1 else None,
            seeds=self._seeds,
        )

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
        self._incarnations[name] = 0
        self.record(f"add {name}")
        self._spawn(name)
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
        effects = self.node(target).join(name, self.now, zone=zone, weight=weight)
        self.record(f"admin join {name} via {target}")
        self._world.emit(target, effects)

    def leave(self, name: str, *, via: str | None = None) -> None:
        """Ask node `via` (default: the first running member) to remove `name` from the ring.

        Raises:
            ValueError: `name` is not a member, or too few would remain.
            dynamo_core.errors.DynamoError: `via` is down.
        """
        target = self._admin_via(via)
        effects = self.node(target).leave(name, self.now)
        self.record(f"admin leave {name} via {target}")
        self._world.emit(target, effects)

    def replace(self, old: str, new: str, *, via: str | None = None) -> None:
        """Ask node `via` (default: the first running member) to put `new` in `old`'s place.

        Raises:
            ValueError: `old` is not a member or `new` is one (see
                [`Node.replace`][dynamo_core.node.Node.replace]).
            dynamo_core.errors.DynamoError: `via` is down.
        """
        target = self._admin_via(via)
        effects = self.node(target).replace(old, new, self.now)
        self.record(f"admin replace {old} by {new} via {target}")
        self._world.emit(target, effects)

    def crash(self, name: str, *, wipe: bool = False) -> None:
        """Stop node `name`: its volatile state is gone; with `wipe`, its storage too (amnesia).

        Messages to a down node are lost; its clients' requests fail.

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is already down.
        """
        self.node(name)
        self._world.crash(name, wipe=wipe)  # what a paused node held dies with it

    def restart(self, name: str) -> None:
        """Start node `name` again on its storage, as a new incarnation.

        Raises:
            KeyError: `name` is not a node of the cluster.
            dynamo_core.errors.DynamoError: the node is running.
        """
        if name not in self._incarnations:
            raise KeyError(name)
        if self.is_up(name):
            raise DynamoError(f"node {name} is running")
        self._world.restart(name)

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
        if self._world.is_paused(name):
            raise DynamoError(f"node {name} is already paused")
        self._world.pause(name)

    def resume(self, name: str) -> None:
        """Let a paused node go on: it handles what it held, then its timers run again.

        Raises:
            KeyError: `name` is not paused.
        """
        if not self.is_paused(name):
            raise KeyError(name)
        self._world.resume(name)

    def is_paused(self, name: str) -> bool:
        """Whether node `name` is paused."""
        return self.is_up(name) and self._world.is_paused(name)

    def storage(self, name: str) -> MemoryStorage:
        """The storage (the durable disk) of node `name`, kept across crashes unless wiped."""
        storage = self._world.disk(name)
        assert isinstance(storage, MemoryStorage)
        return storage

    # -- partitions --------------------------------------------------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the cluster: no message passes between nodes of different groups.

        Nodes named in no group form one more group together. Replaces any earlier
        `partition` (isolations and cuts stay).

        Raises:
            ValueError: A name is unknown or appears in two groups.
        """
        self._world.partition(*groups)

    def cut(self, a: str, b: str) -> None:
        """Block the link between `a` and `b`, both ways."""
        self._world.block(a, b)
        self._world.block(b, a)

    def isolate(self, name: str) -> None:
        """Cut node `name` off from every other node (it keeps running)."""
        self._world.isolate(name)

    def rejoin(self, name: str) -> None:
        """Undo `isolate(name)`."""
        self._world.rejoin(name)

    def heal(self) -> None:
        """Remove every partition, isolation and cut."""
        self._world.heal()

    def can_talk(self, a: str, b: str) -> bool:
        """Whether a message from `a` to `b` would pass the current partitions."""
        return self._world.can_talk(a, b)

    # -- the event loop ----------------------------------------------------------------------

    def call_at(self, at: float, callback: Callable[[], None], label: str = "call") -> None:
        """Run `callback()` at virtual time `at` (not before now); `label` goes to the trace."""
        self._world.call_at(at, callback, label)

    def step(self) -> bool:
        """Process the next event. Returns `False` when there is none."""
        return self._world.step()

    def run_until(self, t: float) -> None:
        """Process every event due at or before virtual time `t`, then set the time to `t`."""
        self._world.run_until(t)

    def run(self, seconds: float) -> None:
        """Advance virtual time by `seconds`, processing every event due meanwhile."""
        self._world.run(seconds)

    def run_while(self, condition: Callable[[], bool], *, limit: float) -> bool:
        """Process events while `condition()` holds, for at most `limit` virtual seconds.

        Returns:
            `True` if `condition()` became false, `False` if the time limit was reached first.
        """
        return self._world.run_while(condition, limit=limit)

    def _on_effect(self, now: float, name: str, effect: object) -> None:
        """Route a node's replies to their clients (the world sends its messages)."""
        if isinstance(effect, Reply):
            callback = self._pending.pop(effect.request_id, None)
            self.record(f"reply {name} {effect.request_id} {type(effect.result).__name__}")
            if callback is not None:
                callback(effect.result)
        elif not isinstance(effect, Send):
            self.record(f"note {name} {type(effect).__name__}")
        for observer in self._observers:
            observer(now, name, effect)  # type: ignore[arg-type]  # a node's effect

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
        if via not in self._incarnations:
            raise ValueError(f"via must be a node of the cluster, got {via!r}")
        rid = request_id if request_id is not None else f"r{next(self._request_seq)}"
        self.record(f"client {kind} {rid} via {via}")
        if not self.is_up(via):
            down = RequestFailed(f"{via} is down")
            self.call_at(self.now, lambda: callback(down), f"refused {rid}")
            return rid
        if kind == "put" and value is None:
            raise ValueError("a put needs a value")
        self._pending[rid] = callback
        timeout_at = self.now + check_positive_float(timeout, "timeout")
        self._world.call_at(timeout_at, partial(self._timeout, rid), None)
        request = partial(self._request, kind, rid, key, value, context)
        self._world.call(via, request, None)  # a paused node holds it
        return rid

    def _timeout(self, rid: str) -> None:
        callback = self._pending.pop(rid, None)
        if callback is not None:
            self.record(f"client-timeout {rid}")
            callback(RequestFailed("the client gave up waiting"))

    def _request(  # noqa: PLR0917 - a held request, replayed as it was submitted
        self,
        kind: str,
        rid: str,
        key: str | bytes,
        value: bytes | None,
        context: bytes | None,
        node: Node,
        now: float,
    ) -> list[Effect]:
        """Hand a client request to `node`, as the driver does (a bad one is refused)."""
        try:
            if kind == "put":
                assert value is not None
                return node.put(rid, key, value, context, now)
            return node.get(rid, key, now)
        except (TypeError, ValueError) as exc:  # the client's fault, as the driver answers it
            callback = self._pending.pop(rid, None)
            if callback is not None:
                failed = RequestFailed(f"bad request: {exc}"[:1024], code="bad_request")
                self.call_at(now, lambda: callback(failed), f"refused {rid}")
            return []

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
                node = self._node_or_none(name)
                states.append(None if node is None else node.state_of(data))
            if any(state != states[0] for state in states) or (
                any(not self.is_up(n) for n in ring.preference_list(data))
            ):
                out.append(data)
        return out

    def divergent_ranges(self) -> list[TokenRange]:
        """The ring segments whose replicas' Merkle roots differ (or whose replica is down)."""
        out: list[TokenRange] = []
        for rng, replicas in self._current_ring().segments():
            roots = set()
            for name in replicas:
                node = self._node_or_none(name)
                roots.add(None if node is None else node.merkle_root(rng))
            if len(roots) != 1 or None in roots:
                out.append(rng)
        return out
