"""`NodeState`: what every part of one node reads, and the records the node keeps beside its data.

The core owns one `NodeState` and hands it to each part: the node's identity, its collaborators
(storage, detector, hint store, membership, replica store), the installed rings, the clock of
the current input and the counters. A part reads it and may call its helpers; what a part owns
alone (requests, exchanges, streams, handoff) stays in the part.
"""

from __future__ import annotations

import random
from typing import Final

from dynamo_core import codec
from dynamo_core._check import check_time
from dynamo_core.dvv import DVVSet
from dynamo_core.epochs import ActorEpochs
from dynamo_core.errors import (
    CorruptRecord,
    DecodeError,
    DotCollision,
    LocalProtocolError,
    StorageError,
)
from dynamo_core.failure import PhiAccrualDetector
from dynamo_core.hashing import TokenRange
from dynamo_core.hints import HintStore
from dynamo_core.interfaces import Storage
from dynamo_core.membership import Membership, VersionRecord
from dynamo_core.node import keyspace
from dynamo_core.node.config import NodeConfig
from dynamo_core.node.effects import Effect, Quarantined
from dynamo_core.node.replica import Replica
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing

__all__ = ["STAT_NAMES", "NodeState"]

_INF: Final = float("inf")
_RANDOM_EPOCHS: Final = (2**40, 2**52)

STAT_NAMES: Final = (
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


class NodeState:
    """The shared state of one node (see the module docstring).

    `ring` and `previous` are the installed placements (the core replaces them when a ring
    version is installed); `now` is the time of the current input.
    """

    __slots__ = (
        "config",
        "detector",
        "epochs",
        "full_until",
        "hb_targets",
        "hints",
        "id",
        "incarnation",
        "life",
        "membership",
        "next_id",
        "notes",
        "now",
        "peers",
        "policy",
        "previous",
        "replica",
        "ring",
        "seeds",
        "served",
        "stats",
        "storage",
    )

    def __init__(  # noqa: PLR0917 - the node's identity and collaborators, checked by the core
        self,
        node_id: str,
        ring: HashRing,
        policy: QuorumPolicy,
        config: NodeConfig,
        storage: Storage,
        now: float,
        incarnation: int,
        first_epoch: int | None,
        seeds: tuple[str, ...],
    ) -> None:
        self.id = node_id
        self.incarnation = incarnation
        self.seeds = seeds
        self.policy = policy
        self.config = config
        self.storage = storage
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self.notes: list[Effect] = []  # informational effects of the current input
        self.now = now
        self.next_id = incarnation << 32
        self.full_until = 0.0  # client writes are refused until then (storage full)
        self.membership = self._load_membership(ring, policy)
        self.ring = self.membership.record.ring
        self.previous = self.membership.record.previous
        stored_epoch = self.read_epoch()
        if stored_epoch is None:
            stored_epoch = self._fresh_epoch() if first_epoch is None else first_epoch
        self.epochs = ActorEpochs(node_id, epoch=stored_epoch)
        self.detector = PhiAccrualDetector(
            threshold=config.phi_threshold,
            first_interval=config.heartbeat_interval,
            max_interval=2 * config.heartbeat_interval,
            model=config.phi_model,
            acceptable_pause=config.phi_acceptable_pause,
            min_std=config.phi_min_std,
        )
        self.hints = self._open_hints()
        self.life = self._load_life()
        self.replica = Replica(storage, self.ring.token, self.stats, self.notes)
        self.served: list[tuple[int, int, TokenRange]] = []
        self.set_served(self._load_served())
        self.peers: tuple[str, ...] = ()  # the nodes this node shares a segment with
        self.hb_targets: tuple[str, ...] = ()  # members and seeds: heartbeats and gossip

    # -- helpers the parts share -----------------------------------------------------------

    def new_id(self) -> int:
        """A fresh id for a request, session or stream (unique within this life)."""
        self.next_id += 1
        return self.next_id

    def advance(self, now: object) -> float:
        """Check an input's `now` and move the node's clock to it."""
        if type(now) is float and self.now <= now < _INF:  # the common case (NaN fails)
            self.now = now
            return now
        t = check_time(now)
        if t < self.now:
            raise LocalProtocolError(f"now went backwards: {t} < {self.now}")
        self.now = t
        return t

    def noted(self, out: list[Effect]) -> list[Effect]:
        """Append the informational effects noted during this input (quarantined records)."""
        notes = self.notes
        if notes:
            out.extend(notes)
            notes.clear()
        return out

    def stored_state(self, key: bytes) -> DVVSet[bytes] | None:
        """The stored replica state of `key`, or `None` (see `Node.state_of`)."""
        skey = keyspace.data_key(key, self.ring.token(key))
        raw = self.storage.get(skey)
        if raw is None:
            return None
        state = self.replica.state(skey, raw)
        if state is None:
            raise StorageError(
                f"the record of {key[:64]!r} is quarantined: {self.replica.quarantined[skey]}"
            )
        return state

    def merkle_root(self, span: object) -> bytes:
        """The root of the tree over the replicated segment `span` (see `Node.merkle_root`)."""
        replica = self.replica
        s = replica.segment(span.start) if isinstance(span, TokenRange) else None
        if s is None or s.range != span:
            raise ValueError(f"span must be a segment this node replicates, got {span!r}")
        return replica.tree(s).root

    def quarantined_keys(self) -> list[bytes]:
        """The keys of the records quarantined so far, sorted."""
        return sorted(keyspace.key_of(skey) for skey in self.replica.quarantined)

    def storage_full(self, now: float) -> None:
        """A write failed with `StorageFull`: refuse client writes for a while (degraded)."""
        self.stats["storage_full"] += 1
        self.full_until = now + self.config.storage_full_pause

    def replicates(self, key: bytes) -> bool:
        """Whether `key` falls in a segment this node replicates."""
        return self.replica.segment_of(self.ring.token(key)) is not None

    def absorb(self, key: bytes, state: DVVSet[bytes]) -> bool:
        """Merge a peer's state (a repair, a hint); False when it should be sent again later.

        A refusal (a limit, a quarantined record) is counted by the replica store and may pass:
        the sender retries. A dot collision never passes: it keeps ours, is counted here and is
        settled (True). Both versions then stay where they are, visibly divergent (anti-entropy
        keeps finding the key) rather than one of them silently lost.
        """
        try:
            return self.replica.merge(key, state) is None
        except DotCollision:
            self.stats["dot_collisions"] += 1
            return True

    def set_served(self, served: list[tuple[int, int, TokenRange]]) -> None:
        """The streams this node began serving; writes to their ranges are marked dirty."""
        self.served = served
        self.replica.serving = tuple(span for _, _, span in served)

    def persist_membership(self) -> None:
        """Store the membership state."""
        self.storage.put(keyspace.MEMBERSHIP_KEY, codec.dumps(self.membership.to_dict()))

    def set_aside(self, key: bytes, raw: bytes, reason: str) -> None:
        """Quarantine a corrupt node record: move it under ``q/``, note it, go on without it."""
        self.storage.write_batch([(keyspace.quarantine_key(key), raw)], [key])
        self.stats["records_quarantined"] += 1
        self.notes.append(Quarantined(key, reason[: codec.DEFAULT_MAX_STR]))

    @staticmethod
    def epoch_record(epoch: int) -> bytes:
        """The ``m/epoch`` record of actor epoch `epoch`."""
        return codec.dumps(codec.envelope("node_epoch", {"epoch": epoch}))

    def read_epoch(self) -> int | None:
        """The stored actor epoch (`None`: none, or a corrupt record set aside)."""
        raw = self.storage.get(keyspace.EPOCH_KEY)
        if raw is None:
            return None
        try:
            obj = codec.open_envelope(codec.loads(raw), "node_epoch", required=("epoch",))
            return codec.as_int(obj["epoch"], "node_epoch.epoch")
        except DecodeError as exc:  # as after a lost disk: a fresh random epoch is safe
            self.set_aside(keyspace.EPOCH_KEY, raw, f"corrupt node epoch record: {exc}")
            return None

    # -- loading the node's records ----------------------------------------------------------

    def _fresh_epoch(self) -> int:
        """A random first epoch for a node whose storage holds none (it may have lost its data)."""
        draw = random.Random(f"dynamo-core/epoch/{self.id}/{self.incarnation}")  # noqa: S311
        return draw.randrange(*_RANDOM_EPOCHS)

    def _load_membership(self, ring: HashRing, policy: QuorumPolicy) -> Membership:
        raw = self.storage.get(keyspace.MEMBERSHIP_KEY)
        hash_key = ring._hash_key
        if raw is not None:
            try:
                loaded = Membership.from_dict(
                    codec.loads(raw), hash_key=hash_key, min_members=policy.n
                )
            except DecodeError as exc:  # start from the bootstrap ring; gossip brings the rest
                self.set_aside(keyspace.MEMBERSHIP_KEY, raw, f"corrupt membership record: {exc}")
            else:
                if loaded.record.ring.replicas != policy.n:
                    raise StorageError("the stored ring's replicas differ from policy.n")
                return loaded
        record = VersionRecord(0, ring.copy())
        return Membership(self.id, record, outside=self.id not in ring, min_members=policy.n)

    def _open_hints(self) -> HintStore[DVVSet[bytes]]:
        """Open the hint store; a corrupt one is moved under ``q/`` whole and started afresh.

        Its hints are kept for the operator, not delivered: anti-entropy repairs what they held.
        """
        storage, config = self.storage, self.config

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
            self.stats["records_quarantined"] += 1
            self.notes.append(Quarantined(keyspace.HINTS_NS, str(exc)[: codec.DEFAULT_MAX_STR]))
            return open_store()

    def _load_life(self) -> int:
        raw = self.storage.get(keyspace.LIFE_KEY)
        life = None if raw is None else keyspace.decode_life(raw)
        if life is not None:
            return life
        draw = random.Random(f"dynamo-core/life/{self.id}/{self.incarnation}")  # noqa: S311
        life = draw.getrandbits(62) + 1
        self.storage.put(keyspace.LIFE_KEY, keyspace.encode_life(life))
        return life

    def _load_served(self) -> list[tuple[int, int, TokenRange]]:
        served = []
        for skey, raw in list(self.storage.scan(keyspace.SERVED, keyspace.SERVED_END)):
            try:
                span = TokenRange.from_dict(codec.loads(raw))
            except DecodeError as exc:  # forgotten: the range is handed over as hints instead
                self.set_aside(skey, raw, f"corrupt served-stream record: {exc}")
                continue
            served.append((*keyspace.served_of(skey), span))
        return served

    def _check_invariants(self, *, foreign: bool) -> None:
        """Assert the shared state's invariants; O(keys) (the trees are rebuilt from storage)."""
        stored = self.read_epoch()
        assert stored is None or stored <= self.epochs.epoch
        self.epochs._check_invariants()
        self.detector._check_invariants()
        self.hints._check_invariants()
        self.replica._check_invariants(foreign=foreign)
        assert self.next_id >= self.incarnation << 32
        m = self.membership
        m._check_invariants()
        assert self.ring is m.record.ring
        assert self.previous is m.record.previous
        for epoch, _, _ in self.served:
            assert epoch <= m.record.epoch
