"""Cluster membership: ring versions, admin changes and their gossip, as a pure core.

Dynamo spreads membership by gossip: every second a node talks to one random peer, and a few
*seed* nodes that everybody knows keep the cluster from splitting into rings that never meet.
This module holds what each node knows about membership and the rules that make every node
converge on one answer.

* A [`Change`][dynamo_core.membership.Change] is an admin request — a node joins (with a zone and
  a weight) or leaves — submitted on any node with a unique id (``"<origin>/<incarnation>/<n>"``).
  Requested changes spread by gossip as a grow-only set.
* A [`VersionRecord`][dynamo_core.membership.VersionRecord] is one ring version: a monotonic
  `epoch`, the target `ring`, the `previous` ring while data moves, the transfer `plan`
  ([`HashRing.transfers_to`][dynamo_core.ring.HashRing.transfers_to]), the ids of the changes it
  applied and the transfers completed so far (plan index -> the node that served the stream).
  Its [`RingVersion`][dynamo_core.membership.RingVersion] ``(epoch, fingerprint)`` names it.
* **One writer.** Only the *claimant* — the smallest node id of the current ring, which every
  node that holds the same version agrees on (Riak's claimant) — turns requested changes into a
  new version, and only once the current one is *settled* (every transfer complete). All the
  changes it knows are applied at once, in change-id order, so two joins submitted together
  become one transition and versions form a single sequence.
* **Adoption.** A node adopts a version whose ``(epoch, fingerprint)`` is larger than its own.
  Two different versions with the same epoch only arise when a claimant loses its disk right
  after minting one and mints again; the larger fingerprint wins, so every node still converges
  on one. A node that is not (yet) part of any ring it can justify — a new node started outside
  the ring, or one that lost its disk — is *outside*: it adopts any version a member gossips
  and is never believed by members.

[`Membership`][dynamo_core.membership.Membership] is the mutable state of one node;
[`GossipDigest`][dynamo_core.membership.GossipDigest] and
[`GossipUpdate`][dynamo_core.membership.GossipUpdate] are the two gossip messages (a small digest,
answered with only what the other side lacks; a full ring travels only when it is newer).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from typing import Final, Literal, Self

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id, check_positive_float, node_id_field
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.limits import version_refusal
from dynamo_core.ring import HashRing, Transfer

__all__ = [
    "MAX_CHANGES",
    "Change",
    "GossipDigest",
    "GossipUpdate",
    "Membership",
    "RingVersion",
    "VersionRecord",
    "moved_fraction",
]

MAX_CHANGES: Final = 100_000
"""The most change requests a node keeps (and one gossip message carries)."""

MAX_PLAN: Final = 2**18
"""The most transfers one version's plan may hold."""

_MAX_CHANGE_ID: Final = 512
_OPS: Final = ("join", "leave", "replace", "update")


# -- value types -------------------------------------------------------------------------------


def _check_change_id(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= _MAX_CHANGE_ID:
        raise ValueError(f"{attribute.name} must be 1..{_MAX_CHANGE_ID} characters long")


def _check_op(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in _OPS:
        raise ValueError(f"{attribute.name} must be one of {', '.join(_OPS)}, got {value!r:.40}")


def _check_weight(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_positive_float(value, attribute.name)


@attrs.frozen
class Change:
    """An admin request: `node` joins, leaves, is replaced, or changes its zone or weight.

    Attributes:
        id: Unique among all requests (the node that took it, its incarnation and a counter).
        op: ``"join"``, ``"leave"``, ``"replace"`` (`new` takes `node`'s place, zone and
            weight: Riak's ``cluster replace``) or ``"update"`` (`node` gets `zone` and
            `weight` in place).
        node: The node joining, leaving, being replaced or updated.
        zone: The joiner's failure zone (joins and updates), or `None`.
        weight: The joiner's relative weight (joins and updates).
        new: The replacement (replaces only), else `None`.

    Raises:
        TypeError, ValueError: a field is invalid (a leave or a replace with a zone or a weight
            other than 1, a replace without `new` or by `node` itself, `new` on another op).
    """

    id: str = attrs.field(validator=_check_change_id)
    op: Literal["join", "leave", "replace", "update"] = attrs.field(validator=_check_op)
    node: str = attrs.field(validator=node_id_field)
    zone: str | None = attrs.field(default=None, validator=attrs.validators.optional(node_id_field))
    weight: float = attrs.field(default=1.0, validator=_check_weight)
    new: str | None = attrs.field(default=None, validator=attrs.validators.optional(node_id_field))

    def __attrs_post_init__(self) -> None:
        if self.op in ("leave", "replace") and (self.zone is not None or self.weight != 1.0):
            raise ValueError(f"a {self.op} takes no zone and no weight")
        if (self.op == "replace") != (self.new is not None):
            raise ValueError("new is required by a replace, and only by a replace")
        if self.new == self.node:
            raise ValueError(f"a node cannot replace itself ({self.node!r})")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``membership_change`` envelope."""
        body: dict[str, codec.JSONValue] = {
            "id": self.id,
            "op": self.op,
            "node": self.node,
            "zone": self.zone,
            "weight": self.weight,
        }
        if self.new is not None:
            body["new"] = self.new
        return codec.envelope("membership_change", body)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``membership_change`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded change.
        """
        obj = codec.open_envelope(
            data,
            "membership_change",
            required=("id", "op", "node", "zone", "weight"),
            optional=("new",),
        )
        zone = obj["zone"]
        new = obj.get("new")
        try:
            return cls(
                codec.as_str(obj["id"], "membership_change.id", max_len=_MAX_CHANGE_ID),
                codec.as_str(obj["op"], "membership_change.op", max_len=7),  # type: ignore[arg-type]
                codec.as_str(obj["node"], "membership_change.node", max_len=MAX_NODE_ID_LEN),
                None
                if zone is None
                else codec.as_str(zone, "membership_change.zone", max_len=MAX_NODE_ID_LEN),
                codec.as_float(obj["weight"], "membership_change.weight", lo=0.0),
                None
                if new is None
                else codec.as_str(new, "membership_change.new", max_len=MAX_NODE_ID_LEN),
            )
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"membership_change: {exc}") from None


def _check_epoch(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= codec.MAX_COUNTER:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _check_fingerprint(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= 64:
        raise ValueError(f"{attribute.name} must be 1..64 characters long")


@attrs.frozen(order=True)
class RingVersion:
    """The name of a ring version: its epoch and its ring's fingerprint.

    Versions are totally ordered by ``(epoch, fingerprint)``: a node adopts a larger one.
    """

    epoch: int = attrs.field(validator=_check_epoch)
    fingerprint: str = attrs.field(validator=_check_fingerprint)

    def __str__(self) -> str:
        return f"v{self.epoch}:{self.fingerprint[:8]}"


def _check_plan(_: object, attribute: attrs.Attribute[tuple[Transfer, ...]], value: object) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of Transfer")
    if len(value) > MAX_PLAN:
        raise ValueError(f"{attribute.name} must hold at most {MAX_PLAN} transfers")
    for i, item in enumerate(value):
        if not isinstance(item, Transfer):
            raise TypeError(f"{attribute.name}[{i}] must be a Transfer")


def _check_ids(_: object, attribute: attrs.Attribute[frozenset[str]], value: object) -> None:
    if type(value) is not frozenset:
        raise TypeError(f"{attribute.name} must be a frozenset of change ids")
    if len(value) > MAX_CHANGES:
        raise ValueError(f"{attribute.name} must hold at most {MAX_CHANGES} ids")
    for item in value:
        if type(item) is not str or not 1 <= len(item) <= _MAX_CHANGE_ID:
            raise ValueError(f"{attribute.name} holds an invalid change id")


def _check_completed(
    _: object, attribute: attrs.Attribute[tuple[tuple[int, str], ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of (index, node) pairs")
    last = -1
    for item in value:
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not int:
            raise TypeError(f"{attribute.name} must hold (index, node) pairs")
        if item[0] <= last:
            raise ValueError(f"{attribute.name} must be sorted by index without repeats")
        last = item[0]
        check_node_id(item[1], f"{attribute.name}[]")


@attrs.frozen(unsafe_hash=False)
class VersionRecord:
    """One ring version and the progress of its data movement.

    The rings are owned by the record: never mutate them (use ``ring.copy()``).

    Attributes:
        epoch: The version's number (the previous version's plus one; 0 for a bootstrap ring).
        ring: The target ring.
        previous: The ring before the change while data moves; `None` once settled.
        plan: ``previous.transfers_to(ring)``: what must move.
        applied: The ids of every change applied up to this version (a join or leave that was
            invalid when its turn came is recorded here too, and never applied later).
        completed: ``(plan index, node that served the stream)`` for every finished transfer,
            sorted by index.

    Raises:
        TypeError, ValueError: a field is invalid, or a completed index is outside the plan.
    """

    epoch: int = attrs.field(validator=_check_epoch)
    ring: HashRing = attrs.field(validator=attrs.validators.instance_of(HashRing))
    previous: HashRing | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(HashRing))
    )
    plan: tuple[Transfer, ...] = attrs.field(default=(), validator=_check_plan)
    applied: frozenset[str] = attrs.field(default=frozenset(), validator=_check_ids)
    completed: tuple[tuple[int, str], ...] = attrs.field(default=(), validator=_check_completed)

    def __attrs_post_init__(self) -> None:
        if self.completed and self.completed[-1][0] >= len(self.plan):
            raise ValueError("completed names a transfer outside the plan")
        if self.previous is None and len(self.completed) != len(self.plan):
            raise ValueError("a settled version must have every transfer completed")

    @property
    def version(self) -> RingVersion:
        """The version's name, ``(epoch, ring fingerprint)``."""
        return RingVersion(self.epoch, self.ring.fingerprint)

    @property
    def settled(self) -> bool:
        """Whether every transfer is complete (the previous ring is gone)."""
        return self.previous is None

    def members(self) -> tuple[str, ...]:
        """Every node of the ring or of the previous ring, sorted."""
        nodes = set(self.ring.nodes)
        if self.previous is not None:
            nodes.update(self.previous.nodes)
        return tuple(sorted(nodes))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``ring_version`` envelope (both rings in full). Cost: O(segments)."""
        return codec.envelope(
            "ring_version",
            {
                "epoch": self.epoch,
                "ring": self.ring.to_dict(),
                "previous": None if self.previous is None else self.previous.to_dict(),
                "plan": [t.to_dict() for t in self.plan],
                "applied": [*sorted(self.applied)],
                "completed": [[i, node] for i, node in self.completed],
            },
        )

    @classmethod
    def from_dict(cls, data: object, *, hash_key: bytes | None = None) -> Self:
        """Decode a ``ring_version`` envelope (`hash_key` for keyed rings).

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded version.
        """
        obj = codec.open_envelope(
            data,
            "ring_version",
            required=("epoch", "ring", "previous", "plan", "applied", "completed"),
        )
        ring = HashRing.from_dict(obj["ring"], hash_key=hash_key)
        prev = obj["previous"]
        previous = None if prev is None else HashRing.from_dict(prev, hash_key=hash_key)
        plan = tuple(
            Transfer.from_dict(t)
            for t in codec.as_list(obj["plan"], "ring_version.plan", max_items=MAX_PLAN)
        )
        applied = frozenset(
            codec.as_str(x, "ring_version.applied[]", max_len=_MAX_CHANGE_ID)
            for x in codec.as_list(obj["applied"], "ring_version.applied", max_items=MAX_CHANGES)
        )
        completed = _decode_completed(obj["completed"], "ring_version.completed")
        try:
            return cls(
                codec.as_int(obj["epoch"], "ring_version.epoch"),
                ring,
                previous,
                plan,
                applied,
                completed,
            )
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"ring_version: {exc}") from None


def _decode_completed(value: object, what: str) -> tuple[tuple[int, str], ...]:
    items = codec.as_list(value, what, max_items=MAX_PLAN)
    out: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        pair = codec.as_list(item, f"{what}[{i}]", max_items=2)
        if len(pair) != 2:
            raise DecodeError(f"{what}[{i}] must be [index, node]")
        out.append(
            (
                codec.as_int(pair[0], f"{what}[{i}].index", hi=MAX_PLAN),
                codec.as_str(pair[1], f"{what}[{i}].node", max_len=MAX_NODE_ID_LEN),
            )
        )
    out.sort()
    if any(a[0] == b[0] for a, b in itertools.pairwise(out)):
        raise DecodeError(f"{what} repeats an index")
    return tuple(out)


def moved_fraction(record: VersionRecord) -> float:
    """The share of the replicated key space a version's plan moves.

    ``sum(transfer sizes) / (2**64 * replicas)``: 1/(n+1) is ideal for one join to n nodes.
    Cost: O(len(plan)).
    """
    total = sum(t.range.size for t in record.plan)
    return total / (TOKEN_SPACE * record.ring.replicas)


# -- gossip messages ---------------------------------------------------------------------------


def _check_indexes(_: object, attribute: attrs.Attribute[tuple[int, ...]], value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_PLAN:
        raise TypeError(f"{attribute.name} must be a tuple of at most {MAX_PLAN} ints")
    for item in value:
        if type(item) is not int or not 0 <= item < MAX_PLAN:
            raise ValueError(f"{attribute.name} holds an invalid index")


@attrs.frozen
class GossipDigest:
    """What the sender knows about membership, in a few dozen bytes.

    Attributes:
        epoch: The sender's ring epoch.
        fingerprint: Its ring's fingerprint.
        outside: The sender holds no version it can justify (a new or wiped node): never adopt
            its ring.
        completed: The plan indexes of the transfers it knows complete.
        changes: A digest of the change ids it knows (equal sets, equal digests).
        answer: This digest answers one: reply with an update, never with another digest.
    """

    epoch: int = attrs.field(validator=_check_epoch)
    fingerprint: str = attrs.field(validator=_check_fingerprint)
    outside: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    completed: tuple[int, ...] = attrs.field(validator=_check_indexes)
    changes: str = attrs.field(validator=_check_fingerprint)
    answer: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @property
    def version(self) -> RingVersion:
        """The sender's version."""
        return RingVersion(self.epoch, self.fingerprint)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``gossip_digest`` envelope."""
        return codec.envelope(
            "gossip_digest",
            {
                "epoch": self.epoch,
                "fingerprint": self.fingerprint,
                "outside": self.outside,
                "completed": [*self.completed],
                "changes": self.changes,
                "answer": self.answer,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``gossip_digest`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded digest.
        """
        obj = codec.open_envelope(
            data,
            "gossip_digest",
            required=("epoch", "fingerprint", "outside", "completed", "changes", "answer"),
        )
        items = codec.as_list(obj["completed"], "gossip_digest.completed", max_items=MAX_PLAN)
        return cls(
            codec.as_int(obj["epoch"], "gossip_digest.epoch"),
            codec.as_str(obj["fingerprint"], "gossip_digest.fingerprint", max_len=64),
            codec.as_bool(obj["outside"], "gossip_digest.outside"),
            tuple(codec.as_int(i, "gossip_digest.completed[]", hi=MAX_PLAN - 1) for i in items),
            codec.as_str(obj["changes"], "gossip_digest.changes", max_len=64),
            codec.as_bool(obj["answer"], "gossip_digest.answer"),
        )


def _check_changes(
    _: object, attribute: attrs.Attribute[tuple[Change, ...]], value: object
) -> None:
    if type(value) is not tuple or len(value) > MAX_CHANGES:
        raise TypeError(f"{attribute.name} must be a tuple of at most {MAX_CHANGES} changes")
    for item in value:
        if not isinstance(item, Change):
            raise TypeError(f"{attribute.name} must hold Change values")


@attrs.frozen(unsafe_hash=False)
class GossipUpdate:
    """What the receiver of a digest lacks.

    Attributes:
        record: The sender's version in full, when it is newer than the receiver's; or `None`.
        epoch: The sender's epoch (the version `completed` belongs to).
        fingerprint: The sender's ring fingerprint.
        completed: Completed transfers of that version.
        changes: Change requests (all the sender knows, when the digests differed).
    """

    record: VersionRecord | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.instance_of(VersionRecord))
    )
    epoch: int = attrs.field(validator=_check_epoch)
    fingerprint: str = attrs.field(validator=_check_fingerprint)
    completed: tuple[tuple[int, str], ...] = attrs.field(validator=_check_completed)
    changes: tuple[Change, ...] = attrs.field(validator=_check_changes)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``gossip_update`` envelope."""
        return codec.envelope(
            "gossip_update",
            {
                "record": None if self.record is None else self.record.to_dict(),
                "epoch": self.epoch,
                "fingerprint": self.fingerprint,
                "completed": [[i, node] for i, node in self.completed],
                "changes": [c.to_dict() for c in self.changes],
            },
        )

    @classmethod
    def from_dict(cls, data: object, *, hash_key: bytes | None = None) -> Self:
        """Decode a ``gossip_update`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded update.
        """
        obj = codec.open_envelope(
            data,
            "gossip_update",
            required=("record", "epoch", "fingerprint", "completed", "changes"),
        )
        rec = obj["record"]
        return cls(
            None if rec is None else VersionRecord.from_dict(rec, hash_key=hash_key),
            codec.as_int(obj["epoch"], "gossip_update.epoch"),
            codec.as_str(obj["fingerprint"], "gossip_update.fingerprint", max_len=64),
            _decode_completed(obj["completed"], "gossip_update.completed"),
            tuple(
                Change.from_dict(c)
                for c in codec.as_list(
                    obj["changes"], "gossip_update.changes", max_items=MAX_CHANGES
                )
            ),
        )


# -- the state of one node ---------------------------------------------------------------------


def _changes_digest(ids: Iterable[str]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for item in sorted(ids):
        digest.update(item.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class Membership:
    """What one node knows about membership: its ring version and the requested changes.

    Pure and deterministic: the node persists it
    ([`to_dict`][dynamo_core.membership.Membership.to_dict]) and feeds it gossip.

    Args:
        node_id: The node this state belongs to.
        record: Its current version.
        changes: The change requests it knows.
        outside: Whether `record` is unjustified (a bootstrap ring the node is not part of,
            or nothing loaded from storage after a wipe): adopt any member's version.
        min_members: The fewest members a leave may leave behind (the replication factor).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = ("_changes", "_digest", "_min_members", "_node", "_outside", "_record")

    def __init__(
        self,
        node_id: str,
        record: VersionRecord,
        *,
        changes: Iterable[Change] = (),
        outside: bool = False,
        min_members: int = 1,
    ) -> None:
        self._node = check_node_id(node_id, "node_id")
        if not isinstance(record, VersionRecord):
            raise TypeError(f"record must be a VersionRecord, not {type(record).__name__}")
        self._record = record
        self._changes: dict[str, Change] = {}
        for change in changes:
            if not isinstance(change, Change):
                raise TypeError("changes must hold Change values")
            self._changes.setdefault(change.id, change)
        self._outside = bool(outside)
        self._min_members = min_members
        self._digest: str | None = None

    # -- views -------------------------------------------------------------------------------

    @property
    def record(self) -> VersionRecord:
        """The current version record."""
        return self._record

    @property
    def version(self) -> RingVersion:
        """The current version's name."""
        return self._record.version

    @property
    def outside(self) -> bool:
        """Whether this node holds no version it can justify yet."""
        return self._outside

    @property
    def settled(self) -> bool:
        """Whether the current version's data movement is finished."""
        return self._record.settled

    def changes(self) -> tuple[Change, ...]:
        """Every known change request, sorted by id."""
        return tuple(self._changes[k] for k in sorted(self._changes))

    def pending(self) -> tuple[Change, ...]:
        """The requested changes no version has applied yet, sorted by id."""
        applied = self._record.applied
        return tuple(self._changes[k] for k in sorted(self._changes) if k not in applied)

    def claimant(self) -> str | None:
        """The node allowed to mint the next version: the smallest id of the current ring."""
        nodes = self._record.ring.nodes
        return nodes[0] if nodes else None

    def completed(self) -> dict[int, str]:
        """Completed transfers of the current version: plan index -> serving node."""
        return dict(self._record.completed)

    def digest(self, *, answer: bool = False) -> GossipDigest:
        """The gossip digest of this state. Cost: O(changes) after a change, else O(plan)."""
        if self._digest is None:
            self._digest = _changes_digest(self._changes)
        rec = self._record
        return GossipDigest(
            rec.epoch,
            rec.ring.fingerprint,
            self._outside,
            tuple(i for i, _ in rec.completed),
            self._digest,
            answer,
        )

    # -- inputs ------------------------------------------------------------------------------

    def request(self, change: Change) -> bool:
        """Add a change request; return whether it was new (a full set ignores new ones)."""
        if not isinstance(change, Change):
            raise TypeError(f"change must be a Change, not {type(change).__name__}")
        if change.id in self._changes or len(self._changes) >= MAX_CHANGES:
            return False
        self._changes[change.id] = change
        self._digest = None
        return True

    def adopt(self, record: VersionRecord) -> bool:
        """Adopt `record` if it is newer (or if this node is outside). Return whether it did.

        A record of the same version only contributes its completed transfers.
        """
        mine = self._record.version
        theirs = record.version
        if self._outside and record.epoch >= self._record.epoch and theirs != mine:
            self._record = record
            self._outside = False
            return True
        if theirs > mine:
            self._record = record
            self._outside = False
            return True
        if theirs == mine:
            self._outside = False
            return self.complete_many(record.completed)
        return False

    def complete_many(self, completed: Iterable[tuple[int, str]]) -> bool:
        """Record completed transfers of the current version; settle when all are in.

        Returns:
            Whether anything changed. Indexes outside the plan are ignored.
        """
        rec = self._record
        if rec.settled:
            return False
        done = dict(rec.completed)
        changed = False
        for index, node in completed:
            if 0 <= index < len(rec.plan) and index not in done:
                done[index] = node
                changed = True
        if not changed:
            return False
        previous = rec.previous if len(done) < len(rec.plan) else None
        self._record = attrs.evolve(rec, previous=previous, completed=tuple(sorted(done.items())))
        return True

    def mint(self) -> VersionRecord | None:  # noqa: PLR0912, PLR0915 - one branch per kind of change
        """As the claimant of a settled version, turn every pending change into a new version.

        Changes apply in id order: the last request for a node wins; a join of a node that is
        a member, a leave of a non-member, a leave that would leave fewer than `min_members`
        nodes, a replace of a non-member or by a member, and an update of a non-member are
        recorded as applied and ignored. The ring changes in one claim per kind: replaces
        first (each moves exactly the replaced node's partitions, all to its replacement),
        then updates (zone and weight in place), joins and leaves. A batch that changes nothing
        still yields a version (the same ring at the next epoch, settled at once), so gossip
        tells every node its requests are applied. Cost: O(claim) for the ring change plus
        ``transfers_to`` (O(segments * replicas)).

        Returns:
            The new record (already adopted), or `None` when this node may not mint or nothing
            is pending.
        """
        rec = self._record
        if self._outside or not rec.settled or self.claimant() != self._node:
            return None
        pending = self.pending()
        if not pending:
            return None
        ring = rec.ring
        joins: dict[str, Change] = {}
        leaves: list[str] = []
        replaces: dict[str, str] = {}
        updates: dict[str, Change] = {}
        members = set(ring.nodes)
        for change in pending:
            node = change.node
            if change.op == "join":
                if node in members:
                    continue
                members.add(node)
                if node in leaves:  # left and joined again in one batch: it stays
                    leaves.remove(node)
                else:
                    joins[node] = change
            elif change.op == "leave":
                if node not in members or len(members) - 1 < self._min_members:
                    continue
                members.discard(node)
                if node in joins:
                    del joins[node]
                else:
                    leaves.append(node)
            elif change.op == "replace":
                new_node = change.new
                assert new_node is not None  # Change checks it
                if node not in members or new_node in members or new_node in leaves:
                    continue
                members.discard(node)
                members.add(new_node)
                if node in joins:  # joined in this batch: the replacement joins instead
                    joins[new_node] = attrs.evolve(joins.pop(node), node=new_node)
                    continue
                old = next((o for o, n in replaces.items() if n == node), node)
                replaces[old] = new_node  # a chain of replaces is one replace
                if node in updates:
                    updates[new_node] = attrs.evolve(updates.pop(node), node=new_node)
            elif node in members:  # an update
                if node in joins:
                    joins[node] = attrs.evolve(joins[node], zone=change.zone, weight=change.weight)
                else:
                    updates[node] = change
        applied = rec.applied | {c.id for c in pending}
        new = ring.copy()
        try:
            # Replaces first: each moves exactly its node's partitions, whatever follows.
            for old, new_node in replaces.items():
                new.replace(old, new_node)
            for node in sorted(updates):
                new.update_node(node, weight=updates[node].weight, zone=updates[node].zone)
            if joins:
                order = sorted(joins)
                new.add_nodes(
                    order,
                    weights={n: joins[n].weight for n in order},
                    zones={n: joins[n].zone for n in order},
                )
            if leaves:
                new.remove_nodes(sorted(leaves))
        except ValueError:  # e.g. a ring too full for the weights asked: refuse the batch
            new = ring.copy()
        # Even a batch that changes nothing (a join and a leave of the same node, or only
        # invalid requests) becomes a version: gossip must tell every node they are applied.
        plan = tuple(ring.transfers_to(new))
        record = VersionRecord(rec.epoch + 1, new, ring if plan else None, plan, applied)
        self._record = record
        return record

    # -- the gossip rules --------------------------------------------------------------------

    def future_members(self) -> list[str]:
        """The ring's members once every pending change is applied (id order)."""
        members = set(self._record.ring.nodes)
        for change in self.pending():
            if change.op == "join":
                members.add(change.node)
            elif change.op == "leave":
                members.discard(change.node)
            elif change.op == "replace" and change.node in members and change.new:
                members.discard(change.node)
                members.add(change.new)
        return sorted(members)

    def answer(self, digest: GossipDigest) -> tuple[GossipUpdate | None, GossipDigest | None]:
        """What to send back for a peer's `digest`: an update it lacks, a digest asking for ours.

        The update carries the whole record when the peer is outside or behind, the completed
        transfers it lacks when it is on this version, and every change request when the two
        sets differ. The digest (an *answer*, never answered itself) asks for what this node
        lacks. Either is `None` when there is nothing to send. Cost: O(changes + plan).
        """
        rec = self._record
        mine = rec.version
        theirs = digest.version
        my_changes = self.digest().changes
        full: VersionRecord | None = None
        completed: tuple[tuple[int, str], ...] = ()
        if not self._outside and (digest.outside or mine > theirs):
            full = rec
        elif not self._outside and theirs == mine:
            known = set(digest.completed)
            completed = tuple(item for item in rec.completed if item[0] not in known)
        changes = self.changes() if digest.changes != my_changes else ()
        update = None
        if full is not None or completed or changes:
            update = GossipUpdate(full, rec.epoch, mine.fingerprint, completed, changes)
        if digest.answer:
            return update, None
        mine_done = {i for i, _ in rec.completed}
        lacking = (
            (not digest.outside and (theirs > mine or self._outside))
            or (theirs == mine and bool(set(digest.completed) - mine_done))
            or digest.changes != my_changes
        )
        return update, self.digest(answer=True) if lacking else None

    def apply(
        self, update: GossipUpdate, *, known: Iterable[str], replicas: int
    ) -> tuple[bool, tuple[RingVersion, str] | None]:
        """Apply a peer's `update`: its change requests, then its record or completed transfers.

        A newer record is checked first (`limits.version_refusal`: size, members this node
        knows of — `known` adds the seeds and this node — and a reachable epoch); a refused one
        is not adopted, and neither is one of another replication factor than `replicas`.

        Returns:
            Whether anything changed, and ``(version, reason)`` when the record was refused.
        """
        before = self._record
        changed = False
        for change in update.changes:
            changed = self.request(change) or changed
        record = update.record
        refusal: tuple[RingVersion, str] | None = None
        if record is not None and record.version > before.version:
            reason = self._refusal(record, known)
            if reason is not None:
                refusal = (record.version, reason)
                record = None
        if record is not None:
            if record.ring.replicas == replicas:
                changed = self.adopt(record) or changed
        elif RingVersion(update.epoch, update.fingerprint) == before.version:
            changed = self.complete_many(update.completed) or changed
        return changed, refusal

    def _refusal(self, record: VersionRecord, known: Iterable[str]) -> str | None:
        members = set(self._record.members()) | set(known)
        members.update(c.node for c in self.changes() if c.op == "join")
        members.update(c.new for c in self.changes() if c.new is not None)  # replacements
        return version_refusal(record, self._record, members, outside=self._outside)

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode the state (record, changes, outside) as a ``membership`` envelope."""
        return codec.envelope(
            "membership",
            {
                "node": self._node,
                "record": self._record.to_dict(),
                "changes": [c.to_dict() for c in self.changes()],
                "outside": self._outside,
            },
        )

    @classmethod
    def from_dict(
        cls, data: object, *, hash_key: bytes | None = None, min_members: int = 1
    ) -> Membership:
        """Decode what [`to_dict`][dynamo_core.membership.Membership.to_dict] produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded membership state.
        """
        obj = codec.open_envelope(
            data, "membership", required=("node", "record", "changes", "outside")
        )
        node = codec.as_str(obj["node"], "membership.node", max_len=MAX_NODE_ID_LEN)
        record = VersionRecord.from_dict(obj["record"], hash_key=hash_key)
        changes = [
            Change.from_dict(c)
            for c in codec.as_list(obj["changes"], "membership.changes", max_items=MAX_CHANGES)
        ]
        return cls(
            node,
            record,
            changes=changes,
            outside=codec.as_bool(obj["outside"], "membership.outside"),
            min_members=min_members,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Membership):
            return NotImplemented
        return (self._node, self._record, self.changes(), self._outside) == (
            other._node,
            other._record,
            other.changes(),
            other._outside,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _check_invariants(self) -> None:
        rec = self._record
        assert rec.settled == (len(rec.completed) == len(rec.plan)) or not rec.plan
        assert all(0 <= i < len(rec.plan) for i, _ in rec.completed)
        assert all(k == c.id for k, c in self._changes.items())
        if rec.previous is not None:
            assert rec.plan, "an unsettled version has something to move"


def holders(previous: HashRing, rng: TokenRange) -> list[str]:
    """The nodes that replicate every token of `rng` in `previous`, in sorted order.

    Cost: O(segments * replicas).
    """
    common: set[str] | None = None
    for seg, plist in previous.segments():
        if _overlaps(seg, rng):
            common = set(plist) if common is None else common & set(plist)
    return sorted(common or ())


def _overlaps(a: TokenRange, b: TokenRange) -> bool:
    return any(p.start < q.end and q.start < p.end for p in a.pieces() for q in b.pieces())


def stream_sources(record: VersionRecord, index: int) -> list[str]:
    """Where the target of transfer `index` may pull from, best first.

    The planned source first — except that a node leaving the ring (a member of the previous
    ring only) that holds the whole range comes first, so a leaving node streams everything
    out — then the other previous replicas of the whole range, sorted.
    """
    transfer = record.plan[index]
    previous = record.previous
    if previous is None:
        return [transfer.source]
    able = [n for n in holders(previous, transfer.range) if n != transfer.target]
    leaving = [n for n in able if n not in record.ring]
    order = [*leaving, transfer.source, *able]
    out: list[str] = []
    for node in order:
        if node not in out and node != transfer.target:
            out.append(node)
    return out
