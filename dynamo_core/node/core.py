"""`Node`: the wiring of the node's parts (see the package docstring).

The core checks a client's or a peer's input, hands it to the part that owns it through a
dispatch table from message type to handler, and orchestrates what crosses parts (a new ring
version ends sessions and streams, re-homes hints and drops data; a finished stream completes a
transfer). Its `deadline` is the minimum of the parts' own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, cast

from dynamo_core import admin, codec
from dynamo_core._check import (
    MAX_NODE_ID_LEN,
    check_bytes,
    check_node_id,
    check_time,
    key_bytes,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import StorageFull
from dynamo_core.failure import PhiAccrualDetector
from dynamo_core.hashing import TokenRange
from dynamo_core.hints import HintBatch, HintStore
from dynamo_core.interfaces import Storage
from dynamo_core.membership import GossipDigest, GossipUpdate, RingVersion, VersionRecord
from dynamo_core.messages import (
    ExchangeMessage,
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    Heartbeat,
    HintAck,
    Message,
    ReadRepair,
    RepairPull,
    RepairPush,
    StoreReply,
    StoreRequest,
    SyncDiff,
    SyncOffer,
)
from dynamo_core.node.anti_entropy import AntiEntropy
from dynamo_core.node.config import NodeConfig
from dynamo_core.node.contexts import decode_context
from dynamo_core.node.coordination import Coordination
from dynamo_core.node.effects import Effect, MembershipView, RingChanged, Send
from dynamo_core.node.liveness import Liveness
from dynamo_core.node.membership import Members
from dynamo_core.node.state import NodeState
from dynamo_core.node.streams import Streams
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing
from dynamo_core.storage import MemoryStorage
from dynamo_core.streaming import StreamBatch, StreamPull

__all__ = ["Node"]

_MAX_INCARNATION: Final = 2**31 - 1

Handler = Callable[[str, Message, float, list[Effect]], None]


def _check_request_id(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"request_id must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= codec.DEFAULT_MAX_STR:
        raise ValueError(f"request_id must be 1..{codec.DEFAULT_MAX_STR} characters long")
    return value


def _check_parts(
    node_id: object,
    ring: object,
    policy: object,
    config: object,
    storage: object,
) -> tuple[QuorumPolicy, NodeConfig, Storage]:
    """Check the node's collaborators and fill in the defaults."""
    check_node_id(node_id, "node_id")
    if not isinstance(ring, HashRing):
        raise TypeError(f"ring must be a HashRing, not {type(ring).__name__}")
    if policy is None:
        policy = QuorumPolicy()
    elif not isinstance(policy, QuorumPolicy):
        raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
    if policy.n != ring.replicas:
        raise ValueError(f"policy.n ({policy.n}) must equal the ring's replicas ({ring.replicas})")
    if config is None:
        config = NodeConfig()
    elif not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, not {type(config).__name__}")
    if storage is None:
        storage = MemoryStorage()
    elif not isinstance(storage, Storage):
        raise TypeError(f"storage must implement Storage, not {type(storage).__name__}")
    return policy, config, storage


def _check_start(
    node_id: str, seeds: object, now: object, incarnation: object, first_epoch: object
) -> tuple[tuple[str, ...], float]:
    """Check the node's seeds, start time, incarnation and first epoch."""
    if isinstance(seeds, str) or not isinstance(seeds, Iterable):
        raise TypeError("seeds must be an iterable of node ids")
    seed_list = sorted({check_node_id(seed, "seeds[]") for seed in seeds} - {node_id})
    start = check_time(now)
    if type(incarnation) is not int:
        raise TypeError(f"incarnation must be an int, not {type(incarnation).__name__}")
    if not 0 <= incarnation <= _MAX_INCARNATION:
        raise ValueError(f"incarnation must be in 0..2**31-1, got {incarnation}")
    if first_epoch is not None:
        if type(first_epoch) is not int:
            raise TypeError(f"first_epoch must be an int or None, not {type(first_epoch).__name__}")
        if not 0 <= first_epoch <= codec.MAX_COUNTER:
            raise ValueError(f"first_epoch must be in 0..2**63-1, got {first_epoch}")
    return tuple(seed_list), start


class Node:
    """One Dynamo replica and request coordinator, as a pure state machine.

    Args:
        node_id: This node's id. A node outside `ring` replicates nothing until it joins; it
            learns the cluster's ring version from its `seeds` by gossip.
        ring: The cluster's bootstrap ring, used when the storage holds no membership record
            (copied: later changes to the caller's object do not reach the node). Its
            `replicas` must equal ``policy.n``. Every node of a cluster must be given the same
            bootstrap ring (or an empty ring of the same shape, for a node started outside).
        policy: The quorum policy (default ``QuorumPolicy(3, 2, 2)``, sloppy).
        config: Timings and limits (default [`NodeConfig()`][dynamo_core.node.NodeConfig]).
        storage: Where replica states, the epoch and hints live (default: a fresh
            [`MemoryStorage`][dynamo_core.storage.MemoryStorage]). A node restarted on the same
            storage keeps its data; one started on an empty storage has lost it.
        now: The time the node starts, in seconds.
        incarnation: A number that must differ at every start of this node id (a boot counter
            kept outside the storage, or the boot time in seconds), ``0 .. 2**31 - 1``. It
            tells heartbeats and request ids of different lives apart and, when the storage holds
            no epoch, seeds the choice of a fresh one.
        first_epoch: The actor epoch to start from when the storage holds none. `None` (the
            default) draws a random epoch in ``[2**40, 2**52)`` from `incarnation`, which is
            safe when a node restarts on a wiped disk; pass ``0`` only for a node id that has
            never written before (its actors are then ``node#1``, ``node#2``, ...).
        seeds: Nodes to gossip with besides the members of the ring (Dynamo's seeds): a node
            started outside the ring learns the cluster from them.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``ring.replicas != policy.n``, or an argument is out of range.
        dynamo_core.errors.StorageError: the storage failed (a corrupt record never makes
            the node fail: it is quarantined, see [`Quarantined`][dynamo_core.node.Quarantined]).

    Cost: construction scans the stored keys once to rebuild the Merkle trees (O(keys)).
    """

    __slots__ = (
        "_anti_entropy",
        "_coordination",
        "_handlers",
        "_liveness",
        "_members",
        "_node",
        "_streams",
        "_timers_held",
    )

    def __init__(
        self,
        node_id: str,
        ring: HashRing,
        *,
        policy: QuorumPolicy | None = None,
        config: NodeConfig | None = None,
        storage: Storage | None = None,
        now: float = 0.0,
        incarnation: int = 0,
        first_epoch: int | None = None,
        seeds: Iterable[str] = (),
    ) -> None:
        policy, config, storage = _check_parts(node_id, ring, policy, config, storage)
        seed_list, start = _check_start(node_id, seeds, now, incarnation, first_epoch)
        node = NodeState(
            node_id, ring, policy, config, storage, start, incarnation, first_epoch, seed_list
        )
        self._node = node
        self._timers_held = 0.0  # a timer pass failed on a full disk: no timers until then
        live = self._liveness = Liveness(node, start)
        self._coordination = Coordination(node, hint=live.hint)
        self._anti_entropy = AntiEntropy(node, start)
        self._members = Members(node, start, hint=live.hint, changed=self._version_changed)
        self._streams = Streams(node, finished=self._members.complete)
        self._handlers = self._dispatch_table()
        self._members.install()
        self._members.drop_foreign(start)

    def _dispatch_table(self) -> dict[type, Handler]:
        """Which part handles each message type."""
        coordination, live = self._coordination, self._liveness
        anti_entropy, members, streams = self._anti_entropy, self._members, self._streams
        return {
            Heartbeat: live.on_heartbeat,
            StoreRequest: coordination.on_store,
            StoreReply: coordination.on_store_reply,
            FetchRequest: coordination.on_fetch,
            FetchReply: coordination.on_fetch_reply,
            ReadRepair: coordination.on_read_repair,
            Forward: coordination.on_forward,
            ForwardReply: coordination.on_forward_reply,
            HintBatch: live.on_hints,
            HintAck: live.on_hint_ack,
            SyncOffer: anti_entropy.on_offer,
            SyncDiff: anti_entropy.on_diff,
            ExchangeMessage: anti_entropy.on_exchange,
            RepairPush: anti_entropy.on_push,
            RepairPull: anti_entropy.on_pull,
            GossipDigest: members.on_digest,
            GossipUpdate: members.on_update,
            StreamPull: streams.on_pull,
            StreamBatch: streams.on_batch,
            admin.AdminRequest: self._on_admin,
        }

    def _on_admin(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """An operator's request from an admin connection: answer `sender` (see `admin`)."""
        request = cast("admin.AdminRequest", message)
        reply, effects = admin.answer(self, self._node.membership, request, now)
        out += effects
        out.append(Send(sender, cast("Message", reply)))

    # -- public views ----------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._node.id

    @property
    def ring(self) -> HashRing:
        """A copy of the ring this node places keys with."""
        return self._node.ring.copy()

    @property
    def policy(self) -> QuorumPolicy:
        """The quorum policy."""
        return self._node.policy

    @property
    def config(self) -> NodeConfig:
        """The node's timings and limits."""
        return self._node.config

    @property
    def storage(self) -> Storage:
        """The node's storage (replica states, epoch and hints)."""
        return self._node.storage

    @property
    def incarnation(self) -> int:
        """The incarnation this node was started with."""
        return self._node.incarnation

    @property
    def epoch(self) -> int:
        """The highest actor epoch minted so far (see `ActorEpochs`)."""
        return self._node.epochs.epoch

    @property
    def hints(self) -> HintStore[DVVSet[bytes]]:
        """The hints this node keeps for failed nodes (read it; do not write to it)."""
        return self._node.hints

    @property
    def detector(self) -> PhiAccrualDetector:
        """The failure detector (read it; the node feeds it)."""
        return self._node.detector

    @property
    def ranges(self) -> tuple[TokenRange, ...]:
        """The ring segments this node replicates, in token order."""
        return tuple(s.range for s in self._node.replica.segments)

    def replicas(self, key: str | bytes) -> tuple[str, ...]:
        """Return `key`'s preference list (its primary replicas). Cost: O(len(key)).

        Raises:
            TypeError, ValueError: `key` is not a valid key.
        """
        return self._node.ring.preference_list(key_bytes(key))

    def state_of(self, key: str | bytes) -> DVVSet[bytes] | None:
        """Return this node's stored replica state of `key`, or `None`. Cost: one storage get.

        Raises:
            TypeError, ValueError: `key` is not a valid key.
            dynamo_core.errors.StorageError: the stored record is corrupt.
        """
        return self._node.stored_state(key_bytes(key))

    def keys(self) -> list[bytes]:
        """Return every key this node stores a replica of, in token order. Cost: O(keys)."""
        return self._node.replica.keys()

    def merkle_root(self, span: TokenRange) -> bytes:
        """Return the root of this node's tree over the replicated segment `span`.

        A segment the node holds nothing in has the root of an empty tree of its shape, so
        replicas with equal data have equal roots. Cost: O(changed leaves x depth).

        Raises:
            ValueError: `span` is not a segment this node replicates.
        """
        return self._node.merkle_root(span)

    def stats(self) -> dict[str, int]:
        """Counters of what the node has done, by name (sorted)."""
        return dict(sorted(self._node.stats.items()))

    def busy(self) -> bool:
        """Whether requests, forwards, anti-entropy sessions or hints are still in progress.

        A driver that wants to stop a node cleanly can wait until this is false.
        """
        return bool(
            self._coordination.busy()
            or self._anti_entropy.busy()
            or len(self._node.hints)
            or len(self._streams)
        )

    # -- membership ------------------------------------------------------------------------

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seed nodes this node gossips with besides the ring's members, sorted."""
        return self._node.seeds

    @property
    def ring_version(self) -> RingVersion:
        """The installed ring version, ``(epoch, fingerprint)``."""
        return self._node.membership.version

    @property
    def previous_ring(self) -> HashRing | None:
        """A copy of the ring before the change in progress, or `None` once settled."""
        previous = self._node.previous
        return None if previous is None else previous.copy()

    @property
    def membership(self) -> MembershipView:
        """A read-only view of the membership state: version, plan, progress, changes."""
        return self._members.view()

    @property
    def status(self) -> str:
        """This node's place in the cluster (one of `NODE_STATUSES`).

        ``"joining"``: its join is requested, or it is in the new ring while data moves;
        ``"member"``: it replicates data of the settled ring; ``"leaving"``: its leave is
        requested, or it is still in the previous ring, or it still holds data or hints it must
        hand over; ``"left"``: it has left and holds nothing; ``"outside"``: it never was a
        member of a version it knows. Cost: O(changes).
        """
        return self._members.status()

    def join(
        self, node: str, now: float, *, zone: str | None = None, weight: float = 1.0
    ) -> list[Effect]:
        """Ask the cluster to add `node` (an admin request; any node takes it).

        The request spreads by gossip; the claimant applies it in the next ring version, and
        the data of the ranges `node` takes streams to it. Start `node` (outside the ring,
        with seeds) before or after this call.

        Args:
            node: The node to add.
            now: The current time in seconds.
            zone: Its failure zone, or `None`.
            weight: Its relative weight (capacity).

        Returns:
            The effects (a gossip digest, and a new version if this node is the claimant).

        Raises:
            TypeError, ValueError: an argument is invalid. Nothing changes.
            dynamo_core.errors.ChangeRefused: `node` is already a member (or its join is already
                requested): ``already_member``. Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        self._members.check_request("join", node, zone, weight)
        return self._members.request("join", node, self._node.advance(now), zone, float(weight))

    def leave(self, node: str, now: float) -> list[Effect]:
        """Ask the cluster to remove `node` (an admin request; any node takes it).

        The leaving node streams every range it holds to the new replicas, hands over its
        hints, and reports ``status == "left"`` once the settled ring no longer contains it and
        it holds nothing.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: `node` is invalid. Nothing changes.
            dynamo_core.errors.ChangeRefused: `node` is not a member or already leaving
                (``not_member``), or the cluster would keep fewer than ``policy.n`` members
                (``too_few_members``). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        self._members.check_request("leave", node)
        return self._members.request("leave", node, self._node.advance(now), None, 1.0)

    def replace(self, old: str, new: str, now: float) -> list[Effect]:
        """Ask the cluster to put `new` in `old`'s place (Riak's ``cluster replace``).

        One ring version in which `new` takes exactly `old`'s partitions, zone and weight:
        only `old`'s data moves, all of it to `new`. Start `new` (outside the ring, with
        seeds) before or after this call; `old` hands over like a leaving node.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: an argument is invalid. Nothing changes.
            dynamo_core.errors.ChangeRefused: `old` is not a member or is leaving
                (``not_member``), or `new` is one or its join is requested
                (``already_member``). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        self._members.check_request("replace", old, new=new)
        return self._members.request("replace", old, self._node.advance(now), None, 1.0, new=new)

    def update_member(
        self, node: str, now: float, *, zone: str | None = None, weight: float = 1.0
    ) -> list[Effect]:
        """Ask the cluster to give member `node` this `zone` and `weight` in place.

        The next ring version rebalances for the new weight and respaces for the new zone;
        the data moves by the version's transfer plan, as for a join.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: an argument is invalid. Nothing changes.
            dynamo_core.errors.ChangeRefused: `node` is not a member or is leaving
                (``not_member``). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        self._members.check_request("update", node, zone, weight)
        return self._members.request("update", node, self._node.advance(now), zone, float(weight))

    # -- inputs ----------------------------------------------------------------------------

    def put(
        self,
        request_id: str,
        key: str | bytes,
        value: bytes,
        context: bytes | None,
        now: float,
    ) -> list[Effect]:
        """A client asks to write `value` under `key`, having read `context`.

        The node coordinates the write if it is one of the key's primaries (or believes every
        primary down), and otherwise forwards it to the first primary it believes up. The
        request ends with one [`Reply`][dynamo_core.node.Reply] carrying a
        [`PutReply`][dynamo_core.messages.PutReply] or a
        [`RequestFailed`][dynamo_core.messages.RequestFailed], possibly from a later input.

        Args:
            request_id: The client's id for the request, echoed in the reply.
            key: The key (`str` is encoded as UTF-8), at most 64 KiB.
            value: The new value.
            context: The context from the `GetReply` this write is based on: the write replaces
                exactly the values that read returned. `None` for a blind write, which replaces
                nothing (the value becomes a sibling of what is there).
            now: The current time in seconds, never earlier than the previous input's.

        Returns:
            The effects. Cost: one storage read and one atomic write of the key's state
            (O(size of the state)), plus O(n) for the coordinator and O(nodes) for the walk.

        Raises:
            TypeError: An argument has the wrong type.
            ValueError: An argument is invalid (a `context` the node did not produce is a
                `DecodeError`, a `ValueError`). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        request_id = _check_request_id(request_id)
        data = key_bytes(key)
        check_bytes(value, "value")
        clock = None if context is None else decode_context(context)
        t = self._node.advance(now)
        out: list[Effect] = []
        self._coordination.put(request_id, data, value, context, clock, t, out)
        return self._node.noted(out)

    def get(self, request_id: str, key: str | bytes, now: float) -> list[Effect]:
        """A client asks to read `key`.

        The request ends with one [`Reply`][dynamo_core.node.Reply] carrying a
        [`GetReply`][dynamo_core.messages.GetReply] (the siblings and the context to send back
        with the next put) or a [`RequestFailed`][dynamo_core.messages.RequestFailed].

        Args:
            request_id: The client's id for the request, echoed in the reply.
            key: The key.
            now: The current time in seconds.

        Returns:
            The effects. Cost: O(n) for the coordinator, O(nodes) for the walk.

        Raises:
            TypeError, ValueError: An argument is invalid. Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        request_id = _check_request_id(request_id)
        data = key_bytes(key)
        t = self._node.advance(now)
        out: list[Effect] = []
        self._coordination.get(request_id, data, t, out)
        return self._node.noted(out)

    def receive(self, sender: str, message: Message, now: float) -> list[Effect]:
        """Handle a message from the node `sender`.

        A message that makes no sense now (a late or duplicated reply, an answer for an
        exchange that timed out, a key this node does not replicate) is ignored and counted in
        ``stats()["messages_ignored"]``: a peer can never make the node raise.

        Returns:
            The effects. Cost: O(size of the message) (a merge per state it carries, a tree
            update per state that changed), plus the coordinator's O(n) for a reply.

        Raises:
            TypeError: `message` is not a node message or `sender` is not a `str`.
            ValueError: `sender` is not a valid node id.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        if (
            type(sender) is not str
            or not 0 < len(sender) <= MAX_NODE_ID_LEN
            or not sender.isascii()
        ):
            check_node_id(sender, "sender")  # the rare case, or a refusal
        t = self._node.advance(now)
        handler = self._handlers.get(type(message))
        if handler is None:
            raise TypeError(f"message must be a node message, not {type(message).__name__}")
        out: list[Effect] = []
        try:
            handler(sender, message, t, out)
        except StorageFull:
            self._node.storage_full(t)
        return self._node.noted(out)

    def on_timer(self, now: float) -> list[Effect]:
        """Handle every timer due at or before `now`.

        Timers are heartbeats, request and replica timeouts, forwards, anti-entropy rounds and
        sessions, and hint delivery.

        Calling it early is harmless. Call it again at [`deadline`][dynamo_core.node.Node.deadline].

        Returns:
            The effects. Cost: O(log n) per request or stream due, O(sessions), plus
            the work of whatever is due (heartbeats: O(nodes + hint targets); an anti-entropy
            offer: O(segments)).

        Raises:
            TypeError, ValueError: `now` is not a valid time.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        t = self._node.advance(now)
        out: list[Effect] = []
        if t < self._timers_held:
            return out
        try:
            self._timers(t, out)
        except StorageFull:
            self._node.storage_full(t)
            self._timers_held = t + self._node.config.storage_full_pause
        return self._node.noted(out)

    def _timers(self, t: float, out: list[Effect]) -> None:
        live = self._liveness
        if live.beat_due(t):
            live.heartbeat(t, out)
            self._members.retry_drop(t)
        self._members.on_timer(t, out)
        self._streams.on_timer(t, out)
        self._coordination.on_timer(t, out)
        self._anti_entropy.on_timer(t, out)
        live.on_handoff_timer(t, out)

    def deadline(self) -> float:
        """When [`on_timer`][dynamo_core.node.Node.on_timer] must next be called.

        There is always a next timer (heartbeats are periodic); it may be in the past, which
        means now. It is the earliest of the parts' own deadlines.
        Cost: O(1) amortized for the requests and streams (heaps), O(sessions) for the rest.
        """
        at = min(self._liveness.deadline(), self._members.deadline(), self._anti_entropy.deadline())
        due = self._coordination.deadline()
        if due is not None and due < at:
            at = due
        due = self._streams.deadline()
        if due is not None and due < at:
            at = due
        held = self._timers_held
        return at if at >= held else held

    @property
    def degraded(self) -> bool:
        """Whether the node refuses client writes because its storage is full.

        It clears by itself: after `NodeConfig.storage_full_pause` seconds the node tries to
        write again, and stays out of the degraded mode once a write succeeds.
        """
        return self._node.now < self._node.full_until

    def quarantined(self) -> list[bytes]:
        """The keys of the stored records quarantined so far (failed to decode), sorted."""
        return self._node.quarantined_keys()

    # -- cross-part orchestration -----------------------------------------------------------

    def _version_changed(self, before: VersionRecord, now: float, out: list[Effect]) -> None:
        """Install what a membership change requires: rings, trees, streams, drops."""
        node = self._node
        rec = node.membership.record
        new_version = rec.version != before.version
        if not new_version and rec.settled == before.settled:
            return
        node.ring = rec.ring
        node.previous = rec.previous
        node.stats["versions_installed"] += 1
        self._streams.version_installed(new_version)
        self._anti_entropy.clear()
        members = self._members
        members.install()
        members.drop_foreign(now)
        members.clean_markers(new_version)
        self._liveness.rehome_hints(now)
        members.forget_departed()
        out.append(RingChanged(rec.version, rec.settled, len(rec.plan)))

    # -- invariants --------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Assert the node's representation invariants (tests call this after every input).

        Rebuilds every tree from storage and compares roots: O(keys).
        """
        self._node._check_invariants(foreign=self._members.foreign)
        for part in (self._liveness, self._coordination, self._anti_entropy, self._streams):
            part._check_invariants()
