"""Membership glue: gossip rounds, minting and installing ring versions, dropping moved data.

[`Members`][dynamo_core.node.membership.Members] sends this node's digest to one random member
or seed each `gossip_interval`, answers digests and applies updates by the rules of
[`Membership`][dynamo_core.membership.Membership] (which owns them), mints the next version when
this node is the claimant, and installs a version: the replicated segments and peers, and the
hand-over of data this node no longer replicates. What else a new version changes (streams,
sessions, hints) the core orchestrates through the `changed` callback.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final, Literal, cast

from dynamo_core._check import check_node_id, check_positive_float
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import ChangeRefused
from dynamo_core.hashing import TOKEN_SPACE, TokenRange
from dynamo_core.membership import (
    Change,
    GossipDigest,
    GossipUpdate,
    RingVersion,
    VersionRecord,
)
from dynamo_core.messages import Message
from dynamo_core.node import keyspace
from dynamo_core.node.effects import Effect, MembershipView, Send, VersionRefused
from dynamo_core.node.replica import Segment
from dynamo_core.node.state import NodeState

__all__ = ["Members"]

_MAX_REFUSED: Final = 1024  # refused ring versions remembered (each is reported once)

Hinter = Callable[[str, bytes, DVVSet[bytes], float], bool]
Changed = Callable[[VersionRecord, float, list[Effect]], None]


class Members:
    """One node's side of membership: gossip, versions, and the data a version moves away."""

    __slots__ = (
        "_change_seq",
        "_changed",
        "_draw",
        "_hint",
        "_next_gossip",
        "_node",
        "_refused",
        "foreign",
    )

    def __init__(self, node: NodeState, now: float, *, hint: Hinter, changed: Changed) -> None:
        self._node = node
        self._hint = hint  # keeps a hint for a replica (liveness owns the hints)
        self._changed = changed  # what a new version means for the other parts (the core)
        self._draw = random.Random(f"dynamo-core/gossip/{node.id}/{node.incarnation}")  # noqa: S311
        self._next_gossip = now
        self._change_seq = 0
        self._refused: set[RingVersion] = set()  # ring versions refused (reported once)
        self.foreign = False  # data of ranges moved away that could not be handed over yet

    # -- the timer channel -------------------------------------------------------------------

    def deadline(self) -> float:
        """The next gossip round."""
        return self._next_gossip

    def on_timer(self, now: float, out: list[Effect]) -> None:
        """A gossip round, when due (minting first: a version may have settled)."""
        if now >= self._next_gossip:
            self.maybe_mint(self._node.membership.record, now, out)  # a version may have settled
            self.gossip(now, out)

    def gossip(self, now: float, out: list[Effect], *, schedule: bool = True) -> None:
        """Send the membership digest to one random member or seed."""
        if schedule:
            self._next_gossip = now + self._node.config.gossip_interval
        peers = self._node.hb_targets
        if not peers:
            return
        peer = peers[self._draw.randrange(len(peers))]
        self._node.stats["gossip_sent"] += 1
        out.append(Send(peer, self._node.membership.digest()))

    # -- admin requests ----------------------------------------------------------------------

    def future_members(self) -> list[str]:
        """The ring's members once every requested change is applied (id order)."""
        return self._node.membership.future_members()

    def check_request(
        self,
        op: Literal["join", "leave", "replace", "update"],
        node: str,
        zone: str | None = None,
        weight: float = 1.0,
        new: str | None = None,
    ) -> None:
        """Refuse an admin request that is invalid now (see `Node.join` and its siblings)."""
        check_node_id(node, "old" if op == "replace" else "node")
        if op == "replace":
            check_node_id(new, "new")
        if op in ("join", "update"):
            if zone is not None:
                check_node_id(zone, "zone")
            check_positive_float(weight, "weight")
        future = self.future_members()
        if op == "join" and node in future:
            message = f"node {node!r} is already a member (or its join is requested)"
            raise ChangeRefused(message, code="already_member")
        if op != "join" and node not in future:
            message = f"node {node!r} is not a member (or is already leaving)"
            raise ChangeRefused(message, code="not_member")
        if op == "replace" and new in future:
            message = f"node {new!r} is already a member (or its join is requested)"
            raise ChangeRefused(message, code="already_member")
        if op == "leave":
            remaining = sum(1 for n in future if n != node)
            n = self._node.policy.n
            if remaining < n:
                message = f"removing {node!r} would leave {remaining} members, fewer than n={n}"
                raise ChangeRefused(message, code="too_few_members")

    def request(
        self,
        op: Literal["join", "leave", "replace", "update"],
        node: str,
        now: float,
        zone: str | None,
        weight: float,
        *,
        new: str | None = None,
    ) -> list[Effect]:
        """Request a change (it spreads by gossip; the claimant applies it)."""
        state = self._node
        self._change_seq += 1
        change_id = f"{state.id}/{state.incarnation}/{self._change_seq}"
        out: list[Effect] = []
        before = state.membership.record
        state.membership.request(Change(change_id, op, node, zone, weight, new))
        state.persist_membership()
        self.maybe_mint(before, now, out)
        self.gossip(now, out, schedule=False)
        return out

    # -- read-only views ---------------------------------------------------------------------

    def view(self) -> MembershipView:
        """The membership state as `Node.membership` shows it."""
        m = self._node.membership
        rec = m.record
        return MembershipView(
            rec.version, rec.settled, rec.plan, rec.completed, m.pending(), m.claimant(), m.outside
        )

    def status(self) -> str:  # noqa: PLR0911 - one return per status
        """This node's place in the cluster (see `Node.status`). Cost: O(changes)."""
        node = self._node
        m = node.membership
        rec = m.record
        me = node.id
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
            return "leaving" if node.replica.holds_any() or len(node.hints) else "left"
        return "outside"

    # -- gossip ------------------------------------------------------------------------------

    def on_digest(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A peer's digest: answer it by `Membership.answer`."""
        reply, ask = self._node.membership.answer(cast("GossipDigest", message))
        if reply is not None:
            out.append(Send(sender, reply))
        if ask is not None:
            out.append(Send(sender, ask))

    def on_update(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A peer's update: apply it by `Membership.apply`; report a refused version once."""
        node = self._node
        m = node.membership
        before = m.record
        changed, refusal = m.apply(
            cast("GossipUpdate", message),
            known=set(node.seeds) | {node.id},
            replicas=node.policy.n,
        )
        if refusal is not None:
            version, reason = refusal
            node.stats["versions_refused"] += 1
            if version not in self._refused:  # noted once per version
                if len(self._refused) >= _MAX_REFUSED:
                    self._refused.clear()
                self._refused.add(version)
                node.notes.append(VersionRefused(sender, version, reason))
        if changed:
            node.persist_membership()
            self._changed(before, now, out)
            self.maybe_mint(m.record, now, out)

    def maybe_mint(self, before: VersionRecord, now: float, out: list[Effect]) -> None:
        """As the claimant, turn pending changes into the next version."""
        node = self._node
        minted = node.membership.mint()
        if minted is not None or node.membership.record is not before:
            node.persist_membership()
        if minted is not None:
            self._changed(before, now, out)
            self.gossip(now, out, schedule=False)

    def complete(self, index: int, served_by: str, now: float, out: list[Effect]) -> None:
        """Transfer `index` of the installed version is complete (this node received it)."""
        node = self._node
        before = node.membership.record
        if node.membership.complete_many([(index, served_by)]):
            node.persist_membership()
            self._changed(before, now, out)
            self.gossip(now, out, schedule=False)

    # -- installing a version ----------------------------------------------------------------

    def install(self) -> None:
        """Recompute everything derived from the ring(s): replicated segments and peers."""
        node = self._node
        segments: list[Segment] = []
        peers: set[str] = set()
        for span, replicas in self._segments():
            if node.id in replicas:
                depth = min(node.config.merkle_depth, span.size.bit_length() - 1)
                segments.append(Segment(span, replicas, depth))
                peers.update(n for n in replicas if n != node.id)
        segments.sort(key=lambda s: s.range.start)
        node.replica.install(segments, node.ring.token)
        node.peers = tuple(sorted(peers))
        members = set(node.membership.record.members()) | set(node.seeds)
        members.discard(node.id)
        node.hb_targets = tuple(sorted(members))

    def _segments(self) -> list[tuple[TokenRange, tuple[str, ...]]]:
        """The ring's segments with their replicas.

        During a transition: the segments of both rings, each with the union of its replicas
        in the two placements (the new ring's first). Cost: O(S * replicas).
        """
        ring, prev = self._node.ring, self._node.previous
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

    def forget_departed(self) -> None:
        """The detector forgets nodes that are neither members nor seeds."""
        node = self._node
        members = set(node.membership.record.members()) | set(node.seeds)
        for n in node.detector.nodes():
            if n not in members:
                node.detector.forget(n)

    def clean_markers(self, new_version: bool) -> None:
        """Forget served-stream records and dirty marks that can no longer be used."""
        node = self._node
        rec = node.membership.record
        if self.foreign:
            return  # the next drop still needs them
        stale = [
            (e, i, r) for e, i, r in node.served if rec.settled or e != rec.epoch or new_version
        ]
        if not stale and not rec.settled:
            return
        storage = node.storage
        deletes = [keyspace.served_key(e, i) for e, i, _ in stale]
        if rec.settled or new_version:
            deletes += [k for k, _ in storage.scan(keyspace.DIRTY, keyspace.DIRTY_END)]
        deletes += [
            k
            for k, _ in storage.scan(keyspace.STREAM, keyspace.STREAM_END)
            if rec.settled or keyspace.stream_epoch(k) != rec.epoch
        ]
        if deletes:
            storage.write_batch(deletes=deletes)
        node.set_served([x for x in node.served if x not in stale])

    def retry_drop(self, now: float) -> None:
        """Data the last drop could not hand over yet: try again."""
        if self.foreign:
            self.drop_foreign(now)
            self.clean_markers(new_version=False)

    def drop_foreign(self, now: float) -> None:
        """Hand over and delete the data of ranges this node no longer replicates.

        A key goes without a copy only when this node served the completed stream of its range
        and nothing was written to it since serving began; any other key is first stored as a
        hint for each of its current replicas (durable, delivered with acknowledgements).
        """
        node = self._node
        storage, replica, stats = node.storage, node.replica, node.stats
        rec = node.membership.record
        done = dict(rec.completed)
        served = [r for e, i, r in node.served if e == rec.epoch and done.get(i) == node.id]
        kept = False
        for skey, raw in list(storage.scan(keyspace.DATA, keyspace.DATA_END)):
            tok = keyspace.token_of(skey)
            if replica.segment_of(tok) is not None:
                continue
            key = keyspace.key_of(skey)
            dirty = keyspace.dirty_key(skey)
            state = replica.state(skey, raw)
            if state is None:  # quarantined: kept where it is, never deleted
                continue
            if not (any(tok in r for r in served) and storage.get(dirty) is None):
                targets = [n for n in node.ring.preference_list(key) if n != node.id]
                stored = [self._hint(target, key, state, now) for target in targets]
                if not targets or not all(stored):  # every replica gets its hint, or retry
                    kept = True
                    continue
                stats["keys_rehinted"] += 1
            node.epochs.retire(state.context)  # a stale copy may come back: no dot twice
            replica.drop(skey)
            stats["keys_dropped"] += 1
        self.foreign = kept
