"""Liveness: heartbeats, the failure detector's inputs, hinted handoff and re-hinting.

[`Liveness`][dynamo_core.node.liveness.Liveness] sends a heartbeat to every member and seed each
`heartbeat_interval`, feeds the detector with the beats it hears (newest first, per life),
keeps hints for failed replicas and drives a [`Handoff`][dynamo_core.hints.Handoff] that
delivers them when the detector believes their targets up again. Its deadline is the next
heartbeat or the handoff's own, recomputed whenever the hint store or the handoff changes.
"""

from __future__ import annotations

from typing import Any, cast

from dynamo_core._check import key_bytes
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import DotCollision, RemoteProtocolError
from dynamo_core.hints import (
    DeliveryFailed,
    Handoff,
    HintBatch,
    HintsDelivered,
    HintsExpired,
    SendHints,
)
from dynamo_core.messages import Heartbeat, HintAck, Message
from dynamo_core.node.effects import Effect, Send
from dynamo_core.node.state import NodeState

__all__ = ["Liveness"]


class Liveness:
    """Heartbeats out and in, hints kept and handed off (one node's)."""

    __slots__ = ("_handoff", "_handoff_at", "_hb_seen", "_hb_seq", "_next_beat", "_node")

    def __init__(self, node: NodeState, now: float) -> None:
        config = node.config
        self._node = node
        self._handoff: Handoff[DVVSet[bytes]] = Handoff(
            node.hints,
            timeout=config.handoff_timeout,
            backoff=config.handoff_backoff,
            max_backoff=max(60.0, config.handoff_backoff),
            rate=config.handoff_rate,
            poll_interval=config.heartbeat_interval,
            first_batch_id=node.incarnation << 32,
        )
        self._handoff_at = self._handoff.deadline()  # kept current: see `_handoff_changed`
        self._hb_seq = 0
        self._hb_seen: dict[str, tuple[int, int]] = {}
        self._next_beat = now

    # -- the timer channel -------------------------------------------------------------------

    def deadline(self) -> float:
        """The next heartbeat or handoff step. Cost: O(1)."""
        at = self._handoff_at
        return self._next_beat if at is None or at > self._next_beat else at

    def beat_due(self, now: float) -> bool:
        """Whether the next heartbeat is due at `now`."""
        return now >= self._next_beat

    def heartbeat(self, now: float, out: list[Effect]) -> None:
        """Beat to every member and seed, and tell the handoff which targets are up."""
        self._hb_seq += 1
        beat = Heartbeat(self._node.incarnation, self._hb_seq)
        out.extend(Send(node, beat) for node in self._node.hb_targets)
        interval = self._node.config.heartbeat_interval
        self._next_beat = max(self._next_beat + interval, now)
        if self._next_beat <= now:
            self._next_beat = now + interval
        self.refresh_handoff(now, out)

    def on_handoff_timer(self, now: float, out: list[Effect]) -> None:
        """Step the handoff if it is due."""
        due = self._handoff_at
        if due is not None and due <= now:
            self._handoff_effects(self._handoff.on_timer(now), now, out)

    # -- messages ----------------------------------------------------------------------------

    def on_heartbeat(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """Feed the detector with a beat newer than the last one heard from `sender`."""
        beat = cast("Heartbeat", message)
        stamp = (beat.generation, beat.seq)
        last = self._hb_seen.get(sender)
        if last is None or stamp > last:
            self._hb_seen[sender] = stamp
            self._node.detector.heartbeat(sender, now)
        if sender not in self._node.hb_targets:
            # A node outside the membership (joining, left, still handing hints over) hears
            # from us only this way: answer its beat with one of ours.
            out.append(Send(sender, Heartbeat(self._node.incarnation, self._hb_seq)))

    def on_hints(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """Hints handed over: merge, or hand on; acknowledge only when all are kept."""
        batch = cast("HintBatch[DVVSet[bytes]]", message)
        node = self._node
        complete = True
        for hint in batch.hints:
            key = key_bytes(hint.key, "hint.key")
            if hint.target != node.id:
                node.stats["messages_ignored"] += 1
            elif node.replicates(key):
                if node.absorb(key, hint.state):
                    node.stats["hints_received"] += 1
                else:  # not stored: the sender keeps the hint (until its TTL) and retries
                    complete = False
            elif node.ring.nodes:
                # No longer a replica of the key (the ring changed): hand it on, never drop it.
                complete = self.rehint(key, hint.state, now) and complete
            else:
                complete = False
        if complete:  # otherwise the sender keeps the hints and retries
            out.append(Send(sender, HintAck(batch.batch_id)))

    def on_hint_ack(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A target acknowledged a batch of hints: the handoff forgets them."""
        ack = cast("HintAck", message)
        try:
            effects = self._handoff.on_ack(sender, ack.batch_id, now)
        except RemoteProtocolError:
            self._node.stats["messages_ignored"] += 1
            return
        self._handoff_effects(cast("list[Any]", effects), now, out)

    # -- hints -------------------------------------------------------------------------------

    def hint(self, target: str, key: bytes, state: DVVSet[bytes], now: float) -> bool:
        """Keep a hint (merging into one held for the key); a dot collision is refused."""
        try:
            return self._node.hints.add(target, key, state, now)
        except DotCollision:
            self._node.stats["dot_collisions"] += 1
            return False
        finally:
            self._handoff_changed()

    def rehint(self, key: bytes, state: DVVSet[bytes], now: float) -> bool:
        """Keep `state` for the key's current replicas (merge it here if this node is one)."""
        node = self._node
        ok = True
        for target in node.ring.preference_list(key):
            if target == node.id:
                if node.replicates(key):
                    ok = node.absorb(key, state) and ok
            elif not self.hint(target, key, state, now):
                ok = False
        node.stats["keys_rehinted"] += 1
        return ok

    def rehome_hints(self, now: float) -> None:
        """Hints for a node that is no longer a member go to their keys' current replicas."""
        node = self._node
        members = set(node.membership.record.members())
        for target in node.hints.targets():
            if target in members or target == node.id:
                continue
            for hint in node.hints.pending(target):
                key = key_bytes(hint.key, "hint.key")
                if self.rehint(key, hint.state, now):
                    node.hints.remove(hint)
        self._handoff_changed()

    def refresh_handoff(self, now: float, out: list[Effect]) -> None:
        """Tell the handoff which hint targets the detector believes up."""
        detector = self._node.detector
        for target in self._node.hints.targets():
            if detector.is_available(target, now):
                self._handoff_effects(self._handoff.target_up(target, now), now, out)
            elif self._handoff.is_up(target):
                self._handoff_effects(self._handoff.target_down(target, now), now, out)

    def _handoff_changed(self) -> None:
        """The hint store or the handoff changed: its deadline may have moved."""
        self._handoff_at = self._handoff.deadline()

    def _handoff_effects(self, effects: list[Any], now: float, out: list[Effect]) -> None:
        self._handoff_changed()
        for effect in effects:
            match effect:
                case SendHints(target=target, batch=batch):
                    out.append(Send(target, batch))
                case HintsDelivered() | HintsExpired():
                    out.append(effect)
                case DeliveryFailed(target=target, reason=reason):
                    if reason == "timeout":
                        self._node.detector.suspect(target, now)
                case _:  # pragma: no cover - the handoff's effect union is exhaustive
                    raise AssertionError(f"unexpected handoff effect {effect!r}")

    def _check_invariants(self) -> None:
        self._handoff._check_invariants()
        assert self._handoff_at == self._handoff.deadline(), "a stale handoff deadline"
