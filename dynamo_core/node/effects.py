"""What a node hands its driver: the effects of its inputs and a read-only membership view."""

from __future__ import annotations

from typing import Final, TypeAlias

import attrs

from dynamo_core import merkle
from dynamo_core.hashing import TokenRange
from dynamo_core.hints import HintsDelivered, HintsExpired
from dynamo_core.membership import Change, RingVersion
from dynamo_core.messages import Message, RequestResult
from dynamo_core.ring import Transfer

__all__ = [
    "NODE_STATUSES",
    "AntiEntropyDone",
    "Effect",
    "MembershipView",
    "Quarantined",
    "Reply",
    "RingChanged",
    "Send",
    "TransferDone",
    "VersionRefused",
]


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


@attrs.frozen
class Quarantined:
    """Effect (informational): a stored record failed to decode and is quarantined.

    A replica record is kept as it is (never deleted, never overwritten), counted in
    ``stats()["records_quarantined"]``, and reported once per life of the node. Reads answer
    as if this replica did not hold the key, writes to it are refused here, and the other
    replicas keep serving it. A node record (its epoch, membership, stream bookkeeping) is moved
    under ``q/`` and the node starts without it, as after a lost disk; a hint store that does
    not open is moved there whole (anti-entropy repairs what its hints held). See the node page
    for what an operator does.

    Attributes:
        key: The replica record's key, or the node record's storage key (``b"m/epoch"``,
            ``b"h/"`` for the hint store).
        reason: Why it failed to decode.
    """

    key: bytes
    reason: str


@attrs.frozen
class VersionRefused:
    """Effect (informational): a ring version received by gossip was refused, not adopted.

    Counted in ``stats()["versions_refused"]`` every time; reported once per version.

    Attributes:
        sender: The node that sent it.
        version: The refused version.
        reason: Which rule it broke (a stranger member, an unreachable epoch, a size cap).
    """

    sender: str
    version: RingVersion
    reason: str


@attrs.frozen
class RingChanged:
    """Effect (informational): the node installed another ring version, or it settled.

    Attributes:
        version: The version now installed.
        settled: Whether its data movement is finished (the previous ring is gone).
        transfers: How many transfers its plan holds.
    """

    version: RingVersion
    settled: bool
    transfers: int


@attrs.frozen
class TransferDone:
    """Effect (informational): this node finished streaming a range in.

    Attributes:
        transfer: The transfer (this node is its target).
        index: Its index in the version's plan.
        served_by: The source that streamed the whole range.
        keys: Keys received over the stream's life (resumes included).
    """

    transfer: Transfer
    index: int
    served_by: str
    keys: int


NODE_STATUSES: Final = ("joining", "member", "leaving", "left", "outside")
"""What [`Node.status`][dynamo_core.node.Node.status] returns."""


@attrs.frozen
class MembershipView:
    """A read-only view of a node's membership state.

    Attributes:
        version: The installed ring version.
        settled: Whether its data movement is finished.
        plan: The version's transfers.
        completed: ``(index, served_by)`` of the finished ones.
        pending_changes: Requested changes no version has applied yet.
        claimant: The node that mints the next version.
        outside: Whether the node holds no version it can justify yet.
    """

    version: RingVersion
    settled: bool
    plan: tuple[Transfer, ...]
    completed: tuple[tuple[int, str], ...]
    pending_changes: tuple[Change, ...]
    claimant: str | None
    outside: bool

    @property
    def pending_transfers(self) -> tuple[Transfer, ...]:
        """The transfers not completed yet, in plan order."""
        done = {i for i, _ in self.completed}
        return tuple(t for i, t in enumerate(self.plan) if i not in done)


Effect: TypeAlias = (
    Send
    | Reply
    | AntiEntropyDone
    | HintsDelivered
    | HintsExpired
    | RingChanged
    | TransferDone
    | Quarantined
    | VersionRefused
)
"""Everything a [`Node`][dynamo_core.node.Node] input returns a list of; dispatch with `match`."""
