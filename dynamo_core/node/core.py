"""`Node`: the wiring of the node's parts (see the package docstring)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Literal, assert_never, cast

import attrs

from dynamo_core import codec, merkle
from dynamo_core._check import (
    check_bytes,
    check_key,
    check_node_id,
    check_positive_float,
    check_time,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.effects import SetTimer
from dynamo_core.epochs import ActorEpochs
from dynamo_core.errors import (
    CorruptRecord,
    DecodeError,
    DotCollision,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    StorageError,
    StorageFull,
    Unavailable,
)
from dynamo_core.failure import PhiAccrualDetector
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.hints import (
    DeliveryFailed,
    Handoff,
    HintBatch,
    HintsDelivered,
    HintsExpired,
    HintStore,
    SendHints,
)
from dynamo_core.interfaces import Storage
from dynamo_core.limits import unstorable, version_refusal
from dynamo_core.membership import (
    Change,
    GossipDigest,
    GossipUpdate,
    Membership,
    RingVersion,
    VersionRecord,
    stream_sources,
)
from dynamo_core.messages import (
    MAX_KEY_BYTES,
    MAX_REPAIR_KEYS,
    ExchangeMessage,
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    GetReply,
    Heartbeat,
    HintAck,
    Message,
    PutReply,
    ReadRepair,
    RepairPull,
    RepairPush,
    RequestFailed,
    RequestResult,
    StoreReply,
    StoreRequest,
    SyncDiff,
    SyncOffer,
)
from dynamo_core.node import keyspace
from dynamo_core.node.config import NodeConfig
from dynamo_core.node.contexts import EMPTY_CONTEXT, decode_context, encode_context
from dynamo_core.node.effects import (
    AntiEntropyDone,
    Effect,
    MembershipView,
    Quarantined,
    Reply,
    RingChanged,
    Send,
    TransferDone,
    VersionRefused,
)
from dynamo_core.node.replica import Replica, Segment, Write
from dynamo_core.quorum import (
    Complete,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.ring import HashRing
from dynamo_core.storage import MemoryStorage
from dynamo_core.streaming import (
    RangeStream,
    SendPull,
    StoreItems,
    StreamBatch,
    StreamFinished,
    StreamPull,
)
from dynamo_core.vclock import VectorClock

__all__ = ["Node"]

_MAX_STREAM_BATCH: Final = 8 * 2**20
_MAX_INCARNATION: Final = 2**31 - 1
_RANDOM_EPOCHS: Final = (2**40, 2**52)
_MAX_REFUSED: Final = 1024  # refused ring versions remembered (each is reported once)

# -- internal bookkeeping ----------------------------------------------------------------------


class _Request:
    """A client request this node coordinates (or forwarded to it)."""

    __slots__ = (
        "coordinator",
        "epoch",
        "forward",
        "joint",
        "kind",
        "op",
        "reported",
        "request_id",
    )

    def __init__(  # noqa: PLR0917 - internal bookkeeping
        self,
        op: int,
        kind: Literal["put", "get"],
        coordinator: PutCoordinator[DVVSet[bytes]] | GetCoordinator[DVVSet[bytes]],
        request_id: str | None,
        forward: tuple[str, int] | None,
        epoch: int = 0,
        joint: _Joint | None = None,
    ) -> None:
        self.op = op
        self.kind = kind
        self.coordinator = coordinator
        self.request_id = request_id
        self.forward = forward
        self.epoch = epoch  # the ring epoch the request was placed with
        self.joint = joint  # the write of a transition: one quorum per placement
        self.reported: set[str] = set()  # timed-out replicas already marked suspect


class _Joint:
    """A write during a ring transition: it succeeds when both placements' quorums do."""

    __slots__ = ("parts", "results")

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self.results: list[object] = []


class _Stream:
    """An incoming range stream of the current version."""

    __slots__ = ("core", "keys")

    def __init__(self, core: RangeStream) -> None:
        self.core = core
        self.keys = 0


class _Forwarded:
    """A client request this node forwarded to a primary."""

    __slots__ = ("expires", "request_id", "target")

    def __init__(self, request_id: str, target: str, expires: float) -> None:
        self.request_id = request_id
        self.target = target
        self.expires = expires


class _Exchange:
    """One side of a Merkle exchange with a peer."""

    __slots__ = ("core", "expires", "peer", "range", "role", "session", "timer")

    def __init__(
        self,
        *,
        core: merkle.MerkleExchange,
        peer: str,
        session: int,
        rng: TokenRange,
        role: Literal["initiator", "responder"],
        expires: float,
    ) -> None:
        self.core = core
        self.peer = peer
        self.session = session
        self.range = rng
        self.role = role
        self.expires = expires
        self.timer: float | None = None


_STAT_NAMES: Final = (
    "puts_coordinated",
    "gets_coordinated",
    "requests_forwarded",
    "replica_writes",
    "hints_stored",
    "hints_dropped",
    "hints_received",
    "read_repairs",
    "sync_offers",
    "exchanges",
    "keys_pushed",
    "keys_pulled",
    "messages_ignored",
    "gossip_sent",
    "versions_installed",
    "stores_refused_stale",
    "streams_completed",
    "stream_keys_received",
    "stream_keys_served",
    "keys_dropped",
    "keys_rehinted",
    "writes_refused",
    "sibling_warnings",
    "merges_refused",
    "records_quarantined",
    "storage_full",
    "versions_refused",
    "dot_collisions",
)


def _key_bytes(key: object, name: str = "key") -> bytes:
    check_key(key, name)
    if type(key) is str:
        try:
            data = key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} must be encodable as UTF-8 (no lone surrogates)") from None
    else:
        data = cast("bytes", key)
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"{name} must be at most {MAX_KEY_BYTES} bytes long, got {len(data)}")
    return data


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


def _fresh_epoch(node_id: str, incarnation: int) -> int:
    """A random first epoch for a node whose storage holds none (it may have lost its data)."""
    rng = random.Random(f"dynamo-core/epoch/{node_id}/{incarnation}")  # noqa: S311 - no secrecy
    return rng.randrange(*_RANDOM_EPOCHS)


def _failed(error: Unavailable) -> RequestFailed:
    return RequestFailed(str(error)[: codec.DEFAULT_MAX_STR], error.required, error.answered)


def _refused(error: LimitExceeded) -> RequestFailed:
    return RequestFailed(str(error)[: codec.DEFAULT_MAX_STR], code=error.limit)


_STORAGE_FULL: Final = RequestFailed(
    "storage full: this node refuses writes until a write succeeds again; try another node",
    code="storage_full",
)


# -- the node ----------------------------------------------------------------------------------


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
        "_ae_cursor",
        "_change_seq",
        "_config",
        "_detector",
        "_epochs",
        "_exchanges",
        "_foreign",
        "_forwards",
        "_full_until",
        "_gossip_rng",
        "_handoff",
        "_handoff_due",
        "_hb_seen",
        "_hb_seq",
        "_hb_targets",
        "_hints",
        "_id",
        "_incarnation",
        "_life",
        "_membership",
        "_next_ae",
        "_next_gossip",
        "_next_hb",
        "_next_id",
        "_notes",
        "_now",
        "_offers",
        "_peers",
        "_policy",
        "_previous",
        "_refused",
        "_replica",
        "_requests",
        "_ring",
        "_seeds",
        "_seen_forwards",
        "_served",
        "_stats",
        "_storage",
        "_streams",
        "_streams_due",
        "_timers_held",
    )

    def __init__(  # noqa: PLR0915 - the node composes every primitive
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
                raise TypeError(
                    f"first_epoch must be an int or None, not {type(first_epoch).__name__}"
                )
            if not 0 <= first_epoch <= codec.MAX_COUNTER:
                raise ValueError(f"first_epoch must be in 0..2**63-1, got {first_epoch}")
        self._id = node_id
        self._seeds = tuple(seed_list)
        self._storage = storage
        self._incarnation = incarnation
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        self._notes: list[Effect] = []  # informational effects of the current input
        self._membership = self._load_membership(node_id, ring, policy)
        self._ring = self._membership.record.ring
        self._previous = self._membership.record.previous
        self._policy = policy
        self._config = config
        self._storage = storage
        self._incarnation = incarnation
        self._now = start
        self._next_id = incarnation << 32
        self._refused: set[RingVersion] = set()  # ring versions refused (reported once)
        self._full_until = 0.0  # client writes are refused until then (storage full)
        self._timers_held = 0.0  # a timer pass failed on a full disk: no timers until then
        stored_epoch = self._read_epoch()
        if stored_epoch is None:
            stored_epoch = (
                _fresh_epoch(node_id, incarnation) if first_epoch is None else first_epoch
            )
        self._epochs = ActorEpochs(node_id, epoch=stored_epoch)
        self._detector = PhiAccrualDetector(
            threshold=config.phi_threshold,
            first_interval=config.heartbeat_interval,
            max_interval=2 * config.heartbeat_interval,
        )
        self._hints = self._open_hints(storage, config)
        self._handoff: Handoff[DVVSet[bytes]] = Handoff(
            self._hints,
            timeout=config.handoff_timeout,
            backoff=config.handoff_backoff,
            max_backoff=max(60.0, config.handoff_backoff),
            rate=config.handoff_rate,
            poll_interval=config.heartbeat_interval,
            first_batch_id=incarnation << 32,
        )
        self._handoff_due: float | bool | None = True  # True: recompute
        self._requests: dict[int, _Request] = {}
        self._forwards: dict[int, _Forwarded] = {}
        self._seen_forwards: dict[tuple[str, int], float] = {}  # (sender, fwd) -> forget at
        self._offers: dict[int, tuple[str, float]] = {}
        self._exchanges: dict[tuple[str, int, str], _Exchange] = {}
        self._hb_seq = 0
        self._hb_seen: dict[str, tuple[int, int]] = {}
        self._next_hb = start
        self._ae_cursor = 0
        self._next_ae = start + config.anti_entropy_interval
        self._peers: tuple[str, ...] = ()
        self._hb_targets: tuple[str, ...] = ()
        self._life = self._load_life()
        self._replica = Replica(storage, self._ring.token, self._stats, self._notes)
        self._set_served(self._load_served())
        self._gossip_rng = random.Random(f"dynamo-core/gossip/{node_id}/{incarnation}")  # noqa: S311
        self._next_gossip = start
        self._change_seq = 0
        self._streams: dict[int, _Stream] = {}
        self._streams_due = True
        self._foreign = False
        self._install_ring()
        self._drop_foreign(start)

    # -- public views ----------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._id

    @property
    def ring(self) -> HashRing:
        """A copy of the ring this node places keys with."""
        return self._ring.copy()

    @property
    def policy(self) -> QuorumPolicy:
        """The quorum policy."""
        return self._policy

    @property
    def config(self) -> NodeConfig:
        """The node's timings and limits."""
        return self._config

    @property
    def storage(self) -> Storage:
        """The node's storage (replica states, epoch and hints)."""
        return self._storage

    @property
    def incarnation(self) -> int:
        """The incarnation this node was started with."""
        return self._incarnation

    @property
    def epoch(self) -> int:
        """The highest actor epoch minted so far (see `ActorEpochs`)."""
        return self._epochs.epoch

    @property
    def hints(self) -> HintStore[DVVSet[bytes]]:
        """The hints this node keeps for failed nodes (read it; do not write to it)."""
        return self._hints

    @property
    def detector(self) -> PhiAccrualDetector:
        """The failure detector (read it; the node feeds it)."""
        return self._detector

    @property
    def ranges(self) -> tuple[TokenRange, ...]:
        """The ring segments this node replicates, in token order."""
        return tuple(r.range for r in self._replica.segments)

    def replicas(self, key: str | bytes) -> tuple[str, ...]:
        """Return `key`'s preference list (its primary replicas). Cost: O(len(key)).

        Raises:
            TypeError, ValueError: `key` is not a valid key.
        """
        return self._ring.preference_list(_key_bytes(key))

    def state_of(self, key: str | bytes) -> DVVSet[bytes] | None:
        """Return this node's stored replica state of `key`, or `None`. Cost: one storage get.

        Raises:
            TypeError, ValueError: `key` is not a valid key.
            dynamo_core.errors.StorageError: the stored record is corrupt.
        """
        data = _key_bytes(key)
        skey = keyspace.data_key(data, self._ring.token(data))
        raw = self._storage.get(skey)
        if raw is None:
            return None
        state = self._replica.state(skey, raw)
        if state is None:
            raise StorageError(
                f"the record of {data[:64]!r} is quarantined: {self._replica.quarantined[skey]}"
            )
        return state

    def keys(self) -> list[bytes]:
        """Return every key this node stores a replica of, in token order. Cost: O(keys)."""
        return self._replica.keys()

    def merkle_root(self, rng: TokenRange) -> bytes:
        """Return the root of this node's tree over the replicated segment `rng`.

        A segment the node holds nothing in has the root of an empty tree of its shape, so
        replicas with equal data have equal roots. Cost: O(changed leaves x depth).

        Raises:
            ValueError: `rng` is not a segment this node replicates.
        """
        r = self._replica.segment(rng.start) if isinstance(rng, TokenRange) else None
        if r is None or r.range != rng:
            raise ValueError(f"rng must be a segment this node replicates, got {rng!r}")
        return self._replica.tree(r).root

    def stats(self) -> dict[str, int]:
        """Counters of what the node has done, by name (sorted)."""
        return dict(sorted(self._stats.items()))

    def busy(self) -> bool:
        """Whether requests, forwards, anti-entropy sessions or hints are still in progress.

        A driver that wants to stop a node cleanly can wait until this is false.
        """
        return bool(
            self._requests
            or self._forwards
            or self._offers
            or self._exchanges
            or len(self._hints)
            or self._streams
        )

    # -- membership ------------------------------------------------------------------------

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seed nodes this node gossips with besides the ring's members, sorted."""
        return self._seeds

    @property
    def ring_version(self) -> RingVersion:
        """The installed ring version, ``(epoch, fingerprint)``."""
        return self._membership.version

    @property
    def previous_ring(self) -> HashRing | None:
        """A copy of the ring before the change in progress, or `None` once settled."""
        return None if self._previous is None else self._previous.copy()

    @property
    def membership(self) -> MembershipView:
        """A read-only view of the membership state: version, plan, progress, changes."""
        m = self._membership
        rec = m.record
        return MembershipView(
            rec.version,
            rec.settled,
            rec.plan,
            rec.completed,
            m.pending(),
            m.claimant(),
            m.outside,
        )

    @property
    def status(self) -> str:  # noqa: PLR0911 - one return per status
        """This node's place in the cluster (one of `NODE_STATUSES`).

        ``"joining"``: its join is requested, or it is in the new ring while data moves;
        ``"member"``: it replicates data of the settled ring; ``"leaving"``: its leave is
        requested, or it is still in the previous ring, or it still holds data or hints it must
        hand over; ``"left"``: it has left and holds nothing; ``"outside"``: it never was a
        member of a version it knows. Cost: O(changes).
        """
        m = self._membership
        rec = m.record
        me = self._id
        changes = [c for c in m.changes() if c.node == me]
        pending = [c for c in changes if c.id not in rec.applied]
        last = pending[-1].op if pending else None
        if last == "replace":
            last = "leave"
        in_prev = rec.previous is not None and me in rec.previous
        if me in rec.ring:
            if last == "leave":
                return "leaving"
            if rec.previous is not None and not in_prev:
                return "joining"
            return "member"
        if in_prev or last == "leave":
            return "leaving"
        if last == "join":
            return "joining"
        if any(c.op in ("leave", "replace") for c in changes):
            return "leaving" if self._replica.holds_any() or len(self._hints) else "left"
        return "outside"

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
            TypeError, ValueError: an argument is invalid, or `node` is already a member (or
                its join is already requested). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        check_node_id(node, "node")
        if zone is not None:
            check_node_id(zone, "zone")
        check_positive_float(weight, "weight")
        if self._will_be_member(node):
            raise ValueError(f"node {node!r} is already a member (or its join is requested)")
        return self._request_change("join", node, now, zone, float(weight))

    def leave(self, node: str, now: float) -> list[Effect]:
        """Ask the cluster to remove `node` (an admin request; any node takes it).

        The leaving node streams every range it holds to the new replicas, hands over its
        hints, and reports ``status == "left"`` once the settled ring no longer contains it and
        it holds nothing.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: `node` is invalid or not a member (or already leaving), or
                the cluster would keep fewer than ``policy.n`` members. Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        check_node_id(node, "node")
        if not self._will_be_member(node):
            raise ValueError(f"node {node!r} is not a member (or is already leaving)")
        remaining = sum(1 for n in self._future_members() if n != node)
        if remaining < self._policy.n:
            raise ValueError(
                f"removing {node!r} would leave {remaining} members, fewer than n={self._policy.n}"
            )
        return self._request_change("leave", node, now, None, 1.0)

    def replace(self, old: str, new: str, now: float) -> list[Effect]:
        """Ask the cluster to put `new` in `old`'s place (Riak's ``cluster replace``).

        One ring version in which `new` takes exactly `old`'s partitions, zone and weight:
        only `old`'s data moves, all of it to `new`. Start `new` (outside the ring, with
        seeds) before or after this call; `old` hands over like a leaving node.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: an argument is invalid, `old` is not a member (or is
                leaving), or `new` is one (or its join is requested). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        check_node_id(old, "old")
        check_node_id(new, "new")
        if not self._will_be_member(old):
            raise ValueError(f"node {old!r} is not a member (or is already leaving)")
        if self._will_be_member(new):
            raise ValueError(f"node {new!r} is already a member (or its join is requested)")
        return self._request_change("replace", old, now, None, 1.0, new=new)

    def update_member(
        self, node: str, now: float, *, zone: str | None = None, weight: float = 1.0
    ) -> list[Effect]:
        """Ask the cluster to give member `node` this `zone` and `weight` in place.

        The next ring version rebalances for the new weight and respaces for the new zone;
        the data moves by the version's transfer plan, as for a join.

        Returns:
            The effects.

        Raises:
            TypeError, ValueError: an argument is invalid, or `node` is not a member (or is
                leaving). Nothing changes.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        check_node_id(node, "node")
        if zone is not None:
            check_node_id(zone, "zone")
        check_positive_float(weight, "weight")
        if not self._will_be_member(node):
            raise ValueError(f"node {node!r} is not a member (or is already leaving)")
        return self._request_change("update", node, now, zone, float(weight))

    def _future_members(self) -> list[str]:
        """The ring's members once every requested change is applied (id order)."""
        members = set(self._ring.nodes)
        for change in self._membership.pending():
            if change.op == "join":
                members.add(change.node)
            elif change.op == "leave":
                members.discard(change.node)
            elif change.op == "replace" and change.node in members and change.new:
                members.discard(change.node)
                members.add(change.new)
        return sorted(members)

    def _will_be_member(self, node: str) -> bool:
        return node in self._future_members()

    def _request_change(
        self,
        op: Literal["join", "leave", "replace", "update"],
        node: str,
        now: float,
        zone: str | None,
        weight: float,
        *,
        new: str | None = None,
    ) -> list[Effect]:
        t = self._advance(now)
        self._change_seq += 1
        change_id = f"{self._id}/{self._incarnation}/{self._change_seq}"
        change = Change(change_id, op, node, zone, weight, new)
        out: list[Effect] = []
        before = self._membership.record
        self._membership.request(change)
        self._persist_membership()
        self._maybe_mint(before, t, out)
        self._gossip(t, out, schedule=False)
        return out

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
        data = _key_bytes(key)
        check_bytes(value, "value")
        clock = None if context is None else decode_context(context)
        t = self._advance(now)
        out: list[Effect] = []
        refusal = self._config.limits.check_value(value)
        if refusal is not None:
            self._stats["writes_refused"] += 1
            out.append(Reply(request_id, _refused(refusal)))
            return out
        if not self._ring.nodes:
            out.append(Reply(request_id, RequestFailed("this node has not learned the ring yet")))
            return out
        target = self._forward_target(data, t)
        if target is not None:
            fwd = self._track_forward(request_id, target, t)
            out.append(Send(target, Forward(fwd, "put", data, value, context)))
            return out
        self._coordinate_put(
            key=data,
            value=value,
            context=clock,
            request_id=request_id,
            forward=None,
            now=t,
            out=out,
        )
        return self._noted(out)

    def _track_forward(self, request_id: str, target: str, t: float) -> int:
        """Remember a request forwarded to `target` and return its forwarding id."""
        fwd = self._new_id()
        self._forwards[fwd] = _Forwarded(request_id, target, t + self._forward_timeout())
        self._stats["requests_forwarded"] += 1
        return fwd

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
        data = _key_bytes(key)
        t = self._advance(now)
        out: list[Effect] = []
        if not self._ring.nodes:
            out.append(Reply(request_id, RequestFailed("this node has not learned the ring yet")))
            return out
        target = self._forward_target(data, t)
        if target is not None:
            fwd = self._track_forward(request_id, target, t)
            out.append(Send(target, Forward(fwd, "get", data)))
            return out
        self._coordinate_get(data, request_id, None, t, out)
        return self._noted(out)

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
        check_node_id(sender, "sender")
        t = self._advance(now)
        out: list[Effect] = []
        try:
            self._dispatch(sender, message, t, out)
        except StorageFull:
            self._storage_full(t)
        return self._noted(out)

    def _dispatch(  # noqa: PLR0912, PLR0915 - one case per message kind
        self, sender: str, message: Message, t: float, out: list[Effect]
    ) -> None:
        match message:
            case Heartbeat():
                self._on_heartbeat(sender, message, t)
                if sender not in self._hb_targets:
                    # A node outside the membership (joining, left, still handing hints over)
                    # hears from us only this way: answer its beat with one of ours.
                    out.append(Send(sender, Heartbeat(self._incarnation, self._hb_seq)))
            case StoreRequest():
                self._on_store(sender, message, t, out)
            case StoreReply():
                self._on_store_reply(sender, message, t, out)
            case FetchRequest():
                state = self._local_fetch(message.key, message.hint)
                out.append(Send(sender, FetchReply(message.op, state)))
            case FetchReply():
                self._on_fetch_reply(sender, message, t, out)
            case ReadRepair():
                self._stats["read_repairs"] += 1
                self._apply_store(message.key, message.state, message.hint, t)
            case Forward():
                self._on_forward(sender, message, t, out)
            case ForwardReply():
                forwarded = self._forwards.get(message.fwd)
                if forwarded is None or forwarded.target != sender:
                    self._stats["messages_ignored"] += 1
                else:
                    del self._forwards[message.fwd]
                    out.append(Reply(forwarded.request_id, message.result))
            case HintBatch():
                self._on_hints(sender, message, t, out)
            case HintAck():
                self._on_hint_ack(sender, message, t, out)
            case SyncOffer():
                self._on_sync_offer(sender, message, out)
            case SyncDiff():
                self._on_sync_diff(sender, message, t, out)
            case ExchangeMessage():
                self._on_exchange_message(sender, message, t, out)
            case RepairPush():
                for key, state in message.states:
                    if self._replica.segment_of(self._ring.token(key)) is not None:
                        self._absorb(key, state)  # a refusal is counted; the next round retries
                    else:
                        self._stats["messages_ignored"] += 1
            case RepairPull():
                states = tuple(
                    (key, state)
                    for key in message.keys
                    if (state := self._replica.load(key)) is not None
                )
                if states:
                    out.append(Send(sender, RepairPush(states)))
            case GossipDigest():
                self._on_digest(sender, message, t, out)
            case GossipUpdate():
                self._on_update(sender, message, t, out)
            case StreamPull():
                self._on_stream_pull(sender, message, out)
            case StreamBatch():
                self._on_stream_batch(sender, message, t, out)
            case _:
                raise TypeError(f"message must be a node message, not {type(message).__name__}")

    def on_timer(self, now: float) -> list[Effect]:
        """Handle every timer due at or before `now`.

        Timers are heartbeats, request and replica timeouts, forwards, anti-entropy rounds and
        sessions, and hint delivery.

        Calling it early is harmless. Call it again at [`deadline`][dynamo_core.node.Node.deadline].

        Returns:
            The effects. Cost: O(requests + forwards + exchanges + hint targets), plus the
            work of whatever is due (heartbeats: O(nodes); an anti-entropy offer: O(segments)).

        Raises:
            TypeError, ValueError: `now` is not a valid time.
            dynamo_core.errors.LocalProtocolError: `now` went backwards.
        """
        t = self._advance(now)
        out: list[Effect] = []
        if t < self._timers_held:
            return out
        try:
            self._timers(t, out)
        except StorageFull:
            self._storage_full(t)
            self._timers_held = t + self._config.storage_full_pause
        return self._noted(out)

    def _timers(self, t: float, out: list[Effect]) -> None:  # noqa: PLR0912 - one per timer
        if t >= self._next_hb:
            self._heartbeat(t, out)
            if self._foreign:  # data the last drop could not hand over yet: retry
                self._drop_foreign(t)
                self._clean_markers(new_version=False)
        if t >= self._next_gossip:
            self._maybe_mint(self._membership.record, t, out)  # a version may have settled
            self._gossip(t, out)
        if self._streams_due and t >= self._full_until:
            self._streams_due = False
            self._start_streams(t, out)
        for stream in list(self._streams.values()):
            due = stream.core.deadline()
            if due is not None and due <= t:
                self._drive_stream(stream, stream.core.on_timer(t), t, out)
        for request in list(self._requests.values()):
            due = request.coordinator.deadline()
            if due is not None and due <= t:
                self._drive(request, request.coordinator.on_timer(t), t, out)
        for fwd, forwarded in list(self._forwards.items()):
            if forwarded.expires <= t:
                del self._forwards[fwd]
                self._detector.suspect(forwarded.target, t)
                reason = f"{forwarded.target} did not answer the forwarded request in time"
                out.append(Reply(forwarded.request_id, RequestFailed(reason)))
        for session, (_, expires) in list(self._offers.items()):
            if expires <= t:
                del self._offers[session]
        for origin, forget in list(self._seen_forwards.items()):
            if forget > t:
                break  # inserted in time order
            del self._seen_forwards[origin]
        for ident, exchange in list(self._exchanges.items()):
            if exchange.expires <= t:
                del self._exchanges[ident]
            elif exchange.timer is not None and exchange.timer <= t:
                exchange.timer = None
                self._drive_exchange(exchange, exchange.core.on_timer(t), t, out)
        if t >= self._next_ae:
            self._next_ae = t + self._config.anti_entropy_interval
            if t >= self._full_until:  # a full disk: do not pull more data in
                self._start_sync(t, out)
        due = self._handoff_deadline()
        if due is not None and due <= t:
            self._handoff_effects(self._handoff.on_timer(t), t, out)

    def deadline(self) -> float:
        """When [`on_timer`][dynamo_core.node.Node.on_timer] must next be called.

        There is always a next timer (heartbeats are periodic); it may be in the past, which
        means now.
        Cost: O(requests + forwards + exchanges).
        """
        at = min(self._next_hb, self._next_ae, self._next_gossip)
        if self._streams_due:
            at = max(self._now, self._full_until)
        for stream in self._streams.values():
            due = stream.core.deadline()
            if due is not None and due < at:
                at = due
        for request in self._requests.values():
            due = request.coordinator.deadline()
            if due is not None and due < at:
                at = due
        for forwarded in self._forwards.values():
            at = min(at, forwarded.expires)
        for _, expires in self._offers.values():
            at = min(at, expires)
        for exchange in self._exchanges.values():
            at = min(at, exchange.expires)
            if exchange.timer is not None:
                at = min(at, exchange.timer)
        due = self._handoff_deadline()
        if due is not None:
            at = min(at, due)
        return max(at, self._timers_held)

    def _handoff_deadline(self) -> float | None:
        """The handoff's deadline, cached: it changes only on handoff inputs and new hints."""
        due = self._handoff_due
        if due is True:
            due = self._handoff_due = self._handoff.deadline()
        return cast("float | None", due)

    # -- time and ids ----------------------------------------------------------------------

    def _advance(self, now: object) -> float:
        t = check_time(now)
        if t < self._now:
            raise LocalProtocolError(f"now went backwards: {t} < {self._now}")
        self._now = t
        return t

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _noted(self, out: list[Effect]) -> list[Effect]:
        """Append the informational effects noted during this input (quarantined records)."""
        if self._notes:
            out.extend(self._notes)
            self._notes.clear()
        return out

    def _storage_full(self, now: float) -> None:
        """A write failed with `StorageFull`: refuse client writes for a while (degraded)."""
        self._stats["storage_full"] += 1
        self._full_until = now + self._config.storage_full_pause

    @property
    def degraded(self) -> bool:
        """Whether the node refuses client writes because its storage is full.

        It clears by itself: after `NodeConfig.storage_full_pause` seconds the node tries to
        write again, and stays out of the degraded mode once a write succeeds.
        """
        return self._now < self._full_until

    def quarantined(self) -> list[bytes]:
        """The keys of the stored records quarantined so far (failed to decode), sorted."""
        return sorted(keyspace.key_of(skey) for skey in self._replica.quarantined)

    def _forward_timeout(self) -> float:
        timeout = self._config.forward_timeout
        return 2 * self._config.request_timeout if timeout is None else timeout

    # -- ring-derived state (the seam for membership changes) -------------------------------

    def _segments(self) -> list[tuple[TokenRange, tuple[str, ...]]]:
        """The ring's segments with their replicas.

        During a transition: the segments of both rings, each with the union of its replicas
        in the two placements (the new ring's first). Cost: O(S * replicas).
        """
        ring, prev = self._ring, self._previous
        if prev is None:
            return ring.segments()
        cuts = sorted({r.start for r, _ in ring.segments()} | {r.start for r, _ in prev.segments()})
        out = []
        for i, cut in enumerate(cuts):
            end = cuts[i + 1] if i + 1 < len(cuts) else (cuts[0] or TOKEN_SPACE)
            plist = ring.preference_list_for_token(cut)
            extra = tuple(n for n in prev.preference_list_for_token(cut) if n not in plist)
            out.append((TokenRange(cut, end), plist + extra))
        return out

    def _install_ring(self) -> None:
        """Recompute everything derived from the ring(s): replicated segments and peers."""
        ranges: list[Segment] = []
        peers: set[str] = set()
        for rng, replicas in self._segments():
            if self._id in replicas:
                depth = min(self._config.merkle_depth, rng.size.bit_length() - 1)
                ranges.append(Segment(rng, replicas, depth))
                peers.update(node for node in replicas if node != self._id)
        ranges.sort(key=lambda r: r.range.start)
        self._replica.install(ranges, self._ring.token)
        self._peers = tuple(sorted(peers))
        members = set(self._membership.record.members()) | set(self._seeds)
        members.discard(self._id)
        self._hb_targets = tuple(sorted(members))

    # -- membership: persistence, gossip, versions ------------------------------------------

    def _load_membership(self, node_id: str, ring: HashRing, policy: QuorumPolicy) -> Membership:
        raw = self._storage.get(keyspace.MEMBERSHIP_KEY)
        hash_key = ring._hash_key
        if raw is not None:
            try:
                loaded = Membership.from_dict(
                    codec.loads(raw), hash_key=hash_key, min_members=policy.n
                )
            except DecodeError as exc:  # start from the bootstrap ring; gossip brings the rest
                self._set_aside(keyspace.MEMBERSHIP_KEY, raw, f"corrupt membership record: {exc}")
            else:
                if loaded.record.ring.replicas != policy.n:
                    raise StorageError("the stored ring's replicas differ from policy.n")
                return loaded
        record = VersionRecord(0, ring.copy())
        return Membership(node_id, record, outside=node_id not in ring, min_members=policy.n)

    def _persist_membership(self) -> None:
        self._storage.put(keyspace.MEMBERSHIP_KEY, codec.dumps(self._membership.to_dict()))

    def _open_hints(self, storage: Storage, config: NodeConfig) -> HintStore[DVVSet[bytes]]:
        """Open the hint store; a corrupt one is moved under ``q/`` whole and started afresh.

        Its hints are kept for the operator, not delivered: anti-entropy repairs what they held.
        """

        def open_store() -> HintStore[DVVSet[bytes]]:
            return HintStore(
                storage,
                max_hints_per_target=config.max_hints_per_target,
                max_bytes_per_target=config.max_hint_bytes_per_target,
                ttl=config.hint_ttl,
                namespace=keyspace.HINTS_NS,
            )

        try:
            return open_store()
        except CorruptRecord as exc:
            records = list(storage.scan(keyspace.HINTS_NS, keyspace.HINTS_END))
            for i in range(0, len(records), 1000):
                chunk = records[i : i + 1000]
                storage.write_batch(
                    [(keyspace.quarantine_key(k), v) for k, v in chunk], [k for k, _ in chunk]
                )
            self._stats["records_quarantined"] += 1
            self._notes.append(Quarantined(keyspace.HINTS_NS, str(exc)[: codec.DEFAULT_MAX_STR]))
            return open_store()

    def _set_aside(self, key: bytes, raw: bytes, reason: str) -> None:
        """Quarantine a corrupt node record: move it under ``q/``, note it, go on without it."""
        self._storage.write_batch([(keyspace.quarantine_key(key), raw)], [key])
        self._stats["records_quarantined"] += 1
        self._notes.append(Quarantined(key, reason[: codec.DEFAULT_MAX_STR]))

    def _load_life(self) -> int:
        raw = self._storage.get(keyspace.LIFE_KEY)
        life = None if raw is None else keyspace.decode_life(raw)
        if life is not None:
            return life
        rng = random.Random(f"dynamo-core/life/{self._id}/{self._incarnation}")  # noqa: S311
        life = rng.getrandbits(62) + 1
        self._storage.put(keyspace.LIFE_KEY, keyspace.encode_life(life))
        return life

    def _load_served(self) -> list[tuple[int, int, TokenRange]]:
        served = []
        for skey, raw in list(self._storage.scan(keyspace.SERVED, keyspace.SERVED_END)):
            try:
                rng = TokenRange.from_dict(codec.loads(raw))
            except DecodeError as exc:  # forgotten: the range is handed over as hints instead
                self._set_aside(skey, raw, f"corrupt served-stream record: {exc}")
                continue
            served.append((*keyspace.served_of(skey), rng))
        return served

    def _set_served(self, served: list[tuple[int, int, TokenRange]]) -> None:
        """The streams this node began serving; writes to their ranges are marked dirty."""
        self._served = served
        self._replica.serving = tuple(rng for _, _, rng in served)

    def _gossip(self, now: float, out: list[Effect], *, schedule: bool = True) -> None:
        """Send the membership digest to one random member or seed."""
        if schedule:
            self._next_gossip = now + self._config.gossip_interval
        peers = self._hb_targets
        if not peers:
            return
        peer = peers[self._gossip_rng.randrange(len(peers))]
        self._stats["gossip_sent"] += 1
        out.append(Send(peer, self._membership.digest()))

    def _on_digest(self, sender: str, digest: GossipDigest, now: float, out: list[Effect]) -> None:
        m = self._membership
        rec = m.record
        mine = rec.version
        theirs = digest.version
        mine_digest = m.digest()
        full: VersionRecord | None = None
        completed: tuple[tuple[int, str], ...] = ()
        if not m.outside and (digest.outside or mine > theirs):
            full = rec
        elif not m.outside and theirs == mine:
            known = set(digest.completed)
            completed = tuple(item for item in rec.completed if item[0] not in known)
        changes = m.changes() if digest.changes != mine_digest.changes else ()
        if full is not None or completed or changes:
            update = GossipUpdate(full, rec.epoch, mine.fingerprint, completed, changes)
            out.append(Send(sender, update))
        if digest.answer:
            return
        mine_done = {i for i, _ in rec.completed}
        lacking = (
            (not digest.outside and (theirs > mine or m.outside))
            or (theirs == mine and bool(set(digest.completed) - mine_done))
            or digest.changes != mine_digest.changes
        )
        if lacking:
            out.append(Send(sender, m.digest(answer=True)))

    def _on_update(self, sender: str, update: GossipUpdate, now: float, out: list[Effect]) -> None:
        m = self._membership
        before = m.record
        changed = False
        for change in update.changes:
            changed = m.request(change) or changed
        record = update.record
        if record is not None and record.version > before.version:
            reason = self._version_refusal(record)
            if reason is not None:
                self._stats["versions_refused"] += 1
                if record.version not in self._refused:  # noted once per version
                    if len(self._refused) >= _MAX_REFUSED:
                        self._refused.clear()
                    self._refused.add(record.version)
                    self._notes.append(VersionRefused(sender, record.version, reason))
                record = None
        if record is not None:
            if record.ring.replicas == self._policy.n:
                changed = m.adopt(record) or changed
        elif RingVersion(update.epoch, update.fingerprint) == before.version:
            changed = m.complete_many(update.completed) or changed
        if changed:
            self._persist_membership()
            self._after_membership(before, now, out)
            self._maybe_mint(m.record, now, out)

    def _version_refusal(self, record: VersionRecord) -> str | None:
        """Why the ring version `record` must not be adopted (see `limits.version_refusal`)."""
        m = self._membership
        known = set(m.record.members()) | set(self._seeds) | {self._id}
        known.update(c.node for c in m.changes() if c.op == "join")
        known.update(c.new for c in m.changes() if c.new is not None)  # replacements
        return version_refusal(record, m.record, known, outside=m.outside)

    def _maybe_mint(self, before: VersionRecord, now: float, out: list[Effect]) -> None:
        """As the claimant, turn pending changes into the next version."""
        minted = self._membership.mint()
        if minted is not None or self._membership.record is not before:
            self._persist_membership()
        if minted is not None:
            self._after_membership(before, now, out)
            self._gossip(now, out, schedule=False)

    def _after_membership(self, before: VersionRecord, now: float, out: list[Effect]) -> None:
        """Install what a membership change requires: rings, trees, streams, drops."""
        rec = self._membership.record
        new_version = rec.version != before.version
        if not new_version and rec.settled == before.settled:
            return
        self._ring = rec.ring
        self._previous = rec.previous
        self._stats["versions_installed"] += 1
        if new_version:
            self._streams.clear()
        self._exchanges.clear()
        self._offers.clear()
        self._install_ring()
        self._drop_foreign(now)
        self._clean_markers(new_version)
        self._rehome_hints(now)
        self._streams_due = True
        self._detector_forget()
        out.append(RingChanged(rec.version, rec.settled, len(rec.plan)))

    def _detector_forget(self) -> None:
        members = set(self._membership.record.members()) | set(self._seeds)
        for node in self._detector.nodes():
            if node not in members:
                self._detector.forget(node)

    def _clean_markers(self, new_version: bool) -> None:
        """Forget served-stream records and dirty marks that can no longer be used."""
        rec = self._membership.record
        if self._foreign:
            return  # the next drop still needs them
        stale = [
            (e, i, r) for e, i, r in self._served if rec.settled or e != rec.epoch or new_version
        ]
        if not stale and not rec.settled:
            return
        deletes = [keyspace.served_key(e, i) for e, i, _ in stale]
        if rec.settled or new_version:
            deletes += [k for k, _ in self._storage.scan(keyspace.DIRTY, keyspace.DIRTY_END)]
        deletes += [
            k
            for k, _ in self._storage.scan(keyspace.STREAM, keyspace.STREAM_END)
            if rec.settled or keyspace.stream_epoch(k) != rec.epoch
        ]
        if deletes:
            self._storage.write_batch(deletes=deletes)
        self._set_served([x for x in self._served if x not in stale])

    def _drop_foreign(self, now: float) -> None:
        """Hand over and delete the data of ranges this node no longer replicates.

        A key goes without a copy only when this node served the completed stream of its range
        and nothing was written to it since serving began; any other key is first stored as a
        hint for each of its current replicas (durable, delivered with acknowledgements).
        """
        rec = self._membership.record
        done = dict(rec.completed)
        served = [r for e, i, r in self._served if e == rec.epoch and done.get(i) == self._id]
        kept = False
        handed = False
        for skey, raw in list(self._storage.scan(keyspace.DATA, keyspace.DATA_END)):
            tok = keyspace.token_of(skey)
            if self._replica.segment_of(tok) is not None:
                continue
            key = keyspace.key_of(skey)
            dirty = keyspace.dirty_key(skey)
            state = self._replica.state(skey, raw)
            if state is None:  # quarantined: kept where it is, never deleted
                continue
            if not (any(tok in r for r in served) and self._storage.get(dirty) is None):
                targets = [n for n in self._ring.preference_list(key) if n != self._id]
                stored = [self._hint(target, key, state, now) for target in targets]
                if not targets or not all(stored):  # every replica gets its hint, or retry
                    kept = True
                    continue
                handed = True
                self._stats["keys_rehinted"] += 1
            self._epochs.retire(state.context)  # a stale copy may come back: no dot twice
            self._replica.drop(skey)
            self._stats["keys_dropped"] += 1
        if handed:
            self._handoff_due = True
        self._foreign = kept

    def _rehint(self, key: bytes, state: DVVSet[bytes], now: float) -> bool:
        """Keep `state` for the key's current replicas (merge it here if this node is one)."""
        ok = True
        for target in self._ring.preference_list(key):
            if target == self._id:
                if self._replica.segment_of(self._ring.token(key)) is not None:
                    ok = self._absorb(key, state) and ok
            elif self._hint(target, key, state, now):
                self._handoff_due = True
            else:
                ok = False
        self._stats["keys_rehinted"] += 1
        return ok

    def _rehome_hints(self, now: float) -> None:
        """Hints for a node that is no longer a member go to their keys' current replicas."""
        members = set(self._membership.record.members())
        for target in self._hints.targets():
            if target in members or target == self._id:
                continue
            for hint in self._hints.pending(target):
                key = _key_bytes(hint.key, "hint.key")
                if self._rehint(key, hint.state, now):
                    self._hints.remove(hint)
            self._handoff_due = True

    # -- membership: streams -----------------------------------------------------------------

    def _start_streams(self, now: float, out: list[Effect]) -> None:
        """Start a stream for every uncompleted transfer of the version this node receives."""
        m = self._membership
        rec = m.record
        if rec.settled or m.outside:
            return
        done = dict(rec.completed)
        for index, transfer in enumerate(rec.plan):
            if transfer.target != self._id or index in done or index in self._streams:
                continue
            sources = stream_sources(rec, index)
            if not sources:
                continue
            cursor, source, life = self._read_stream(rec.epoch, index)
            core = RangeStream(
                transfer,
                index,
                rec.epoch,
                sources,
                batch_bytes=self._config.stream_batch_bytes,
                rate=self._config.stream_rate,
                timeout=self._config.stream_timeout,
                first_op=self._new_id() << 8,
                cursor=cursor,
                source=source,
                life=life,
            )
            stream = _Stream(core)
            self._streams[index] = stream
            self._drive_stream(stream, core.start(now), now, out)

    def _read_stream(self, epoch: int, index: int) -> tuple[bytes | None, str | None, int | None]:
        raw = self._storage.get(keyspace.stream_key(epoch, index))
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
            self._set_aside(keyspace.stream_key(epoch, index), raw, f"corrupt stream cursor: {exc}")
            return None, None, None

    def _drive_stream(
        self, stream: _Stream, effects: list[Any], now: float, out: list[Effect]
    ) -> None:
        core = stream.core
        for effect in effects:
            match effect:
                case SendPull(source=source, pull=pull):
                    out.append(Send(source, pull))
                case StoreItems():
                    self._store_stream(core, effect)
                    stream.keys += len(effect.items)
                case StreamFinished(transfer=transfer, index=index, served_by=served_by):
                    self._streams.pop(index, None)
                    self._storage.delete(keyspace.stream_key(core.epoch, index))
                    self._stats["streams_completed"] += 1
                    out.append(TransferDone(transfer, index, served_by, stream.keys))
                    before = self._membership.record
                    if self._membership.complete_many([(index, served_by)]):
                        self._persist_membership()
                        self._after_membership(before, now, out)
                        self._gossip(now, out, schedule=False)
                case SetTimer():
                    pass  # deadline() asks the stream
                case _:  # pragma: no cover - the stream's effect union is exhaustive
                    raise AssertionError(f"unexpected stream effect {effect!r}")

    def _store_stream(self, core: RangeStream, effect: StoreItems) -> None:
        """Merge a batch and persist the stream's cursor in one atomic write."""
        writes: list[Write] = []
        for key, state in effect.items:
            tok = self._ring.token(key)
            r = self._replica.segment_of(tok)
            if r is None or tok not in core.transfer.range:
                self._stats["messages_ignored"] += 1
                continue
            skey = keyspace.data_key(key, tok)
            raw = self._storage.get(skey)
            old = None if raw is None else self._replica.state(skey, raw)
            if raw is not None and old is None:  # quarantined: never overwritten
                self._stats["merges_refused"] += 1
                continue
            try:
                merged = state if old is None else old.sync(state)
            except DotCollision:  # a writer identity reused: keep ours, visibly divergent
                self._stats["dot_collisions"] += 1
                continue
            if merged == old:
                continue
            new_raw = codec.dumps(merged.to_dict())
            if unstorable(merged, new_raw) is not None:
                self._stats["merges_refused"] += 1
                continue
            writes.append((key, skey, r, raw, new_raw, merged))
        cursor = None if effect.cursor is None else codec.encode_bytes(effect.cursor)
        record = codec.envelope(
            "stream_cursor", {"cursor": cursor, "source": effect.source, "life": effect.life}
        )
        cursor_record = (keyspace.stream_key(core.epoch, core.index), codec.dumps(record))
        self._replica.write_many(writes, [cursor_record])
        self._stats["stream_keys_received"] += len(effect.items)
        self._stats["replica_writes"] += len(writes)

    def _on_stream_batch(
        self, sender: str, batch: StreamBatch, now: float, out: list[Effect]
    ) -> None:
        stream = self._streams.get(batch.index)
        if stream is None or batch.epoch != self._membership.record.epoch:
            self._stats["messages_ignored"] += 1
            return
        if batch.status != "ok":
            out.append(Send(sender, self._membership.digest()))
        self._drive_stream(stream, stream.core.receive(sender, batch, now), now, out)

    def _on_stream_pull(self, sender: str, pull: StreamPull, out: list[Effect]) -> None:
        """Serve a batch of a range from storage (the source keeps no stream state)."""
        m = self._membership
        epoch = m.record.epoch
        if m.outside or epoch != pull.epoch:
            status: Literal["not_yet", "stale"] = (
                "not_yet" if m.outside or epoch < pull.epoch else "stale"
            )
            out.append(Send(sender, StreamBatch(pull.epoch, pull.index, pull.op, status)))
            out.append(Send(sender, m.digest()))
            return
        if pull.after is None:
            self._mark_served(pull.epoch, pull.index, pull.range)
        items, after, last, size = self._replica.scan_after(
            pull.range, pull.after, min(max(pull.max_bytes, 1), _MAX_STREAM_BATCH)
        )
        self._stats["stream_keys_served"] += len(items)
        out.append(
            Send(
                sender,
                StreamBatch(
                    pull.epoch, pull.index, pull.op, "ok", items, after, last, self._life, size
                ),
            )
        )

    def _mark_served(self, epoch: int, index: int, rng: TokenRange) -> None:
        """Record durably, before the first batch leaves, that this node serves the stream."""
        entry = (epoch, index, rng)
        if entry in self._served:
            return
        key = keyspace.served_key(epoch, index)
        self._storage.put(key, codec.dumps(rng.to_dict()))
        self._set_served([x for x in self._served if x[:2] != (epoch, index)] + [entry])

    # -- storage -----------------------------------------------------------------------------

    def _read_epoch(self) -> int | None:
        raw = self._storage.get(keyspace.EPOCH_KEY)
        if raw is None:
            return None
        try:
            obj = codec.open_envelope(codec.loads(raw), "node_epoch", required=("epoch",))
            return codec.as_int(obj["epoch"], "node_epoch.epoch")
        except DecodeError as exc:  # as after a lost disk: a fresh random epoch is safe
            self._set_aside(keyspace.EPOCH_KEY, raw, f"corrupt node epoch record: {exc}")
            return None

    @staticmethod
    def _epoch_record(epoch: int) -> bytes:
        return codec.dumps(codec.envelope("node_epoch", {"epoch": epoch}))

    def _hint(self, target: str, key: bytes, state: DVVSet[bytes], now: float) -> bool:
        """Keep a hint (merging into one held for the key); a dot collision is refused."""
        try:
            return self._hints.add(target, key, state, now)
        except DotCollision:
            self._stats["dot_collisions"] += 1
            return False

    def _absorb(self, key: bytes, state: DVVSet[bytes]) -> bool:
        """Merge a peer's state (a repair, a hint); False when it should be sent again later.

        A refusal (a limit, a quarantined record) is counted by `_merge` and may pass: the
        sender retries. A dot collision never passes: it keeps ours, is counted here and is
        settled (True). Both versions then stay where they are, visibly divergent (anti-entropy
        keeps finding the key) rather than one of them silently lost.
        """
        try:
            return self._replica.merge(key, state) is None
        except DotCollision:
            self._stats["dot_collisions"] += 1
            return True

    def _apply_store(
        self, key: bytes, state: DVVSet[bytes], hint: str | None, now: float
    ) -> tuple[bool, str]:
        """Store a replica state, or keep it as a hint for `hint`; return (stored, reason)."""
        if hint is None or hint == self._id:
            if self._replica.segment_of(self._ring.token(key)) is None:
                self._stats["messages_ignored"] += 1
                return False, "not a replica of this key"
            try:
                reason = self._replica.merge(key, state)
            except DotCollision as exc:  # a writer identity reused: refuse, keep ours
                self._stats["dot_collisions"] += 1
                return False, str(exc)
            return reason is None, reason or ""
        if hint not in self._ring and (self._previous is None or hint not in self._previous):
            self._stats["messages_ignored"] += 1
            return False, f"{hint} is not a member of the ring"
        self._handoff_due = True
        if self._hint(hint, key, state, now):
            self._stats["hints_stored"] += 1
            return True, ""
        self._stats["hints_dropped"] += 1
        return False, f"hint for {hint} dropped (cap or window)"

    def _on_store(self, sender: str, message: StoreRequest, now: float, out: list[Effect]) -> None:
        """A replica write, fenced by ring epoch: a store placed with an older ring is refused."""
        m = self._membership
        epoch = m.record.epoch
        if not m.outside and message.epoch < epoch:
            self._stats["stores_refused_stale"] += 1
            out.append(Send(sender, StoreReply(message.op, False, "stale ring epoch")))
            out.append(Send(sender, m.digest()))
            return
        try:
            stored, reason = self._apply_store(message.key, message.state, message.hint, now)
        except StorageFull:
            self._storage_full(now)
            stored, reason = False, "storage full"
        out.append(Send(sender, StoreReply(message.op, stored, reason)))
        if message.epoch > epoch or m.outside:
            out.append(Send(sender, m.digest()))  # the coordinator knows a newer version

    def _local_fetch(self, key: bytes, hint: str | None) -> DVVSet[bytes] | None:
        if hint is None or hint == self._id:
            return self._replica.load(key)
        held = self._hints.get(hint, key)
        return None if held is None else held.state

    # -- coordination ------------------------------------------------------------------------

    def _available(self, node: str, now: float) -> bool:
        return node == self._id or self._detector.is_available(node, now)

    def _forward_target(self, key: bytes, now: float) -> str | None:
        """The primary to forward a request to, or `None` to coordinate here."""
        plist = self._ring.preference_list(key)
        if self._previous is not None:
            old = self._previous.preference_list(key)
            plist = old + tuple(n for n in plist if n not in old)
        if self._id in plist:
            return None
        return next((node for node in plist if self._detector.is_available(node, now)), None)

    def _candidates(
        self, key: bytes, now: float, ring: HashRing | None = None
    ) -> tuple[list[str], tuple[str, ...]]:
        ring = self._ring if ring is None else ring
        plist = ring.preference_list(key)
        candidates = [node for node in ring.walk(key) if self._available(node, now)]
        return candidates, plist

    def _coordinate_put(
        self,
        *,
        key: bytes,
        value: bytes,
        context: VectorClock | None,
        request_id: str | None,
        forward: tuple[str, int] | None,
        now: float,
        out: list[Effect],
    ) -> None:
        if now < self._full_until:
            self._answer(request_id, forward, _STORAGE_FULL, out)
            return
        tok = self._ring.token(key)
        r = self._replica.segment_of(tok)
        skey = keyspace.data_key(key, tok)
        raw = self._storage.get(skey) if r is not None else None
        local = DVVSet[bytes]() if raw is None else self._replica.state(skey, raw)
        if local is None:
            reason = "this node's record of the key is quarantined; try another node"
            self._answer(request_id, forward, RequestFailed(reason, code="quarantined"), out)
            return
        before = self._epochs.epoch
        try:
            actor = self._epochs.actor_for(local.context, context)
            state = local.update(value, actor, context)
        except OverflowError as exc:  # a counter a peer replicated: refuse, never fail
            failure = RequestFailed(f"write refused: {exc}"[:1024], code="bad_request")
            self._answer(request_id, forward, failure, out)
            return
        new_raw = codec.dumps(state.to_dict())
        refusal = self._config.limits.admit(state, new_raw)
        if refusal is not None:  # admission: nothing is written (a minted epoch was never used)
            self._stats["writes_refused"] += 1
            self._answer(request_id, forward, _refused(refusal), out)
            return
        if len(state) > self._config.limits.siblings_warning:
            self._stats["sibling_warnings"] += 1
        epoch = self._epochs.epoch
        extra = [(keyspace.EPOCH_KEY, self._epoch_record(epoch))] if epoch != before else []
        try:
            if r is not None:
                self._replica.write(
                    key=key, tok=tok, s=r, old_raw=raw, state=state, raw=new_raw, extra=extra
                )
            elif extra:
                self._storage.put(*extra[0])  # not a replica: only the new epoch is durable
        except StorageFull:
            self._storage_full(now)
            self._answer(request_id, forward, _STORAGE_FULL, out)
            return
        self._stats["puts_coordinated"] += 1
        # During a transition the write must reach a quorum in both placements (joint quorum).
        placements = [self._ring] if self._previous is None else [self._previous, self._ring]
        joint = _Joint(len(placements)) if len(placements) > 1 else None
        epoch = self._membership.record.epoch
        for ring in placements:
            candidates, plist = self._candidates(key, now, ring)
            coordinator = PutCoordinator(
                self._policy,
                key,
                candidates,
                state,
                preference_list=plist,
                timeout=self._config.request_timeout,
                replica_timeout=self._config.replica_timeout,
            )
            request = _Request(
                self._new_id(), "put", coordinator, request_id, forward, epoch, joint
            )
            self._requests[request.op] = request
            self._drive(request, coordinator.start(now), now, out)

    def _coordinate_get(
        self,
        key: bytes,
        request_id: str | None,
        forward: tuple[str, int] | None,
        now: float,
        out: list[Effect],
    ) -> None:
        self._stats["gets_coordinated"] += 1
        # Until the data has moved, the previous placement's replicas hold all of it.
        candidates, plist = self._candidates(key, now, self._previous)
        coordinator: GetCoordinator[DVVSet[bytes]] = GetCoordinator(
            self._policy,
            key,
            candidates,
            preference_list=plist,
            timeout=self._config.request_timeout,
        )
        request = _Request(self._new_id(), "get", coordinator, request_id, forward)
        self._requests[request.op] = request
        self._drive(request, coordinator.start(now), now, out)

    def _drive(  # noqa: PLR0912 - one case per coordinator effect
        self, request: _Request, effects: list[Any], now: float, out: list[Effect]
    ) -> None:
        """Carry out a coordinator's effects; requests to this node are answered in place."""
        queue: deque[Any] = deque(effects)
        coordinator = request.coordinator
        while queue:
            effect = queue.popleft()
            match effect:
                case SendStore(target=target, key=bytes() as key, state=state, hint=hint):
                    if target == self._id:
                        stored, reason = self._apply_store(key, state, hint, now)
                        reply: Stored | Refused = Stored() if stored else Refused(reason)
                        put = cast("PutCoordinator[DVVSet[bytes]]", coordinator)
                        queue.extend(put.receive(target, reply, now))
                    else:
                        store = StoreRequest(request.op, key, state, hint, request.epoch)
                        out.append(Send(target, store))
                case SendFetch(target=target, key=bytes() as key, hint=hint):
                    if target == self._id:
                        get = cast("GetCoordinator[DVVSet[bytes]]", coordinator)
                        found = self._local_fetch(key, hint)
                        queue.extend(get.receive(target, Fetched(found), now))
                    else:
                        out.append(Send(target, FetchRequest(request.op, key, hint)))
                case SendRepair(target=target, key=bytes() as key, state=state, hint=hint):
                    if target == self._id:
                        self._apply_store(key, state, hint, now)
                    else:
                        out.append(Send(target, ReadRepair(key, state, hint)))
                case SetTimer():
                    pass  # deadline() asks the coordinator
                case Complete(result=result):
                    self._complete(request, result, out)
                case _:  # pragma: no cover - the coordinators' effect unions are exhaustive
                    raise AssertionError(f"unexpected coordinator effect {effect!r}")
        for node in coordinator.timed_out:
            if node not in request.reported:
                request.reported.add(node)
                self._detector.suspect(node, now)
        if coordinator.deadline() is None:  # closed
            self._requests.pop(request.op, None)

    def _complete(self, request: _Request, result: object, out: list[Effect]) -> None:
        joint = request.joint
        if joint is not None:
            joint.results.append(result)
            if len(joint.results) < joint.parts:
                return
            failed = [r for r in joint.results if isinstance(r, Unavailable)]
            if failed:
                result = failed[0]
            else:
                puts = cast("list[PutResult]", joint.results)
                result = attrs.evolve(
                    puts[0],
                    acked=tuple(sorted({n for r in puts for n in r.acked})),
                    hinted=tuple(sorted({h for r in puts for h in r.hinted})),
                )
        outcome: RequestResult
        if isinstance(result, Unavailable):
            outcome = _failed(result)
        elif isinstance(result, PutResult):
            outcome = PutReply(result.acked, result.hinted)
        else:
            found = cast("GetResult[DVVSet[bytes]]", result).state
            if found is None:
                outcome = GetReply((), EMPTY_CONTEXT, found=False)
            else:
                outcome = GetReply(tuple(found.values), encode_context(found.context))
        self._answer(request.request_id, request.forward, outcome, out)

    @staticmethod
    def _answer(
        request_id: str | None,
        forward: tuple[str, int] | None,
        outcome: RequestResult,
        out: list[Effect],
    ) -> None:
        """Send a request's outcome to its client, or to the node that forwarded it."""
        if request_id is not None:
            out.append(Reply(request_id, outcome))
        elif forward is not None:
            origin, fwd = forward
            out.append(Send(origin, ForwardReply(fwd, outcome)))

    def _on_store_reply(
        self, sender: str, message: StoreReply, now: float, out: list[Effect]
    ) -> None:
        request = self._requests.get(message.op)
        if request is None or request.kind != "put":
            self._stats["messages_ignored"] += 1
            return
        reply: Stored | Refused = Stored() if message.stored else Refused(message.reason)
        put = cast("PutCoordinator[DVVSet[bytes]]", request.coordinator)
        try:
            effects = put.receive(sender, reply, now)
        except RemoteProtocolError:  # a duplicate, or a reply from a node never asked
            self._stats["messages_ignored"] += 1
            return
        self._drive(request, cast("list[Any]", effects), now, out)

    def _on_fetch_reply(
        self, sender: str, message: FetchReply, now: float, out: list[Effect]
    ) -> None:
        request = self._requests.get(message.op)
        if request is None or request.kind != "get":
            self._stats["messages_ignored"] += 1
            return
        get = cast("GetCoordinator[DVVSet[bytes]]", request.coordinator)
        try:
            effects = get.receive(sender, Fetched(message.state), now)
        except RemoteProtocolError:
            self._stats["messages_ignored"] += 1
            return
        self._drive(request, cast("list[Any]", effects), now, out)

    def _on_forward(self, sender: str, message: Forward, now: float, out: list[Effect]) -> None:
        origin = (sender, message.fwd)
        if origin in self._seen_forwards:  # a duplicate: coordinating twice would write twice
            self._stats["messages_ignored"] += 1
            return
        self._seen_forwards[origin] = now + 2 * self._forward_timeout()
        if message.kind == "get":
            self._coordinate_get(message.key, None, origin, now, out)
            return
        assert message.value is not None  # Forward's validator
        refusal = self._config.limits.check_value(message.value)
        if refusal is not None:
            self._stats["writes_refused"] += 1
            out.append(Send(sender, ForwardReply(message.fwd, _refused(refusal))))
            return
        try:
            clock = None if message.context is None else decode_context(message.context)
        except DecodeError as exc:
            reason = f"bad context: {exc}"[: codec.DEFAULT_MAX_STR]
            out.append(Send(sender, ForwardReply(message.fwd, RequestFailed(reason))))
            return
        self._coordinate_put(
            key=message.key,
            value=message.value,
            context=clock,
            request_id=None,
            forward=origin,
            now=now,
            out=out,
        )

    # -- failure detection and hinted handoff -----------------------------------------------

    def _heartbeat(self, now: float, out: list[Effect]) -> None:
        self._hb_seq += 1
        beat = Heartbeat(self._incarnation, self._hb_seq)
        out.extend(Send(node, beat) for node in self._hb_targets)
        interval = self._config.heartbeat_interval
        self._next_hb = max(self._next_hb + interval, now)
        if self._next_hb <= now:
            self._next_hb = now + interval
        self._refresh_handoff(now, out)

    def _on_heartbeat(self, sender: str, beat: Heartbeat, now: float) -> None:
        stamp = (beat.generation, beat.seq)
        last = self._hb_seen.get(sender)
        if last is None or stamp > last:
            self._hb_seen[sender] = stamp
            self._detector.heartbeat(sender, now)

    def _refresh_handoff(self, now: float, out: list[Effect]) -> None:
        """Tell the handoff which hint targets the detector believes up."""
        for target in self._hints.targets():
            up = self._detector.is_available(target, now)
            if up:
                self._handoff_effects(self._handoff.target_up(target, now), now, out)
            elif self._handoff.is_up(target):
                self._handoff_effects(self._handoff.target_down(target, now), now, out)

    def _handoff_effects(self, effects: list[Any], now: float, out: list[Effect]) -> None:
        self._handoff_due = True  # every handoff input may move its deadline
        for effect in effects:
            match effect:
                case SendHints(target=target, batch=batch):
                    out.append(Send(target, batch))
                case HintsDelivered() | HintsExpired():
                    out.append(effect)
                case DeliveryFailed(target=target, reason=reason):
                    if reason == "timeout":
                        self._detector.suspect(target, now)
                case _:  # pragma: no cover - the handoff's effect union is exhaustive
                    raise AssertionError(f"unexpected handoff effect {effect!r}")

    def _on_hints(
        self, sender: str, batch: HintBatch[DVVSet[bytes]], now: float, out: list[Effect]
    ) -> None:
        complete = True
        for hint in batch.hints:
            key = _key_bytes(hint.key, "hint.key")
            if hint.target != self._id:
                self._stats["messages_ignored"] += 1
            elif self._replica.segment_of(self._ring.token(key)) is not None:
                if self._absorb(key, hint.state):
                    self._stats["hints_received"] += 1
                else:  # not stored: the sender keeps the hint (until its TTL) and retries
                    complete = False
            elif self._ring.nodes:
                # No longer a replica of the key (the ring changed): hand it on, never drop it.
                complete = self._rehint(key, hint.state, now) and complete
            else:
                complete = False
        if complete:  # otherwise the sender keeps the hints and retries
            out.append(Send(sender, HintAck(batch.batch_id)))

    def _on_hint_ack(self, sender: str, ack: HintAck, now: float, out: list[Effect]) -> None:
        try:
            effects = self._handoff.on_ack(sender, ack.batch_id, now)
        except RemoteProtocolError:
            self._stats["messages_ignored"] += 1
            return
        self._handoff_effects(cast("list[Any]", effects), now, out)

    # -- anti-entropy ------------------------------------------------------------------------

    def _start_sync(self, now: float, out: list[Effect]) -> None:
        """Offer the roots of the shared ranges to the next replica peer believed up."""
        peers = self._peers
        busy = {peer for peer, _ in self._offers.values()} | {
            exchange.peer for exchange in self._exchanges.values() if exchange.role == "initiator"
        }
        for _ in range(len(peers)):
            peer = peers[self._ae_cursor % len(peers)]
            self._ae_cursor += 1
            if peer in busy or not self._detector.is_available(peer, now):
                continue
            roots = tuple(
                (r.range, self._replica.root(r))
                for r in self._replica.segments
                if peer in r.replicas
            )
            session = self._new_id()
            self._offers[session] = (peer, now + self._config.exchange_timeout)
            self._stats["sync_offers"] += 1
            out.append(Send(peer, SyncOffer(session, roots)))
            return

    def _on_sync_offer(self, sender: str, offer: SyncOffer, out: list[Effect]) -> None:
        differ = []
        for rng, root in offer.roots:
            r = self._replica.segment(rng.start)
            if r is None or r.range != rng or sender not in r.replicas:
                continue
            if self._replica.root(r) != root:
                differ.append(rng)
        out.append(Send(sender, SyncDiff(offer.session, tuple(differ))))

    def _on_sync_diff(self, sender: str, diff: SyncDiff, now: float, out: list[Effect]) -> None:
        offer = self._offers.get(diff.session)
        if offer is None or offer[0] != sender:
            self._stats["messages_ignored"] += 1
            return
        del self._offers[diff.session]
        started = 0
        for rng in diff.ranges:
            if started >= self._config.max_exchanges:
                break
            r = self._replica.segment(rng.start)
            if r is None or r.range != rng or sender not in r.replicas:
                continue
            core = merkle.MerkleExchange(
                self._replica.tree(r),
                merkle.ExchangeRole.INITIATOR,
                levels_per_round=self._config.levels_per_round,
                confirm_delay=self._config.confirm_delay,
            )
            session = self._new_id()
            exchange = _Exchange(
                core=core,
                peer=sender,
                session=session,
                rng=rng,
                role="initiator",
                expires=now + self._config.exchange_timeout,
            )
            self._exchanges[sender, session, "initiator"] = exchange
            self._stats["exchanges"] += 1
            started += 1
            self._drive_exchange(exchange, core.start(now), now, out)

    def _on_exchange_message(
        self, sender: str, message: ExchangeMessage, now: float, out: list[Effect]
    ) -> None:
        ident = (sender, message.session, message.to)
        exchange = self._exchanges.get(ident)
        if exchange is None:
            r = self._replica.segment(message.range.start)
            if (
                message.to != "responder"
                or not isinstance(message.message, merkle.Hello)
                or r is None
                or r.range != message.range
                or sender not in r.replicas
            ):
                self._stats["messages_ignored"] += 1
                return
            core = merkle.MerkleExchange(self._replica.tree(r), merkle.ExchangeRole.RESPONDER)
            exchange = _Exchange(
                core=core,
                peer=sender,
                session=message.session,
                rng=message.range,
                role="responder",
                expires=now + self._config.exchange_timeout,
            )
            self._exchanges[ident] = exchange
        elif exchange.range != message.range:
            self._stats["messages_ignored"] += 1
            return
        try:
            effects = exchange.core.receive(message.message, now)
        except RemoteProtocolError:
            # Out of turn: most likely a duplicate or a straggler. Ignore it; a peer that is
            # really broken stops making progress and the session times out.
            self._stats["messages_ignored"] += 1
            return
        exchange.expires = now + self._config.exchange_timeout
        self._drive_exchange(exchange, effects, now, out)

    def _drive_exchange(
        self, exchange: _Exchange, effects: list[merkle.Effect], now: float, out: list[Effect]
    ) -> None:
        queue: deque[merkle.Effect] = deque(effects)
        to: Literal["initiator", "responder"] = (
            "responder" if exchange.role == "initiator" else "initiator"
        )
        while queue:
            effect = queue.popleft()
            match effect:
                case merkle.Send(message=message):
                    out.append(
                        Send(
                            exchange.peer,
                            ExchangeMessage(exchange.session, exchange.range, to, message),
                        )
                    )
                case merkle.LoadItems(ranges=ranges):
                    queue.extend(exchange.core.items_loaded(list(self._replica.items(ranges)), now))
                case merkle.SetTimer(at=at):
                    exchange.timer = at
                case merkle.Done(report=report):
                    self._exchanges.pop((exchange.peer, exchange.session, exchange.role), None)
                    if exchange.role == "initiator":
                        self._repair(exchange, report, out)
                case merkle.Failed():
                    self._exchanges.pop((exchange.peer, exchange.session, exchange.role), None)
                case _:  # pragma: no cover - the exchange's effect union is exhaustive
                    assert_never(effect)

    def _repair(
        self, exchange: _Exchange, report: merkle.ExchangeReport, out: list[Effect]
    ) -> None:
        """Ship the states the peer lacks and ask for the ones this node lacks."""
        push = sorted({*report.remote_missing, *report.different})
        pull = sorted({*report.missing, *report.different})
        step = MAX_REPAIR_KEYS
        peer = exchange.peer
        batch: list[tuple[bytes, DVVSet[bytes]]] = []
        size = 0
        pushed = 0
        for key in push:  # batches of at most MAX_REPAIR_KEYS states and _MAX_STREAM_BATCH bytes
            skey = keyspace.data_key(key, self._ring.token(key))
            raw = self._storage.get(skey)
            state = None if raw is None else self._replica.state(skey, raw)
            if raw is None or state is None:
                continue
            if batch and (len(batch) >= step or size + len(raw) > _MAX_STREAM_BATCH):
                out.append(Send(peer, RepairPush(tuple(batch))))
                batch, size = [], 0
            batch.append((key, state))
            size += len(raw)
            pushed += 1
        if batch:
            out.append(Send(peer, RepairPush(tuple(batch))))
        out.extend(
            Send(peer, RepairPull(tuple(pull[i : i + step]))) for i in range(0, len(pull), step)
        )
        self._stats["keys_pushed"] += pushed
        self._stats["keys_pulled"] += len(pull)
        out.append(AntiEntropyDone(exchange.peer, exchange.range, report, pushed, len(pull)))

    # -- invariants --------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Assert the node's representation invariants (tests call this after every input).

        Rebuilds every tree from storage and compares roots: O(keys).
        """
        stored = self._read_epoch()
        assert stored is None or stored <= self._epochs.epoch
        self._epochs._check_invariants()
        self._detector._check_invariants()
        self._hints._check_invariants()
        self._handoff._check_invariants()
        self._replica._check_invariants(foreign=self._foreign)
        for request in self._requests.values():
            request.coordinator._check_invariants()
            assert request.coordinator.deadline() is not None
        for (peer, session, role), exchange in self._exchanges.items():
            assert (exchange.peer, exchange.session, exchange.role) == (peer, session, role)
            assert not exchange.core.finished
            exchange.core._check_invariants()
        assert self._next_id >= self._incarnation << 32
        m = self._membership
        m._check_invariants()
        assert self._ring is m.record.ring
        assert self._previous is m.record.previous
        done = dict(m.record.completed)
        for index, stream in self._streams.items():
            assert index not in done, "a completed transfer still streams"
            assert stream.core.transfer == m.record.plan[index]
            assert stream.core.transfer.target == self._id
            stream.core._check_invariants()
        for epoch, _, _ in self._served:
            assert epoch <= m.record.epoch
