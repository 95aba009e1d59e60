"""Anti-entropy: root offers, Merkle exchange sessions, and the repairs they find.

Every `anti_entropy_interval`, [`AntiEntropy`][dynamo_core.node.anti_entropy.AntiEntropy] offers
the roots of the segments this node shares with its next replica peer believed up (round
robin). The peer answers with the segments whose roots differ; for each (at most
`max_exchanges`) the two run a [`MerkleExchange`][dynamo_core.merkle.MerkleExchange], and the
initiator pushes the states the peer lacks and pulls the ones it lacks.
"""

from __future__ import annotations

from collections import deque
from typing import Literal, assert_never, cast

from dynamo_core import merkle
from dynamo_core.dvv import DVVSet
from dynamo_core.errors import RemoteProtocolError
from dynamo_core.hashing import TokenRange
from dynamo_core.messages import (
    MAX_REPAIR_KEYS,
    ExchangeMessage,
    Message,
    RepairPull,
    RepairPush,
    SyncDiff,
    SyncOffer,
)
from dynamo_core.node import keyspace
from dynamo_core.node.effects import AntiEntropyDone, Effect, Send
from dynamo_core.node.state import NodeState
from dynamo_core.streaming import MAX_BATCH_BYTES

__all__ = ["AntiEntropy"]


class _Exchange:
    """One side of a Merkle exchange with a peer."""

    __slots__ = ("core", "expires", "peer", "range", "role", "session")

    def __init__(
        self,
        *,
        core: merkle.MerkleExchange,
        peer: str,
        session: int,
        span: TokenRange,
        role: Literal["initiator", "responder"],
        expires: float,
    ) -> None:
        self.core = core
        self.peer = peer
        self.session = session
        self.range = span
        self.role = role
        self.expires = expires


class AntiEntropy:
    """One node's anti-entropy rounds and exchange sessions."""

    __slots__ = ("_cursor", "_exchanges", "_next_round", "_node", "_offers")

    def __init__(self, node: NodeState, now: float) -> None:
        self._node = node
        self._cursor = 0  # the next peer to offer to (round robin)
        self._next_round = now + node.config.anti_entropy_interval
        # offers in the order made: they expire in that order (one timeout for all)
        self._offers: dict[int, tuple[str, float]] = {}
        self._exchanges: dict[tuple[str, int, str], _Exchange] = {}

    def busy(self) -> bool:
        """Whether offers or exchange sessions are open."""
        return bool(self._offers or self._exchanges)

    def clear(self) -> None:
        """A ring version was installed: offers and sessions over the old segments end."""
        self._exchanges.clear()
        self._offers.clear()

    # -- the timer channel -------------------------------------------------------------------

    def deadline(self) -> float:
        """The next round, offer expiry or session step.

        Cost: O(sessions): at most `max_exchanges` per peer.
        """
        at = self._next_round
        if self._offers:
            at = min(at, next(iter(self._offers.values()))[1])
        for exchange in self._exchanges.values():
            at = min(at, exchange.expires)
            due = exchange.core.deadline()
            if due is not None and due < at:
                at = due
        return at

    def on_timer(self, now: float, out: list[Effect]) -> None:
        """Expire offers and sessions, step the sessions due, start the round if due."""
        offers = self._offers
        while offers:
            session, (_, expires) = next(iter(offers.items()))
            if expires > now:
                break
            del offers[session]
        for ident, exchange in list(self._exchanges.items()):
            if exchange.expires <= now:
                del self._exchanges[ident]
                continue
            due = exchange.core.deadline()
            if due is not None and due <= now:
                self._drive(exchange, exchange.core.on_timer(now), now, out)
        if now >= self._next_round:
            self._next_round = now + self._node.config.anti_entropy_interval
            if now >= self._node.full_until:  # a full disk: do not pull more data in
                self.start_round(now, out)

    # -- offers ------------------------------------------------------------------------------

    def start_round(self, now: float, out: list[Effect]) -> None:
        """Offer the roots of the shared segments to the next replica peer believed up."""
        node = self._node
        peers = node.peers
        busy = {peer for peer, _ in self._offers.values()} | {
            exchange.peer for exchange in self._exchanges.values() if exchange.role == "initiator"
        }
        for _ in range(len(peers)):
            peer = peers[self._cursor % len(peers)]
            self._cursor += 1
            if peer in busy or not node.detector.is_available(peer, now):
                continue
            roots = tuple(
                (s.range, node.replica.root(s)) for s in node.replica.segments if peer in s.replicas
            )
            session = node.new_id()
            self._offers[session] = (peer, now + node.config.exchange_timeout)
            node.stats["sync_offers"] += 1
            out.append(Send(peer, SyncOffer(session, roots)))
            return

    def on_offer(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A peer's roots: answer with the shared segments whose roots differ."""
        offer = cast("SyncOffer", message)
        replica = self._node.replica
        differ = []
        for span, root in offer.roots:
            s = replica.segment(span.start)
            if s is None or s.range != span or sender not in s.replicas:
                continue
            if replica.root(s) != root:
                differ.append(span)
        out.append(Send(sender, SyncDiff(offer.session, tuple(differ))))

    def on_diff(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """The peer's answer to an offer: start an exchange per differing segment."""
        diff = cast("SyncDiff", message)
        node = self._node
        offer = self._offers.get(diff.session)
        if offer is None or offer[0] != sender:
            node.stats["messages_ignored"] += 1
            return
        del self._offers[diff.session]
        config = node.config
        started = 0
        for span in diff.ranges:
            if started >= config.max_exchanges:
                break
            s = node.replica.segment(span.start)
            if s is None or s.range != span or sender not in s.replicas:
                continue
            core = merkle.MerkleExchange(
                node.replica.tree(s),
                merkle.ExchangeRole.INITIATOR,
                levels_per_round=config.levels_per_round,
                confirm_delay=config.confirm_delay,
            )
            session = node.new_id()
            exchange = _Exchange(
                core=core,
                peer=sender,
                session=session,
                span=span,
                role="initiator",
                expires=now + config.exchange_timeout,
            )
            self._exchanges[sender, session, "initiator"] = exchange
            node.stats["exchanges"] += 1
            started += 1
            self._drive(exchange, core.start(now), now, out)

    # -- exchanges ---------------------------------------------------------------------------

    def on_exchange(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A step of an exchange session (a `Hello` opens the responder's side)."""
        wrapped = cast("ExchangeMessage", message)
        node = self._node
        ident = (sender, wrapped.session, wrapped.to)
        exchange = self._exchanges.get(ident)
        if exchange is None:
            s = node.replica.segment(wrapped.range.start)
            if (
                wrapped.to != "responder"
                or not isinstance(wrapped.message, merkle.Hello)
                or s is None
                or s.range != wrapped.range
                or sender not in s.replicas
            ):
                node.stats["messages_ignored"] += 1
                return
            core = merkle.MerkleExchange(node.replica.tree(s), merkle.ExchangeRole.RESPONDER)
            exchange = _Exchange(
                core=core,
                peer=sender,
                session=wrapped.session,
                span=wrapped.range,
                role="responder",
                expires=now + node.config.exchange_timeout,
            )
            self._exchanges[ident] = exchange
        elif exchange.range != wrapped.range:
            node.stats["messages_ignored"] += 1
            return
        try:
            effects = exchange.core.receive(wrapped.message, now)
        except RemoteProtocolError:
            # Out of turn: most likely a duplicate or a straggler. Ignore it; a peer that is
            # really broken stops making progress and the session times out.
            node.stats["messages_ignored"] += 1
            return
        exchange.expires = now + node.config.exchange_timeout
        self._drive(exchange, effects, now, out)

    def _drive(
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
                    wrapped = ExchangeMessage(exchange.session, exchange.range, to, message)
                    out.append(Send(exchange.peer, wrapped))
                case merkle.LoadItems(ranges=ranges):
                    items = list(self._node.replica.items(ranges))
                    queue.extend(exchange.core.items_loaded(items, now))
                case merkle.Done(report=report):
                    self._exchanges.pop((exchange.peer, exchange.session, exchange.role), None)
                    if exchange.role == "initiator":
                        self._repair(exchange, report, out)
                case merkle.Failed():
                    self._exchanges.pop((exchange.peer, exchange.session, exchange.role), None)
                case _:  # pragma: no cover - the exchange's effect union is exhaustive
                    assert_never(effect)

    # -- repair ------------------------------------------------------------------------------

    def _repair(
        self, exchange: _Exchange, report: merkle.ExchangeReport, out: list[Effect]
    ) -> None:
        """Ship the states the peer lacks and ask for the ones this node lacks."""
        node = self._node
        push = sorted({*report.remote_missing, *report.different})
        pull = sorted({*report.missing, *report.different})
        step = MAX_REPAIR_KEYS
        peer = exchange.peer
        batch: list[tuple[bytes, DVVSet[bytes]]] = []
        size = 0
        pushed = 0
        for key in push:  # batches of at most MAX_REPAIR_KEYS states and MAX_BATCH_BYTES bytes
            skey = keyspace.data_key(key, node.ring.token(key))
            raw = node.storage.get(skey)
            state = None if raw is None else node.replica.state(skey, raw)
            if raw is None or state is None:
                continue
            if batch and (len(batch) >= step or size + len(raw) > MAX_BATCH_BYTES):
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
        node.stats["keys_pushed"] += pushed
        node.stats["keys_pulled"] += len(pull)
        out.append(AntiEntropyDone(exchange.peer, exchange.range, report, pushed, len(pull)))

    def on_push(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """States a peer repairs this node with: merge those of keys it replicates."""
        node = self._node
        for key, state in cast("RepairPush", message).states:
            if node.replicates(key):
                node.absorb(key, state)  # a refusal is counted; the next round retries
            else:
                node.stats["messages_ignored"] += 1

    def on_pull(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """Keys a peer lacks: push the states this node holds."""
        replica = self._node.replica
        states = tuple(
            (key, state)
            for key in cast("RepairPull", message).keys
            if (state := replica.load(key)) is not None
        )
        if states:
            out.append(Send(sender, RepairPush(states)))

    def _check_invariants(self) -> None:
        for (peer, session, role), exchange in self._exchanges.items():
            assert (exchange.peer, exchange.session, exchange.role) == (peer, session, role)
            assert not exchange.core.finished
            exchange.core._check_invariants()
        expiries = [expires for _, expires in self._offers.values()]
        assert expiries == sorted(expiries), "offers expire in the order made"
