"""Per-key limits: what a node admits from a client, and what it may ever store or ship.

Two tiers, defined here once:

* **Admission limits** ([`Limits`][dynamo_core.limits.Limits], part of
  [`NodeConfig`][dynamo_core.node.NodeConfig]) are checked on the client's write path only,
  before anything is written: the value's size, and the key's siblings, clock entries and
  encoded record size *after* the write. A write over one is refused with
  [`LimitExceeded`][dynamo_core.errors.LimitExceeded], which names the limit and says what to do,
  and changes nothing. The defaults follow Riak (``object.siblings.warning_threshold`` 25,
  ``object.siblings.maximum`` 100), with a value cap that fits the wire.
* **Storage limits** (the ``STORED_*`` constants) are what every decoder accepts and what one
  frame can carry. Replication, hints, anti-entropy and range streams are never refused by the
  admission limits (refusing a replica transfer loses data, as Riak's maintainers found); they
  carry what was admitted, and the admission limits are at most ``1 / MERGE_HEADROOM`` of the
  storage limits so that merges of concurrently admitted states still fit. A merge that would
  not fit is not stored (a node never stores a record it could not decode or ship).

Client contexts are bounded too: at most ``STORED_MAX_ENTRIES`` entries, and counters at most
``MAX_CONTEXT_COUNTER`` (2**53), far below the 2**63 - 1 at which a counter could not be
incremented, so a context can never make a coordinator's next dot overflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from dynamo_core import codec
from dynamo_core._check import check_positive_int
from dynamo_core.dvv import MAX_SIBLINGS as STORED_MAX_SIBLINGS
from dynamo_core.errors import LimitExceeded
from dynamo_core.vclock import MAX_ENTRIES as STORED_MAX_ENTRIES

if TYPE_CHECKING:
    from collections.abc import Collection

    from dynamo_core.dvv import DVVSet
    from dynamo_core.membership import VersionRecord

__all__ = [
    "FRAME_MARGIN",
    "LIMIT_NAMES",
    "MAX_CONTEXT_COUNTER",
    "MAX_MEMBERS",
    "MERGE_HEADROOM",
    "STORED_MAX_ENTRIES",
    "STORED_MAX_RECORD_BYTES",
    "STORED_MAX_SIBLINGS",
    "Limits",
    "encoded_size",
    "unstorable",
    "version_refusal",
]

MERGE_HEADROOM: Final = 3
"""How many concurrently admitted states (one per replica, N = 3) must merge within the
storage limits: each admission limit is at most the storage limit divided by this."""

FRAME_MARGIN: Final = 1 << 20
"""Bytes of a frame kept for what travels beside a record (envelope, key, client context)."""

STORED_MAX_RECORD_BYTES: Final = codec.DEFAULT_MAX_BYTES - FRAME_MARGIN
"""The largest encoded replica record a node stores or ships (15 MiB: one 16 MiB frame)."""

MAX_CONTEXT_COUNTER: Final = 2**53
"""The largest counter a client context may carry (far below the 2**63 - 1 overflow)."""

MAX_MEMBERS: Final = 1024
"""The most nodes a ring version a node adopts may name (its ring and previous ring)."""

LIMIT_NAMES: Final = ("max_clock_entries", "max_record_bytes", "max_siblings", "max_value_bytes")
"""The names a [`LimitExceeded`][dynamo_core.errors.LimitExceeded] refusal can carry."""

_ADVICE: Final = {
    "max_siblings": "read the key, merge its values and write the merge back with the context "
    "the read returned (that replaces the siblings)",
    "max_value_bytes": "store smaller values (split a large object over several keys)",
    "max_record_bytes": "read the key, merge its values and write the merge back with the "
    "context the read returned, or store smaller values",
    "max_clock_entries": "write with the context of a fresh read of this key (a context taken "
    "from elsewhere adds actors)",
}


def encoded_size(value_bytes: int) -> int:
    """Return the size of `value_bytes` bytes once base64-encoded in a record."""
    return 4 * ((value_bytes + 2) // 3)


def _refusal(limit: str, maximum: int, actual: int) -> LimitExceeded:
    return LimitExceeded(
        f"write refused: {limit} is {maximum}, the write would reach {actual}; {_ADVICE[limit]}",
        limit=limit,
        maximum=maximum,
        actual=actual,
    )


def _count(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name)


@attrs.frozen
class Limits:
    """The admission limits of a node's client writes (part of `NodeConfig`).

    Attributes:
        max_siblings: The most values a key may hold after a client write (Riak's
            ``object.siblings.maximum``, 100).
        siblings_warning: Above this many siblings a write is still admitted but counted in
            ``stats()["sibling_warnings"]`` (Riak's ``warning_threshold``, 25).
        max_value_bytes: The largest value a client may write (1 MiB).
        max_clock_entries: The most actors a key's causal context may name after a client
            write (256).
        max_record_bytes: The largest encoded record (every sibling, base64, and the clock) a
            client write may leave (4 MiB).

    Raises:
        TypeError, ValueError: a limit is not a positive int, `siblings_warning` is above
            `max_siblings`, a limit times `MERGE_HEADROOM` is over its storage limit, or one
            value of `max_value_bytes` could not fit in `max_record_bytes`.
    """

    max_siblings: int = attrs.field(default=100, validator=_count)
    siblings_warning: int = attrs.field(default=25, validator=_count)
    max_value_bytes: int = attrs.field(default=1 << 20, validator=_count)
    max_clock_entries: int = attrs.field(default=256, validator=_count)
    max_record_bytes: int = attrs.field(default=4 << 20, validator=_count)

    def __attrs_post_init__(self) -> None:
        if self.siblings_warning > self.max_siblings:
            raise ValueError(
                f"siblings_warning must be at most max_siblings={self.max_siblings}, "
                f"got {self.siblings_warning}"
            )
        for name, value, stored in (
            ("max_siblings", self.max_siblings, STORED_MAX_SIBLINGS),
            ("max_clock_entries", self.max_clock_entries, STORED_MAX_ENTRIES),
            ("max_record_bytes", self.max_record_bytes, STORED_MAX_RECORD_BYTES),
        ):
            if value * MERGE_HEADROOM > stored:
                raise ValueError(
                    f"{name} must be at most {stored // MERGE_HEADROOM} (the storage limit "
                    f"{stored} / {MERGE_HEADROOM}, so merges of admitted states fit), got {value}"
                )
        if encoded_size(self.max_value_bytes) + 1024 > self.max_record_bytes:
            raise ValueError(
                f"max_value_bytes={self.max_value_bytes} cannot fit in max_record_bytes="
                f"{self.max_record_bytes} once encoded ({encoded_size(self.max_value_bytes)} "
                "bytes plus the record's clock)"
            )

    def check_frame(self, max_frame: int) -> None:
        """Check that merged records fit in frames of `max_frame` bytes.

        Raises:
            ValueError: ``max_record_bytes * MERGE_HEADROOM + FRAME_MARGIN > max_frame``.
        """
        need = self.max_record_bytes * MERGE_HEADROOM + FRAME_MARGIN
        if need > max_frame:
            raise ValueError(
                f"max_frame={max_frame} cannot carry the records these limits admit: "
                f"max_record_bytes={self.max_record_bytes} x {MERGE_HEADROOM} merged states "
                f"+ {FRAME_MARGIN} bytes of envelope = {need}; raise the frame cap or lower "
                "the limits"
            )

    def check_value(self, value: bytes) -> LimitExceeded | None:
        """Return the refusal of a client value over `max_value_bytes`, else `None`."""
        if len(value) > self.max_value_bytes:
            return _refusal("max_value_bytes", self.max_value_bytes, len(value))
        return None

    def admit(self, state: DVVSet[bytes], raw: bytes) -> LimitExceeded | None:
        """Return the refusal of a client write leaving `state` (encoded `raw`), else `None`.

        Cost: O(size of the state).
        """
        siblings = len(state)
        if siblings > self.max_siblings:
            return _refusal("max_siblings", self.max_siblings, siblings)
        entries = len(state._entries)  # len(state.context), without building the clock
        if entries > self.max_clock_entries:
            return _refusal("max_clock_entries", self.max_clock_entries, entries)
        if len(raw) > self.max_record_bytes:
            return _refusal("max_record_bytes", self.max_record_bytes, len(raw))
        return None


def unstorable(state: DVVSet[bytes], raw: bytes) -> str | None:
    """Why a node must not store `state` (encoded `raw`), or `None` if it may.

    A record over a storage limit could not be decoded, shipped in one frame or streamed.
    """
    if len(raw) > STORED_MAX_RECORD_BYTES:
        return f"the merged record is {len(raw)} bytes; the limit is {STORED_MAX_RECORD_BYTES}"
    if len(state) > STORED_MAX_SIBLINGS:
        return f"the merged record has {len(state)} siblings; the limit is {STORED_MAX_SIBLINGS}"
    entries = len(state._entries)  # len(state.context), without building the clock
    if entries > STORED_MAX_ENTRIES:
        return f"the merged record names {entries} actors; the limit is {STORED_MAX_ENTRIES}"
    return None


def version_refusal(
    record: VersionRecord, current: VersionRecord, known: Collection[str], *, outside: bool
) -> str | None:
    """Why a node must not adopt the ring version `record`, or `None` if it may.

    Checked before adoption, whoever sent it (decoding already capped its size: tokens,
    partitions, plan). The rules:

    * at most `MAX_MEMBERS` members;
    * every member is `known`: a member of the current version, a seed, or a node whose join
      (or replace) request this node knows (a node still *outside* a ring learns its members,
      so for it this rule does not apply);
    * its epoch is reachable: every version applies at least one change the previous one had
      not, so ``record.epoch - current.epoch`` can be at most the number of changes `record`
      applied that `current` did not (``2**62`` with three changes is a forgery).

    Cost: O(members + applied changes).
    """
    members = record.members()
    if len(members) > MAX_MEMBERS:
        return f"it names {len(members)} members; the limit is {MAX_MEMBERS}"
    if not outside:
        strangers = [node for node in members if node not in known]
        if strangers:
            shown = ", ".join(repr(n[:64]) for n in strangers[:3])
            return f"it names nodes that are neither members nor joining: {shown}"
    base_epoch, base_applied = (
        (0, frozenset[str]()) if outside else (current.epoch, current.applied)
    )
    new_changes = len(record.applied - base_applied)
    if record.epoch - base_epoch > new_changes:
        return (
            f"its epoch {record.epoch} is {record.epoch - base_epoch} versions ahead of "
            f"{base_epoch}, but it applies only {new_changes} new changes"
        )
    return None
