"""The Dynamo node: every primitive composed into one replica and coordinator, as a pure core.

A [`Node`][dynamo_core.node.Node] is what one machine of a Dynamo cluster runs. It owns

* a [`HashRing`][dynamo_core.ring.HashRing] (the same on every node) that says which nodes
  replicate each key — the key's *preference list* — and which nodes stand in when they fail;
* a [`Storage`][dynamo_core.interfaces.Storage] holding one [`DVVSet`][dynamo_core.dvv.DVVSet]
  per key it replicates (encoded through the codec), its actor epoch (the KV679 guard of
  [`ActorEpochs`][dynamo_core.epochs.ActorEpochs]) and its
  [`HintStore`][dynamo_core.hints.HintStore];
* one [`MerkleTree`][dynamo_core.merkle.MerkleTree] per ring segment it replicates, updated on
  every local write;
* a [`PhiAccrualDetector`][dynamo_core.failure.PhiAccrualDetector] fed by heartbeats, with
  Dynamo's local signal: a request that times out marks its target suspect;
* [`PutCoordinator`][dynamo_core.quorum.PutCoordinator] and
  [`GetCoordinator`][dynamo_core.quorum.GetCoordinator] for the client requests it coordinates,
  a [`Handoff`][dynamo_core.hints.Handoff] that delivers its hints when their targets come back,
  and [`MerkleExchange`][dynamo_core.merkle.MerkleExchange]s with replica peers.

It is a sans-I/O state machine, like every core in the library: no clock, no sockets, no
threads, no global randomness. Time comes in as ``now``; inputs are client requests
([`put`][dynamo_core.node.Node.put], [`get`][dynamo_core.node.Node.get]), messages from other
nodes ([`receive`][dynamo_core.node.Node.receive]) and timers
([`on_timer`][dynamo_core.node.Node.on_timer], due at [`deadline`][dynamo_core.node.Node.deadline]).
Every input returns the effects it causes — [`Send`][dynamo_core.node.Send] a message,
[`Reply`][dynamo_core.node.Reply] to a client, and informational effects
([`AntiEntropyDone`][dynamo_core.node.AntiEntropyDone],
[`HintsDelivered`][dynamo_core.hints.HintsDelivered],
[`HintsExpired`][dynamo_core.hints.HintsExpired]) — for a driver to carry out: the
deterministic [`Simulation`][dynamo_core.testing.Simulation], or your own.

**The write path.** Any node takes a client `put`. A node outside the key's preference list
forwards it to the first primary it believes up (Dynamo does the same); a primary coordinates:
it loads its stored state, picks an actor id with [`ActorEpochs`][dynamo_core.epochs.ActorEpochs]
(so a node that lost data never reissues a dot), applies ``state.update(value, actor,
context)``, stores the result together with its epoch in one atomic batch, and runs a
`PutCoordinator` over the key's nodes in ring order minus those believed down. Fallbacks keep
what they receive for a failed primary as a hint and hand it over when the primary is back.

**The read path.** A `get` collects `r` answers, replies with the merged siblings and an opaque
context, and read-repairs stale replicas once every answer is in.

**Anti-entropy.** Every `anti_entropy_interval` the node offers the Merkle roots of the ranges it
shares with its next replica peer (round robin); for each range whose roots differ, it runs a
`MerkleExchange` and repairs the differing keys in both directions by shipping states that the
receiver merges with ``sync``.

Membership is fixed for the life of a node (every node starts with the same ring); the ring is
copied at construction and everything derived from it — replicated ranges, trees, peers — is
recomputed by one private method, the seam where ring changes will plug in.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal, TypeAlias, assert_never, cast

import attrs

from dynamo_core import codec, merkle
from dynamo_core._check import (
    check_bytes,
    check_key,
    check_node_id,
    check_positive_float,
    check_positive_int,
    check_time,
)
from dynamo_core.dvv import DVVSet
from dynamo_core.effects import SetTimer
from dynamo_core.epochs import ActorEpochs
from dynamo_core.errors import (
    DecodeError,
    LocalProtocolError,
    RemoteProtocolError,
    StorageError,
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
from dynamo_core.messages import (
    MAX_CONTEXT_BYTES,
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
from dynamo_core.vclock import VectorClock

__all__ = [
    "AntiEntropyDone",
    "Effect",
    "Node",
    "NodeConfig",
    "Reply",
    "Send",
    "decode_context",
    "encode_context",
]

_DATA: Final = b"d/"
_DATA_END: Final = b"d0"  # b"d/" + 1: the end of the data records
_EPOCH_KEY: Final = b"m/epoch"
_HINTS_NS: Final = b"h/"
_MAX_INCARNATION: Final = 2**31 - 1
_RANDOM_EPOCHS: Final = (2**40, 2**52)
_CACHE_SIZE: Final = 4096  # decoded replica states kept in memory (volatile)


# -- configuration -----------------------------------------------------------------------------


def _positive(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_positive_float(value, attribute.name)


def _optional_positive(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_positive_float(value, attribute.name)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name)


def _depth(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= merkle.MAX_DEPTH:
        raise ValueError(f"{attribute.name} must be in 0..{merkle.MAX_DEPTH}, got {value}")


def _levels(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name, maximum=merkle.MAX_LEVELS_PER_ROUND)


def _optional_time(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_time(value, attribute.name)


@attrs.frozen
class NodeConfig:
    """Timings and limits of a [`Node`][dynamo_core.node.Node].

    Every node of a cluster should use the same `merkle_depth`: trees of different shapes never
    compare equal.

    Attributes:
        heartbeat_interval: Seconds between heartbeats to every other node; also the failure
            detector's expected interval and how often hint targets are re-checked.
        phi_threshold: The φ above which the detector convicts a silent node (Cassandra: 8).
        request_timeout: The overall time budget of a coordinated put or get, in seconds.
        replica_timeout: How long one replica may take before a fallback replaces it (puts);
            default: a quarter of `request_timeout`.
        forward_timeout: How long a node waits for the primary it forwarded a request to;
            default: twice `request_timeout`.
        anti_entropy_interval: Seconds between anti-entropy rounds (one peer per round).
        exchange_timeout: An anti-entropy offer or exchange that makes no progress for this
            long is dropped.
        max_exchanges: The most Merkle exchanges one round starts with its peer; the other
            differing ranges wait for the next round with that peer.
        merkle_depth: The depth of each range's tree (``2**depth`` segments), capped for ranges
            with fewer tokens than segments.
        levels_per_round: Tree levels an exchange descends per round trip.
        confirm_delay: Re-check differing segments after this pause before repairing (Riak's
            compare-twice); `None` repairs after one pass (repairs are idempotent merges).
        hint_ttl: Seconds after which an undelivered hint expires (the hint window is the same).
        max_hints_per_target: Hints a fallback keeps for one failed node.
        max_hint_bytes_per_target: Encoded hint bytes a fallback keeps for one failed node.
        handoff_timeout: Seconds to wait for a hint batch to be acknowledged.
        handoff_backoff: First retry delay after a failed hint batch (doubling, up to 60 s).
        handoff_rate: Hint bytes per second a node sends at most.
    """

    heartbeat_interval: float = attrs.field(default=1.0, validator=_positive)
    phi_threshold: float = attrs.field(default=8.0, validator=_positive)
    request_timeout: float = attrs.field(default=1.0, validator=_positive)
    replica_timeout: float | None = attrs.field(default=None, validator=_optional_positive)
    forward_timeout: float | None = attrs.field(default=None, validator=_optional_positive)
    anti_entropy_interval: float = attrs.field(default=10.0, validator=_positive)
    exchange_timeout: float = attrs.field(default=10.0, validator=_positive)
    max_exchanges: int = attrs.field(default=4, validator=_positive_int)
    merkle_depth: int = attrs.field(default=10, validator=_depth)
    levels_per_round: int = attrs.field(default=2, validator=_levels)
    confirm_delay: float | None = attrs.field(default=None, validator=_optional_time)
    hint_ttl: float = attrs.field(default=3 * 3600.0, validator=_positive)
    max_hints_per_target: int = attrs.field(default=100_000, validator=_positive_int)
    max_hint_bytes_per_target: int = attrs.field(default=64 * 2**20, validator=_positive_int)
    handoff_timeout: float = attrs.field(default=10.0, validator=_positive)
    handoff_backoff: float = attrs.field(default=1.0, validator=_positive)
    handoff_rate: float = attrs.field(default=1024 * 1024.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.replica_timeout is not None and self.replica_timeout > self.request_timeout:
            raise ValueError(
                f"replica_timeout must be at most request_timeout={self.request_timeout}, "
                f"got {self.replica_timeout}"
            )


# -- effects -----------------------------------------------------------------------------------


@attrs.frozen
class Send:
    """Effect: deliver `message` to the node `target` (best effort: it may be lost)."""

    target: str
    message: Message


@attrs.frozen
class Reply:
    """Effect: the client request `request_id` is finished with `result`.

    Attributes:
        request_id: The id the client passed to `put` or `get`.
        result: [`PutReply`][dynamo_core.messages.PutReply],
            [`GetReply`][dynamo_core.messages.GetReply] or
            [`RequestFailed`][dynamo_core.messages.RequestFailed].
    """

    request_id: str
    result: RequestResult

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.result.ok


@attrs.frozen
class AntiEntropyDone:
    """Effect (informational): a Merkle exchange this node started has finished.

    Attributes:
        peer: The other replica.
        range: The token range compared.
        report: What the exchange found and what it cost (digests, round trips, bytes).
        pushed: Keys whose states were sent to the peer (it lacked them or they differed).
        pulled: Keys whose states were asked from the peer.
    """

    peer: str
    range: TokenRange
    report: merkle.ExchangeReport
    pushed: int
    pulled: int


Effect: TypeAlias = Send | Reply | AntiEntropyDone | HintsDelivered | HintsExpired
"""Everything a [`Node`][dynamo_core.node.Node] input returns a list of; dispatch with `match`."""


# -- client contexts ---------------------------------------------------------------------------


def encode_context(context: VectorClock) -> bytes:
    """Encode a causal context for a client (canonical JSON of the clock).

    Returns:
        The opaque bytes a client sends back with its next put.
    """
    return codec.dumps(context.to_dict())


def decode_context(data: bytes) -> VectorClock:
    """Decode a context made by [`encode_context`][dynamo_core.node.encode_context].

    Raises:
        TypeError: `data` is not `bytes`.
        dynamo_core.errors.DecodeError: `data` is not a valid context.
    """
    check_bytes(data, "context")
    return VectorClock.from_dict(codec.loads(data, max_bytes=MAX_CONTEXT_BYTES))


_EMPTY_CONTEXT: Final = encode_context(VectorClock())


# -- internal bookkeeping ----------------------------------------------------------------------


class _Range:
    """One ring segment this node replicates: its replicas and its (lazily built) tree."""

    __slots__ = ("depth", "empty_root", "range", "replicas", "tree")

    def __init__(self, rng: TokenRange, replicas: tuple[str, ...], depth: int) -> None:
        self.range = rng
        self.replicas = replicas
        self.depth = depth
        self.tree: merkle.MerkleTree | None = None
        self.empty_root = b""


class _Request:
    """A client request this node coordinates (or forwarded to it)."""

    __slots__ = ("coordinator", "forward", "kind", "op", "reported", "request_id")

    def __init__(
        self,
        op: int,
        kind: Literal["put", "get"],
        coordinator: PutCoordinator[DVVSet[bytes]] | GetCoordinator[DVVSet[bytes]],
        request_id: str | None,
        forward: tuple[str, int] | None,
    ) -> None:
        self.op = op
        self.kind = kind
        self.coordinator = coordinator
        self.request_id = request_id
        self.forward = forward
        self.reported: set[str] = set()  # timed-out replicas already marked suspect


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
    if node_id not in ring:
        raise ValueError(f"node_id {node_id!r} is not a member of the ring")
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


# -- the node ----------------------------------------------------------------------------------


class Node:
    """One Dynamo replica and request coordinator, as a pure state machine.

    Args:
        node_id: This node's id; it must be a member of `ring`.
        ring: The cluster's ring (copied: later changes to the caller's object do not reach
            the node). Its `replicas` must equal ``policy.n``.
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

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: `node_id` is not a member of `ring`, ``ring.replicas != policy.n``, or an
            argument is out of range.
        dynamo_core.errors.StorageError: `storage` holds corrupt node records.

    Cost: construction scans the stored keys once to rebuild the Merkle trees (O(keys)).
    """

    __slots__ = (
        "_ae_cursor",
        "_cache",
        "_config",
        "_detector",
        "_epochs",
        "_exchanges",
        "_forwards",
        "_handoff",
        "_handoff_due",
        "_hb_seen",
        "_hb_seq",
        "_hints",
        "_id",
        "_incarnation",
        "_next_ae",
        "_next_hb",
        "_next_id",
        "_now",
        "_offers",
        "_peers",
        "_policy",
        "_range_by_start",
        "_ranges",
        "_requests",
        "_ring",
        "_seen_forwards",
        "_starts",
        "_stats",
        "_storage",
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
    ) -> None:
        policy, config, storage = _check_parts(node_id, ring, policy, config, storage)
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
        self._ring = ring.copy()
        self._policy = policy
        self._config = config
        self._storage = storage
        self._incarnation = incarnation
        self._now = start
        self._next_id = incarnation << 32
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
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
        self._hints: HintStore[DVVSet[bytes]] = HintStore(
            storage,
            max_hints_per_target=config.max_hints_per_target,
            max_bytes_per_target=config.max_hint_bytes_per_target,
            ttl=config.hint_ttl,
            namespace=_HINTS_NS,
        )
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
        self._cache: dict[bytes, tuple[bytes, DVVSet[bytes]]] = {}
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
        self._ranges: list[_Range] = []
        self._starts: list[int] = []
        self._range_by_start: dict[int, _Range] = {}
        self._peers: tuple[str, ...] = ()
        self._install_ring()
        self._load_trees()

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
        return tuple(r.range for r in self._ranges)

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
        return self._load(_key_bytes(key))

    def keys(self) -> list[bytes]:
        """Return every key this node stores a replica of, in token order. Cost: O(keys)."""
        return [skey[10:] for skey, _ in self._storage.scan(_DATA, _DATA_END)]

    def merkle_root(self, rng: TokenRange) -> bytes:
        """Return the root of this node's tree over the replicated segment `rng`.

        A segment the node holds nothing in has the root of an empty tree of its shape, so
        replicas with equal data have equal roots. Cost: O(changed leaves x depth).

        Raises:
            ValueError: `rng` is not a segment this node replicates.
        """
        r = self._range_by_start.get(rng.start) if isinstance(rng, TokenRange) else None
        if r is None or r.range != rng:
            raise ValueError(f"rng must be a segment this node replicates, got {rng!r}")
        return self._tree(r).root

    def stats(self) -> dict[str, int]:
        """Counters of what the node has done, by name (sorted)."""
        return dict(sorted(self._stats.items()))

    def busy(self) -> bool:
        """Whether requests, forwards, anti-entropy sessions or hints are still in progress.

        A driver that wants to stop a node cleanly can wait until this is false.
        """
        return bool(
            self._requests or self._forwards or self._offers or self._exchanges or len(self._hints)
        )

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
        return out

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
        target = self._forward_target(data, t)
        if target is not None:
            fwd = self._track_forward(request_id, target, t)
            out.append(Send(target, Forward(fwd, "get", data)))
            return out
        self._coordinate_get(data, request_id, None, t, out)
        return out

    def receive(  # noqa: PLR0912 - one case per message kind
        self, sender: str, message: Message, now: float
    ) -> list[Effect]:
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
        match message:
            case Heartbeat():
                self._on_heartbeat(sender, message, t)
            case StoreRequest():
                stored, reason = self._apply_store(message.key, message.state, message.hint, t)
                out.append(Send(sender, StoreReply(message.op, stored, reason)))
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
                self._on_hints(sender, message, out)
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
                    if self._range_of(self._ring.token(key)) is not None:
                        self._merge(key, state)
                    else:
                        self._stats["messages_ignored"] += 1
            case RepairPull():
                states = tuple(
                    (key, state) for key in message.keys if (state := self._load(key)) is not None
                )
                if states:
                    out.append(Send(sender, RepairPush(states)))
            case _:
                raise TypeError(f"message must be a node message, not {type(message).__name__}")
        return out

    def on_timer(self, now: float) -> list[Effect]:  # noqa: PLR0912 - one branch per timer
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
        if t >= self._next_hb:
            self._heartbeat(t, out)
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
            self._start_sync(t, out)
        due = self._handoff_deadline()
        if due is not None and due <= t:
            self._handoff_effects(self._handoff.on_timer(t), t, out)
        return out

    def deadline(self) -> float:
        """When [`on_timer`][dynamo_core.node.Node.on_timer] must next be called.

        There is always a next timer (heartbeats are periodic); it may be in the past, which
        means now.
        Cost: O(requests + forwards + exchanges).
        """
        at = min(self._next_hb, self._next_ae)
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
        return at

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

    def _forward_timeout(self) -> float:
        timeout = self._config.forward_timeout
        return 2 * self._config.request_timeout if timeout is None else timeout

    # -- ring-derived state (the seam for membership changes) -------------------------------

    def _install_ring(self) -> None:
        """Recompute everything derived from the ring: replicated segments and peers."""
        ranges: list[_Range] = []
        peers: set[str] = set()
        for rng, replicas in self._ring.segments():
            if self._id in replicas:
                depth = min(self._config.merkle_depth, rng.size.bit_length() - 1)
                ranges.append(_Range(rng, replicas, depth))
                peers.update(node for node in replicas if node != self._id)
        ranges.sort(key=lambda r: r.range.start)
        self._ranges = ranges
        self._starts = [r.range.start for r in ranges]
        self._range_by_start = {r.range.start: r for r in ranges}
        self._peers = tuple(sorted(peers))

    def _range_of(self, tok: int) -> _Range | None:
        i = bisect.bisect_right(self._starts, tok) - 1
        if i >= 0 and tok in self._ranges[i].range:
            return self._ranges[i]
        if self._ranges and tok in self._ranges[-1].range:  # a segment that wraps
            return self._ranges[-1]
        return None

    def _tree(self, r: _Range) -> merkle.MerkleTree:
        tree = r.tree
        if tree is None:
            tree = merkle.MerkleTree(
                r.depth, start=r.range.start, end=r.range.end, token_fn=self._ring.token
            )
            r.empty_root = tree.root
            r.tree = tree
        return tree

    def _root(self, r: _Range) -> bytes | None:
        """The root to offer: `None` for a segment holding nothing."""
        if r.tree is None:
            return None
        root = r.tree.root
        return None if root == r.empty_root else root

    def _load_trees(self) -> None:
        for skey, raw in self._storage.scan(_DATA, _DATA_END):
            tok = int.from_bytes(skey[2:10], "big")
            r = self._range_of(tok)
            if r is not None:
                key = skey[10:]
                self._tree(r).insert(key, merkle.item_digest(key, raw))

    # -- storage -----------------------------------------------------------------------------

    def _read_epoch(self) -> int | None:
        raw = self._storage.get(_EPOCH_KEY)
        if raw is None:
            return None
        try:
            obj = codec.open_envelope(codec.loads(raw), "node_epoch", required=("epoch",))
            return codec.as_int(obj["epoch"], "node_epoch.epoch")
        except DecodeError as exc:
            raise StorageError(f"corrupt node epoch record: {exc}") from None

    @staticmethod
    def _epoch_record(epoch: int) -> bytes:
        return codec.dumps(codec.envelope("node_epoch", {"epoch": epoch}))

    @staticmethod
    def _skey(key: bytes, tok: int) -> bytes:
        return _DATA + tok.to_bytes(8, "big") + key

    @staticmethod
    def _decode(raw: bytes) -> DVVSet[bytes]:
        try:
            return DVVSet.from_dict(codec.loads(raw))
        except DecodeError as exc:
            raise StorageError(f"corrupt replica record: {exc}") from None

    def _state(self, skey: bytes, raw: bytes) -> DVVSet[bytes]:
        """Decode a stored record, through the cache of recently used states."""
        hit = self._cache.get(skey)
        if hit is not None and hit[0] == raw:
            return hit[1]
        state = self._decode(raw)
        self._remember(skey, raw, state)
        return state

    def _remember(self, skey: bytes, raw: bytes, state: DVVSet[bytes]) -> None:
        cache = self._cache
        cache.pop(skey, None)
        cache[skey] = (raw, state)
        if len(cache) > _CACHE_SIZE:
            del cache[next(iter(cache))]

    def _load(self, key: bytes) -> DVVSet[bytes] | None:
        skey = self._skey(key, self._ring.token(key))
        raw = self._storage.get(skey)
        return None if raw is None else self._state(skey, raw)

    def _write(
        self,
        *,
        key: bytes,
        tok: int,
        r: _Range | None,
        old_raw: bytes | None,
        state: DVVSet[bytes],
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Store `state` (with `extra` records, atomically) and update the key's tree."""
        raw = codec.dumps(state.to_dict())
        skey = self._skey(key, tok)
        puts = [(skey, raw), *extra]
        if len(puts) == 1:
            self._storage.put(skey, raw)
        else:
            self._storage.write_batch(puts)
        self._remember(skey, raw, state)
        if r is not None:
            tree = self._tree(r)
            digest = merkle.item_digest(key, raw)
            if old_raw is None:
                tree.insert(key, digest)
            else:
                tree.update(key, merkle.item_digest(key, old_raw), digest)

    def _merge(self, key: bytes, state: DVVSet[bytes]) -> bool:
        """Merge `state` into the stored replica of `key` (which this node replicates)."""
        tok = self._ring.token(key)
        skey = self._skey(key, tok)
        raw = self._storage.get(skey)
        if raw is None:
            merged = state
        else:
            old = self._state(skey, raw)
            merged = old.sync(state)
            if merged == old:
                return False
        self._write(key=key, tok=tok, r=self._range_of(tok), old_raw=raw, state=merged)
        self._stats["replica_writes"] += 1
        return True

    def _apply_store(
        self, key: bytes, state: DVVSet[bytes], hint: str | None, now: float
    ) -> tuple[bool, str]:
        """Store a replica state, or keep it as a hint for `hint`; return (stored, reason)."""
        if hint is None or hint == self._id:
            if self._range_of(self._ring.token(key)) is None:
                self._stats["messages_ignored"] += 1
                return False, "not a replica of this key"
            self._merge(key, state)
            return True, ""
        if hint not in self._ring:
            self._stats["messages_ignored"] += 1
            return False, f"{hint} is not a member of the ring"
        self._handoff_due = True
        if self._hints.add(hint, key, state, now):
            self._stats["hints_stored"] += 1
            return True, ""
        self._stats["hints_dropped"] += 1
        return False, f"hint for {hint} dropped (cap or window)"

    def _local_fetch(self, key: bytes, hint: str | None) -> DVVSet[bytes] | None:
        if hint is None or hint == self._id:
            return self._load(key)
        held = self._hints.get(hint, key)
        return None if held is None else held.state

    def _items(self, ranges: Iterable[TokenRange]) -> Iterator[tuple[bytes, bytes]]:
        """The ``(key, digest)`` items stored in `ranges`, for a Merkle exchange."""
        for rng in ranges:
            for piece in rng.pieces():
                start = _DATA + piece.start.to_bytes(8, "big")
                end = (
                    _DATA_END if piece.end == TOKEN_SPACE else _DATA + piece.end.to_bytes(8, "big")
                )
                for skey, raw in self._storage.scan(start, end):
                    key = skey[10:]
                    yield key, merkle.item_digest(key, raw)

    # -- coordination ------------------------------------------------------------------------

    def _available(self, node: str, now: float) -> bool:
        return node == self._id or self._detector.is_available(node, now)

    def _forward_target(self, key: bytes, now: float) -> str | None:
        """The primary to forward a request to, or `None` to coordinate here."""
        plist = self._ring.preference_list(key)
        if self._id in plist:
            return None
        return next((node for node in plist if self._detector.is_available(node, now)), None)

    def _candidates(self, key: bytes, now: float) -> tuple[list[str], tuple[str, ...]]:
        plist = self._ring.preference_list(key)
        candidates = [node for node in self._ring.walk(key) if self._available(node, now)]
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
        tok = self._ring.token(key)
        r = self._range_of(tok)
        skey = self._skey(key, tok)
        raw = self._storage.get(skey) if r is not None else None
        local: DVVSet[bytes] = DVVSet() if raw is None else self._state(skey, raw)
        before = self._epochs.epoch
        actor = self._epochs.actor_for(local.context, context)
        state = local.update(value, actor, context)
        epoch = self._epochs.epoch
        extra = [(_EPOCH_KEY, self._epoch_record(epoch))] if epoch != before else []
        if r is not None:
            self._write(key=key, tok=tok, r=r, old_raw=raw, state=state, extra=extra)
        elif extra:
            self._storage.put(*extra[0])  # not a replica: only the new epoch is durable
        self._stats["puts_coordinated"] += 1
        candidates, plist = self._candidates(key, now)
        coordinator = PutCoordinator(
            self._policy,
            key,
            candidates,
            state,
            preference_list=plist,
            timeout=self._config.request_timeout,
            replica_timeout=self._config.replica_timeout,
        )
        request = _Request(self._new_id(), "put", coordinator, request_id, forward)
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
        candidates, plist = self._candidates(key, now)
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
                        out.append(Send(target, StoreRequest(request.op, key, state, hint)))
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
        outcome: RequestResult
        if isinstance(result, Unavailable):
            outcome = _failed(result)
        elif isinstance(result, PutResult):
            outcome = PutReply(result.acked, result.hinted)
        else:
            found = cast("GetResult[DVVSet[bytes]]", result).state
            if found is None:
                outcome = GetReply((), _EMPTY_CONTEXT, found=False)
            else:
                outcome = GetReply(tuple(found.values), encode_context(found.context))
        if request.request_id is not None:
            out.append(Reply(request.request_id, outcome))
        elif request.forward is not None:
            origin, fwd = request.forward
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
        out.extend(Send(node, beat) for node in self._ring.nodes if node != self._id)
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

    def _on_hints(self, sender: str, batch: HintBatch[DVVSet[bytes]], out: list[Effect]) -> None:
        for hint in batch.hints:
            key = _key_bytes(hint.key, "hint.key")
            if hint.target == self._id and self._range_of(self._ring.token(key)) is not None:
                self._merge(key, hint.state)
                self._stats["hints_received"] += 1
            else:
                self._stats["messages_ignored"] += 1
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
            roots = tuple((r.range, self._root(r)) for r in self._ranges if peer in r.replicas)
            session = self._new_id()
            self._offers[session] = (peer, now + self._config.exchange_timeout)
            self._stats["sync_offers"] += 1
            out.append(Send(peer, SyncOffer(session, roots)))
            return

    def _on_sync_offer(self, sender: str, offer: SyncOffer, out: list[Effect]) -> None:
        differ = []
        for rng, root in offer.roots:
            r = self._range_by_start.get(rng.start)
            if r is None or r.range != rng or sender not in r.replicas:
                continue
            if self._root(r) != root:
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
            r = self._range_by_start.get(rng.start)
            if r is None or r.range != rng or sender not in r.replicas:
                continue
            core = merkle.MerkleExchange(
                self._tree(r),
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
            r = self._range_by_start.get(message.range.start)
            if (
                message.to != "responder"
                or not isinstance(message.message, merkle.Hello)
                or r is None
                or r.range != message.range
                or sender not in r.replicas
            ):
                self._stats["messages_ignored"] += 1
                return
            core = merkle.MerkleExchange(self._tree(r), merkle.ExchangeRole.RESPONDER)
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
                    queue.extend(exchange.core.items_loaded(list(self._items(ranges)), now))
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
        states = [(key, state) for key in push if (state := self._load(key)) is not None]
        step = MAX_REPAIR_KEYS
        peer = exchange.peer
        out.extend(
            Send(peer, RepairPush(tuple(states[i : i + step]))) for i in range(0, len(states), step)
        )
        out.extend(
            Send(peer, RepairPull(tuple(pull[i : i + step]))) for i in range(0, len(pull), step)
        )
        self._stats["keys_pushed"] += len(states)
        self._stats["keys_pulled"] += len(pull)
        out.append(AntiEntropyDone(exchange.peer, exchange.range, report, len(states), len(pull)))

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
        assert self._starts == sorted(self._starts)
        rebuilt: dict[int, merkle.MerkleTree] = {}
        for skey, raw in self._storage.scan(_DATA, _DATA_END):
            tok = int.from_bytes(skey[2:10], "big")
            key = skey[10:]
            assert self._ring.token(key) == tok, "record filed under the wrong token"
            self._decode(raw)._check_invariants()
            r = self._range_of(tok)
            assert r is not None, f"stored key {key!r} is outside the replicated ranges"
            tree = rebuilt.get(r.range.start)
            if tree is None:
                tree = rebuilt[r.range.start] = merkle.MerkleTree(
                    r.depth, start=r.range.start, end=r.range.end, token_fn=self._ring.token
                )
            tree.insert(key, merkle.item_digest(key, raw))
        for r in self._ranges:
            expected = rebuilt.get(r.range.start)
            if expected is None:
                assert r.tree is None or r.tree.root == r.empty_root, "a tree holds phantom keys"
            else:
                assert r.tree is not None, "a tree is missing"
                assert r.tree.root == expected.root, "a tree is stale"
        for request in self._requests.values():
            request.coordinator._check_invariants()
            assert request.coordinator.deadline() is not None
        for (peer, session, role), exchange in self._exchanges.items():
            assert (exchange.peer, exchange.session, exchange.role) == (peer, session, role)
            assert not exchange.core.finished
            exchange.core._check_invariants()
        assert self._next_id >= self._incarnation << 32
