"""Admin requests: an operator's membership changes on the wire, and how a node answers them.

An operator (``dynamo-core admin``) sends one [`AdminRequest`][dynamo_core.admin.AdminRequest]
to any member over an *admin* connection (see the [trust model](../explanation/trust-model.md):
the admin role proves the node secret, or shows a ``dynamo-core://admin/NAME`` certificate):

* ``join`` / ``leave`` / ``replace`` / ``update`` become the node's
  [`join`][dynamo_core.node.Node.join], [`leave`][dynamo_core.node.Node.leave],
  [`replace`][dynamo_core.node.Node.replace] or
  [`update_member`][dynamo_core.node.Node.update_member]: the answer is an
  [`AdminAccepted`][dynamo_core.admin.AdminAccepted] naming the change id, or an
  [`AdminRefused`][dynamo_core.admin.AdminRefused] with a typed `code` — nothing changes then;
* ``ring`` asks for a [`RingReport`][dynamo_core.admin.RingReport]: the node's ring version,
  members with zone, weight and partition count, and the data movement still pending.

Changes are not refused while another is in progress: they queue, and the claimant applies
every queued change in the next version once the current one settles.

[`answer`][dynamo_core.admin.answer] is the node's side (pure, called from the node's dispatch
table with the node itself, seen through [`AdminNode`][dynamo_core.admin.AdminNode]); the
codecs follow the rules of every message: validated, capped, never pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, Protocol, Self, TypeAlias, TypeVar

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id, node_id_field
from dynamo_core.errors import ChangeRefused, DecodeError
from dynamo_core.membership import Change, Membership
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import MAX_NODES, Transfer

__all__ = [
    "ADMIN_OPS",
    "MAX_REPORTED",
    "REFUSAL_CODES",
    "AdminAccepted",
    "AdminNode",
    "AdminRefused",
    "AdminReply",
    "AdminRequest",
    "MemberRow",
    "RingReport",
    "answer",
    "is_admin_request",
    "reply_from_dict",
    "request_from_dict",
]

ADMIN_OPS: Final = ("join", "leave", "replace", "update", "ring")
"""What an [`AdminRequest`][dynamo_core.admin.AdminRequest] may ask."""

REFUSAL_CODES: Final = (
    "not_member",
    "already_member",
    "too_few_members",
    "bad_weight",
    "outside",
    "bad_request",
    "forbidden",
)
"""Why an admin request was refused: ``not_member`` (the node to leave, replace or update is
not a member, or is already leaving), ``already_member`` (the node to join, or the
replacement, is a member or its join is requested), ``too_few_members`` (a leave would leave
fewer than N members), ``bad_weight`` (the ring cannot take that weight or zone: every node
must keep a partition), ``outside`` (the node asked has no ring version yet: ask a member),
``bad_request`` (any other invalid argument), ``forbidden`` (the connection is not an admin's)."""

MAX_REPORTED: Final = 1024
"""The most pending transfers and pending changes a ring report lists (it counts them all)."""

_MAX_REASON: Final = 1024

E = TypeVar("E")


def _rid(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= codec.MAX_COUNTER:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _optional_id(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_node_id(value, attribute.name)


def _weight(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not float:
        raise TypeError(f"{attribute.name} must be a float, not {type(value).__name__}")
    if not 0.0 < value < float("inf"):
        raise ValueError(f"{attribute.name} must be a finite number above 0, got {value!r}")


def _optional_weight(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _weight(_, attribute, value)


def _build(cls: Callable[..., Any], what: str, *args: object) -> Any:
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


def _opt_str(obj: dict[str, object], name: str, what: str) -> str | None:
    value = obj.get(name)
    return None if value is None else codec.as_str(value, f"{what}.{name}", max_len=MAX_NODE_ID_LEN)


# -- the request -------------------------------------------------------------------------------


@attrs.frozen
class AdminRequest:
    """What an operator asks a node.

    Attributes:
        rid: The admin's id for the request, echoed in the reply.
        op: ``"join"``, ``"leave"``, ``"replace"``, ``"update"`` or ``"ring"``.
        node: The node joining, leaving, being replaced or updated; `None` for ``ring``.
        new: The replacement (``replace`` only).
        zone: The zone (``join``, ``update``); `None`: no zone for a join, unchanged for an
            update.
        weight: The weight (``join``, ``update``); `None`: 1 for a join, unchanged for an
            update.

    Raises:
        TypeError, ValueError: a field is invalid or does not belong to `op` (an update must
            change a zone or a weight; a node cannot replace itself).
    """

    rid: int = attrs.field(validator=_rid)
    op: Literal["join", "leave", "replace", "update", "ring"] = attrs.field()
    node: str | None = attrs.field(default=None, validator=_optional_id)
    new: str | None = attrs.field(default=None, validator=_optional_id)
    zone: str | None = attrs.field(default=None, validator=_optional_id)
    weight: float | None = attrs.field(default=None, validator=_optional_weight)

    @op.validator
    def _check_op(self, attribute: attrs.Attribute[str], value: object) -> None:
        if value not in ADMIN_OPS:
            raise ValueError(f"op must be one of {', '.join(ADMIN_OPS)}, got {value!r:.40}")

    def __attrs_post_init__(self) -> None:
        op = self.op
        if (op == "ring") != (self.node is None):
            raise ValueError("node is required by every op but ring, and ring takes none")
        if (op == "replace") != (self.new is not None):
            raise ValueError("new is required by a replace, and only by a replace")
        if self.new is not None and self.new == self.node:
            raise ValueError(f"a node cannot replace itself ({self.node!r})")
        if op not in ("join", "update") and (self.zone is not None or self.weight is not None):
            raise ValueError(f"a {op} takes no zone and no weight")
        if op == "update" and self.zone is None and self.weight is None:
            raise ValueError("an update must give a zone or a weight")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``admin_request`` envelope."""
        return codec.envelope(
            "admin_request",
            {
                "rid": self.rid,
                "op": self.op,
                "node": self.node,
                "new": self.new,
                "zone": self.zone,
                "weight": self.weight,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``admin_request`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid admin request.
        """
        what = "admin_request"
        obj = codec.open_envelope(
            data, what, required=("rid", "op", "node", "new", "zone", "weight")
        )
        raw_weight = obj["weight"]
        weight = None if raw_weight is None else codec.as_float(raw_weight, f"{what}.weight")
        return _build(  # type: ignore[no-any-return]
            cls,
            what,
            codec.as_int(obj["rid"], f"{what}.rid"),
            codec.as_str(obj["op"], f"{what}.op", max_len=8),
            _opt_str(obj, "node", what),
            _opt_str(obj, "new", what),
            _opt_str(obj, "zone", what),
            weight,
        )


def is_admin_request(data: object) -> bool:
    """Whether decoded JSON `data` claims to be an admin request (its ``type``)."""
    return type(data) is dict and data.get("type") == "admin_request"


def request_from_dict(data: object) -> AdminRequest:
    """Decode an admin request.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid admin request.
    """
    return AdminRequest.from_dict(data)


# -- the replies -------------------------------------------------------------------------------


@attrs.frozen
class AdminAccepted:
    """A change was taken: it spreads by gossip and the claimant applies it.

    Attributes:
        rid: The request's id.
        change: The change id (``"<node>/<incarnation>/<n>"``).
        applied: Whether the answering node (the claimant, with a settled ring) applied it at
            once in version `epoch`; otherwise it is queued for the next version.
        epoch: The answering node's ring epoch after taking the change.
    """

    rid: int = attrs.field(validator=_rid)
    change: str = attrs.field(validator=node_id_field)
    applied: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    epoch: int = attrs.field(validator=_rid)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``admin_accepted`` envelope."""
        return codec.envelope(
            "admin_accepted",
            {"rid": self.rid, "change": self.change, "applied": self.applied, "epoch": self.epoch},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``admin_accepted`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not valid.
        """
        what = "admin_accepted"
        obj = codec.open_envelope(data, what, required=("rid", "change", "applied", "epoch"))
        return _build(  # type: ignore[no-any-return]
            cls,
            what,
            codec.as_int(obj["rid"], f"{what}.rid"),
            codec.as_str(obj["change"], f"{what}.change", max_len=MAX_NODE_ID_LEN),
            codec.as_bool(obj["applied"], f"{what}.applied"),
            codec.as_int(obj["epoch"], f"{what}.epoch"),
        )


@attrs.frozen
class AdminRefused:
    """A request was refused; nothing changed.

    Attributes:
        rid: The request's id.
        code: One of [`REFUSAL_CODES`][dynamo_core.admin.REFUSAL_CODES].
        reason: One line for the operator.
    """

    rid: int = attrs.field(validator=_rid)
    code: str = attrs.field()
    reason: str = attrs.field()

    @code.validator
    def _check_code(self, attribute: attrs.Attribute[str], value: object) -> None:
        if value not in REFUSAL_CODES:
            raise ValueError(f"code must be one of {', '.join(REFUSAL_CODES)}, got {value!r:.40}")

    @reason.validator
    def _check_reason(self, attribute: attrs.Attribute[str], value: object) -> None:
        if type(value) is not str or not 1 <= len(value) <= _MAX_REASON:
            raise ValueError(f"reason must be a str of 1..{_MAX_REASON} characters")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``admin_refused`` envelope."""
        return codec.envelope(
            "admin_refused", {"rid": self.rid, "code": self.code, "reason": self.reason}
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``admin_refused`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not valid.
        """
        what = "admin_refused"
        obj = codec.open_envelope(data, what, required=("rid", "code", "reason"))
        return _build(  # type: ignore[no-any-return]
            cls,
            what,
            codec.as_int(obj["rid"], f"{what}.rid"),
            codec.as_str(obj["code"], f"{what}.code", max_len=32),
            codec.as_str(obj["reason"], f"{what}.reason", max_len=_MAX_REASON),
        )


@attrs.frozen
class MemberRow:
    """One member in a [`RingReport`][dynamo_core.admin.RingReport].

    Attributes:
        node: Its id.
        zone: Its zone, or `None`.
        weight: Its weight.
        partitions: The partitions it owns (segments, for a vnode ring).
    """

    node: str = attrs.field(validator=node_id_field)
    zone: str | None = attrs.field(validator=_optional_id)
    weight: float = attrs.field(validator=_weight)
    partitions: int = attrs.field(validator=_rid)

    def to_list(self) -> list[codec.JSONValue]:
        """Encode as ``[node, zone, weight, partitions]``."""
        return [self.node, self.zone, self.weight, self.partitions]

    @classmethod
    def from_list(cls, data: object, what: str) -> Self:
        """Decode ``[node, zone, weight, partitions]``.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not valid.
        """
        items = codec.as_list(data, what, max_items=4)
        if len(items) != 4:
            raise DecodeError(f"{what} must be [node, zone, weight, partitions]")
        node, zone, weight, partitions = items
        return _build(  # type: ignore[no-any-return]
            cls,
            what,
            codec.as_str(node, f"{what}.node", max_len=MAX_NODE_ID_LEN),
            None if zone is None else codec.as_str(zone, f"{what}.zone", max_len=MAX_NODE_ID_LEN),
            codec.as_float(weight, f"{what}.weight"),
            codec.as_int(partitions, f"{what}.partitions"),
        )


def _check_rows(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_NODES:
        raise ValueError(f"{attribute.name} must be a tuple of at most {MAX_NODES} rows")


def _check_reported(kind: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not tuple or len(value) > MAX_REPORTED:
            raise ValueError(f"{attribute.name} must be a tuple of at most {MAX_REPORTED} items")
        if not all(isinstance(item, kind) for item in value):
            raise TypeError(f"{attribute.name} must hold {kind.__name__} values")

    return check


@attrs.frozen
class RingReport:
    """What a node knows of the ring: the answer to an ``admin ring`` request.

    Attributes:
        rid: The request's id.
        node: The node that answered.
        status: Its [`status`][dynamo_core.node.Node.status].
        epoch: Its ring version's epoch.
        fingerprint: Its ring version's fingerprint (equal rings, equal fingerprints).
        settled: Whether the version's data movement is finished.
        claimant: The node that mints the next version, or `None` (an empty ring).
        outside: Whether the node holds no version it can justify yet.
        members: The ring's members, sorted by id.
        transfers: How many transfers the version's plan holds.
        transfers_done: How many of them are complete.
        pending_transfers: The first `MAX_REPORTED` transfers not complete yet, in plan order.
        pending_changes: How many requested changes no version has applied yet.
        changes: The first `MAX_REPORTED` of them, by id.
    """

    rid: int = attrs.field(validator=_rid)
    node: str = attrs.field(validator=node_id_field)
    status: str = attrs.field(validator=node_id_field)
    epoch: int = attrs.field(validator=_rid)
    fingerprint: str = attrs.field(validator=node_id_field)
    settled: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    claimant: str | None = attrs.field(validator=_optional_id)
    outside: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    members: tuple[MemberRow, ...] = attrs.field(validator=_check_rows)
    transfers: int = attrs.field(validator=_rid)
    transfers_done: int = attrs.field(validator=_rid)
    pending_transfers: tuple[Transfer, ...] = attrs.field(validator=_check_reported(Transfer))
    pending_changes: int = attrs.field(validator=_rid)
    changes: tuple[Change, ...] = attrs.field(validator=_check_reported(Change))

    def partitions(self) -> dict[str, int]:
        """Partitions owned by each member."""
        return {row.node: row.partitions for row in self.members}

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``admin_ring`` envelope."""
        return codec.envelope(
            "admin_ring",
            {
                "rid": self.rid,
                "node": self.node,
                "status": self.status,
                "epoch": self.epoch,
                "fingerprint": self.fingerprint,
                "settled": self.settled,
                "claimant": self.claimant,
                "outside": self.outside,
                "members": [row.to_list() for row in self.members],
                "transfers": self.transfers,
                "transfers_done": self.transfers_done,
                "pending_transfers": [t.to_dict() for t in self.pending_transfers],
                "pending_changes": self.pending_changes,
                "changes": [c.to_dict() for c in self.changes],
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``admin_ring`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not valid.
        """
        what = "admin_ring"
        obj = codec.open_envelope(
            data,
            what,
            required=(
                "rid",
                "node",
                "status",
                "epoch",
                "fingerprint",
                "settled",
                "claimant",
                "outside",
                "members",
                "transfers",
                "transfers_done",
                "pending_transfers",
                "pending_changes",
                "changes",
            ),
        )
        rows = codec.as_list(obj["members"], f"{what}.members", max_items=MAX_NODES)
        transfers = codec.as_list(
            obj["pending_transfers"], f"{what}.pending_transfers", max_items=MAX_REPORTED
        )
        changes = codec.as_list(obj["changes"], f"{what}.changes", max_items=MAX_REPORTED)
        return _build(  # type: ignore[no-any-return]
            cls,
            what,
            codec.as_int(obj["rid"], f"{what}.rid"),
            codec.as_str(obj["node"], f"{what}.node", max_len=MAX_NODE_ID_LEN),
            codec.as_str(obj["status"], f"{what}.status", max_len=16),
            codec.as_int(obj["epoch"], f"{what}.epoch"),
            codec.as_str(obj["fingerprint"], f"{what}.fingerprint", max_len=64),
            codec.as_bool(obj["settled"], f"{what}.settled"),
            _opt_str(obj, "claimant", what),
            codec.as_bool(obj["outside"], f"{what}.outside"),
            tuple(MemberRow.from_list(r, f"{what}.members[{i}]") for i, r in enumerate(rows)),
            codec.as_int(obj["transfers"], f"{what}.transfers"),
            codec.as_int(obj["transfers_done"], f"{what}.transfers_done"),
            tuple(Transfer.from_dict(t) for t in transfers),
            codec.as_int(obj["pending_changes"], f"{what}.pending_changes"),
            tuple(Change.from_dict(c) for c in changes),
        )


AdminReply: TypeAlias = AdminAccepted | AdminRefused | RingReport
"""Every answer to an admin request."""

_REPLIES: Final[dict[str, Callable[[object], AdminReply]]] = {
    "admin_accepted": AdminAccepted.from_dict,
    "admin_refused": AdminRefused.from_dict,
    "admin_ring": RingReport.from_dict,
}


def reply_from_dict(data: object) -> AdminReply:
    """Decode any answer to an admin request, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid admin reply.
    """
    reply: AdminReply = codec.decode_by_type(data, _REPLIES, "admin reply")
    return reply


# -- the node's side ---------------------------------------------------------------------------


class AdminNode(Protocol[E]):
    """What [`answer`][dynamo_core.admin.answer] needs of a node.

    A [`Node`][dynamo_core.node.Node] is one; this module never imports the node.
    """

    @property
    def node_id(self) -> str:
        """The node's id."""
        ...

    @property
    def status(self) -> str:
        """Its place in the cluster."""
        ...

    @property
    def policy(self) -> QuorumPolicy:
        """Its quorum policy (N bounds a leave)."""
        ...

    def join(
        self, node: str, now: float, *, zone: str | None = ..., weight: float = ...
    ) -> list[E]:
        """Request a join."""
        ...

    def leave(self, node: str, now: float) -> list[E]:
        """Request a leave."""
        ...

    def replace(self, old: str, new: str, now: float) -> list[E]:
        """Request a replace."""
        ...

    def update_member(
        self, node: str, now: float, *, zone: str | None = ..., weight: float = ...
    ) -> list[E]:
        """Request an in-place update."""
        ...


def report(node_id: str, status: str, membership: Membership, rid: int) -> RingReport:
    """The ring report of node `node_id` (in `status`) from its membership state.

    Cost: O(segments * replicas + changes).
    """
    rec = membership.record
    ring = rec.ring
    owned = dict.fromkeys(ring.nodes, 0)
    for _, plist in ring.segments():
        owned[plist[0]] += 1
    members = tuple(MemberRow(n, ring.zone(n), float(ring.weight(n)), owned[n]) for n in ring.nodes)
    done = {i for i, _ in rec.completed}
    pending = [t for i, t in enumerate(rec.plan) if i not in done][:MAX_REPORTED]
    changes = membership.pending()
    return RingReport(
        rid,
        node_id,
        status,
        rec.epoch,
        ring.fingerprint,
        rec.settled,
        membership.claimant(),
        membership.outside,
        members,
        len(rec.plan),
        len(rec.completed),
        tuple(pending),
        len(changes),
        changes[:MAX_REPORTED],
    )


def _refusal(
    node: AdminNode[E], membership: Membership, request: AdminRequest
) -> tuple[str, str] | None:
    """Why `request` must be refused before the node is asked, as ``(code, reason)``, or `None`.

    The node refuses what the ring as it will be does not allow (a `ChangeRefused` with its
    code); this adds what only an operator's request can be: asked of a node outside the ring,
    or a join or an update the claim cannot place. Cost: O(claim).
    """
    if membership.outside:
        return "outside", f"node {node.node_id!r} holds no ring version yet: ask a member"
    target, op = request.node, request.op
    assert target is not None
    trial = membership.record.ring.copy()
    try:  # the claim refuses what it cannot place: say so now rather than ignore it later
        if op == "join" and target not in trial:
            trial.add_node(target, weight=request.weight or 1.0, zone=request.zone)
        elif op == "update" and target in trial:
            zone = request.zone or trial.zone(target)
            trial.update_node(target, weight=request.weight, zone=zone)
    except ValueError as exc:
        return "bad_weight", str(exc)[:_MAX_REASON]
    return None


def answer(
    node: AdminNode[E], membership: Membership, request: AdminRequest, now: float
) -> tuple[AdminReply, list[E]]:
    """Carry out `request` on `node` (whose membership state is `membership`).

    A change goes through the node's public [`join`][dynamo_core.node.Node.join],
    [`leave`][dynamo_core.node.Node.leave], [`replace`][dynamo_core.node.Node.replace] or
    [`update_member`][dynamo_core.node.Node.update_member]; a refusal changes nothing.
    Cost: O(claim) to check a join or an update, plus the node method's own.

    Returns:
        The reply, and the effects of the node method (none for a refusal or a report).
    """
    rid = request.rid
    if request.op == "ring":
        return report(node.node_id, node.status, membership, rid), []
    refusal = _refusal(node, membership, request)
    if refusal is not None:
        return AdminRefused(rid, *refusal), []
    before = {c.id for c in membership.changes()}
    target = request.node
    assert target is not None
    try:
        match request.op:
            case "join":
                effects = node.join(target, now, zone=request.zone, weight=request.weight or 1.0)
            case "leave":
                effects = node.leave(target, now)
            case "replace":
                assert request.new is not None
                effects = node.replace(target, request.new, now)
            case _:
                ring = membership.record.ring
                known = target in ring
                zone = request.zone or (ring.zone(target) if known else None)
                weight = request.weight or (ring.weight(target) if known else 1.0)
                effects = node.update_member(target, now, zone=zone, weight=float(weight))
    except ChangeRefused as exc:
        return AdminRefused(rid, exc.code, str(exc)[:_MAX_REASON]), []
    except (TypeError, ValueError) as exc:
        return AdminRefused(rid, "bad_request", str(exc)[:_MAX_REASON] or "invalid request"), []
    change = next((c.id for c in membership.changes() if c.id not in before), None)
    if change is None:  # the node already keeps MAX_CHANGES requests
        return AdminRefused(rid, "bad_request", "this node's change log is full"), effects
    record = membership.record
    return AdminAccepted(rid, change, change in record.applied, record.epoch), effects
