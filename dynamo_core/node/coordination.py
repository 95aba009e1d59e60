"""Coordination: client puts and gets, forwarding, joint quorums, the replica side of requests.

[`Coordination`][dynamo_core.node.coordination.Coordination] forwards a client request to the
first primary it believes up when this node is not one of the key's primaries; otherwise it
coordinates: a put writes the new state locally and runs a
[`PutCoordinator`][dynamo_core.quorum.PutCoordinator] per placement (two during a ring
transition: a joint quorum), a get runs a [`GetCoordinator`][dynamo_core.quorum.GetCoordinator]
over the placement that holds all the data. It also answers other coordinators' store, fetch
and read-repair requests, and the forwarded requests of other nodes.

Its deadline is the top of a heap of the requests' deadlines (the forwards expire in the order
they were made): a timer pass touches only what is due.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final, Literal, cast

import attrs

from dynamo_core import codec
from dynamo_core.dvv import MAX_SIBLINGS, DVVSet
from dynamo_core.errors import (
    DecodeError,
    DotCollision,
    LimitExceeded,
    RemoteProtocolError,
    StorageFull,
    Unavailable,
)
from dynamo_core.messages import (
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    GetReply,
    Message,
    PutReply,
    ReadRepair,
    RequestFailed,
    RequestResult,
    StoreReply,
    StoreRequest,
)
from dynamo_core.messages.replication import _trusted
from dynamo_core.node import keyspace
from dynamo_core.node.contexts import EMPTY_CONTEXT, decode_context, encode_state_context
from dynamo_core.node.effects import Effect, Reply, Send
from dynamo_core.node.state import NodeState
from dynamo_core.quorum import (
    Complete,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    PutResult,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.ring import HashRing
from dynamo_core.vclock import VectorClock

__all__ = ["Coordination"]

Hinter = Callable[[str, bytes, DVVSet[bytes], float], bool]

_STORAGE_FULL: Final = RequestFailed(
    "storage full: this node refuses writes until a write succeeds again; try another node",
    code="storage_full",
)


def _stored_reply(op: int) -> StoreReply:
    """A replica's acknowledgement (`op` is the request's, checked when it was decoded)."""
    return _trusted(StoreReply, op, True, "")


def _failed(error: Unavailable) -> RequestFailed:
    return RequestFailed(str(error)[: codec.DEFAULT_MAX_STR], error.required, error.answered)


def _refused(error: LimitExceeded) -> RequestFailed:
    return RequestFailed(str(error)[: codec.DEFAULT_MAX_STR], code=error.limit)


class _Request:
    """A client request this node coordinates (or that was forwarded to it)."""

    __slots__ = (
        "coordinator",
        "due",
        "epoch",
        "forward",
        "joint",
        "kind",
        "local",
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
        *,
        local: bool = False,
    ) -> None:
        self.op = op
        self.kind = kind
        self.coordinator = coordinator
        self.request_id = request_id
        self.forward = forward
        self.epoch = epoch  # the ring epoch the request was placed with
        self.joint = joint  # the write of a transition: one quorum per placement
        self.local = local  # the put's state is already in this node's replica
        self.reported: set[str] = set()  # timed-out replicas already marked suspect
        self.due: float | None = None  # the deadline its heap entry holds


class _Joint:
    """A write during a ring transition: it succeeds when both placements' quorums do."""

    __slots__ = ("parts", "results")

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self.results: list[object] = []


class _Forwarded:
    """A client request this node forwarded to a primary."""

    __slots__ = ("expires", "request_id", "target")

    def __init__(self, request_id: str, target: str, expires: float) -> None:
        self.request_id = request_id
        self.target = target
        self.expires = expires


class Coordination:
    """The requests one node coordinates or forwards, and its replica side of requests."""

    __slots__ = ("_forwards", "_heap", "_hint", "_node", "_requests", "_seen_forwards")

    def __init__(self, node: NodeState, *, hint: Hinter) -> None:
        self._node = node
        self._hint = hint  # keeps a hint for a failed replica (liveness owns the hints)
        self._requests: dict[int, _Request] = {}
        self._heap: list[tuple[float, int]] = []  # (deadline, op); stale entries are skipped
        # forwards in the order made: they expire in that order (one timeout for all)
        self._forwards: dict[int, _Forwarded] = {}
        self._seen_forwards: dict[tuple[str, int], float] = {}  # (sender, fwd) -> forget at

    def busy(self) -> bool:
        """Whether requests or forwards are in progress."""
        return bool(self._requests or self._forwards)

    def _forward_timeout(self) -> float:
        config = self._node.config
        timeout = config.forward_timeout
        return 2 * config.request_timeout if timeout is None else timeout

    # -- the timer channel -------------------------------------------------------------------

    def deadline(self) -> float | None:
        """The earliest request or forward deadline. Cost: O(1) amortized."""
        heap, requests = self._heap, self._requests
        at = None
        while heap:
            due, op = heap[0]
            request = requests.get(op)
            if request is not None and request.due == due:  # `_stale`, inlined: asked per event
                at = due
                break
            heapq.heappop(heap)
        if self._forwards:
            expires = next(iter(self._forwards.values())).expires
            if at is None or expires < at:
                at = expires
        return at

    def _stale(self, due: float, op: int) -> bool:
        request = self._requests.get(op)
        return request is None or request.due != due

    def on_timer(self, now: float, out: list[Effect]) -> None:
        """Fire the requests due (in the order they were made), then expire forwards."""
        heap = self._heap
        due_ops = []
        while heap and heap[0][0] <= now:
            due, op = heapq.heappop(heap)
            if not self._stale(due, op):
                due_ops.append(op)
        for op in sorted(due_ops):
            request = self._requests[op]
            request.due = None
            self._drive(request, request.coordinator.on_timer(now), now, out)
        forwards = self._forwards
        while forwards:
            fwd, forwarded = next(iter(forwards.items()))
            if forwarded.expires > now:
                break
            del forwards[fwd]
            self._node.detector.suspect(forwarded.target, now)
            reason = f"{forwarded.target} did not answer the forwarded request in time"
            out.append(Reply(forwarded.request_id, RequestFailed(reason)))
        for origin, forget in list(self._seen_forwards.items()):
            if forget > now:
                break  # inserted in time order
            del self._seen_forwards[origin]

    # -- client requests ---------------------------------------------------------------------

    def put(  # noqa: PLR0917 - one client write
        self,
        request_id: str,
        key: bytes,
        value: bytes,
        context: bytes | None,
        clock: VectorClock | None,
        now: float,
        out: list[Effect],
    ) -> None:
        """A client write, checked by the core (see `Node.put`)."""
        node = self._node
        refusal = node.config.limits.check_value(value)
        if refusal is not None:
            node.stats["writes_refused"] += 1
            out.append(Reply(request_id, _refused(refusal)))
            return
        if not len(node.ring):
            out.append(Reply(request_id, RequestFailed("this node has not learned the ring yet")))
            return
        target = self._forward_target(key, now)
        if target is not None:
            fwd = self._track_forward(request_id, target, now)
            out.append(Send(target, Forward(fwd, "put", key, value, context)))
            return
        self._coordinate_put(key, value, clock, request_id, None, now, out)

    def get(self, request_id: str, key: bytes, now: float, out: list[Effect]) -> None:
        """A client read, checked by the core (see `Node.get`)."""
        if not len(self._node.ring):
            out.append(Reply(request_id, RequestFailed("this node has not learned the ring yet")))
            return
        target = self._forward_target(key, now)
        if target is not None:
            fwd = self._track_forward(request_id, target, now)
            out.append(Send(target, Forward(fwd, "get", key)))
            return
        self._coordinate_get(key, request_id, None, now, out)

    def _track_forward(self, request_id: str, target: str, now: float) -> int:
        """Remember a request forwarded to `target` and return its forwarding id."""
        fwd = self._node.new_id()
        self._forwards[fwd] = _Forwarded(request_id, target, now + self._forward_timeout())
        self._node.stats["requests_forwarded"] += 1
        return fwd

    def _forward_target(self, key: bytes, now: float) -> str | None:
        """The primary to forward a request to, or `None` to coordinate here."""
        node = self._node
        plist = node.ring.preference_list(key)
        if node.previous is not None:
            old = node.previous.preference_list(key)
            plist = old + tuple(n for n in plist if n not in old)
        if node.id in plist:
            return None
        return next((n for n in plist if node.detector.is_available(n, now)), None)

    def _candidates(
        self, key: bytes, now: float, ring: HashRing | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        node = self._node
        ring = node.ring if ring is None else ring
        me, detector = node.id, node.detector
        plist, walk = ring._placement(key)
        return tuple(n for n in walk if n == me or detector.is_available(n, now)), plist

    def _coordinate_put(  # noqa: PLR0917 - one write to coordinate
        self,
        key: bytes,
        value: bytes,
        context: VectorClock | None,
        request_id: str | None,
        forward: tuple[str, int] | None,
        now: float,
        out: list[Effect],
    ) -> None:
        node = self._node
        if now < node.full_until:
            self._answer(request_id, forward, _STORAGE_FULL, out)
            return
        tok = node.ring.token(key)
        segment = node.replica.segment_of(tok)
        skey = keyspace.data_key(key, tok)
        raw = node.storage.get(skey) if segment is not None else None
        local: DVVSet[bytes] | None = DVVSet() if raw is None else node.replica.state(skey, raw)
        if local is None:
            reason = "this node's record of the key is quarantined; try another node"
            self._answer(request_id, forward, RequestFailed(reason, code="quarantined"), out)
            return
        epochs = node.epochs
        before = epochs.epoch
        try:
            actor = epochs.actor_for(local.context, context)
            state = local.update(value, actor, context)
        except OverflowError as exc:  # a counter a peer replicated: refuse, never fail
            failure = RequestFailed(f"write refused: {exc}"[:1024], code="bad_request")
            self._answer(request_id, forward, failure, out)
            return
        new_raw = state.to_bytes()
        limits = node.config.limits
        refusal = limits.admit(state, new_raw)
        if refusal is not None:  # admission: nothing is written (a minted epoch was never used)
            node.stats["writes_refused"] += 1
            self._answer(request_id, forward, _refused(refusal), out)
            return
        if len(state) > limits.siblings_warning:
            node.stats["sibling_warnings"] += 1
        epoch = epochs.epoch
        extra = [(keyspace.EPOCH_KEY, node.epoch_record(epoch))] if epoch != before else []
        try:
            if segment is not None:
                node.replica.write(
                    key=key, tok=tok, s=segment, old_raw=raw, state=state, raw=new_raw, extra=extra
                )
            elif extra:
                node.storage.put(*extra[0])  # not a replica: only the new epoch is durable
        except StorageFull:
            node.storage_full(now)
            self._answer(request_id, forward, _STORAGE_FULL, out)
            return
        node.stats["puts_coordinated"] += 1
        # During a transition the write must reach a quorum in both placements (joint quorum).
        placements = [node.ring] if node.previous is None else [node.previous, node.ring]
        joint = _Joint(len(placements)) if len(placements) > 1 else None
        ring_epoch = node.membership.record.epoch
        config = node.config
        timeout = float(config.request_timeout)
        replica_timeout = config.replica_timeout
        replica_timeout = timeout / 4 if replica_timeout is None else float(replica_timeout)
        for ring in placements:
            candidates, plist = self._candidates(key, now, ring)
            coordinator = PutCoordinator._trusted(
                node.policy, key, candidates, plist, state, timeout, replica_timeout
            )
            request = _Request(
                node.new_id(),
                "put",
                coordinator,
                request_id,
                forward,
                ring_epoch,
                joint,
                local=segment is not None,
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
        node = self._node
        node.stats["gets_coordinated"] += 1
        # Until the data has moved, the previous placement's replicas hold all of it.
        candidates, plist = self._candidates(key, now, node.previous)
        coordinator: GetCoordinator[DVVSet[bytes]] = GetCoordinator._trusted(
            node.policy, key, candidates, plist, float(node.config.request_timeout)
        )
        request = _Request(node.new_id(), "get", coordinator, request_id, forward)
        self._requests[request.op] = request
        self._drive(request, coordinator.start(now), now, out)

    def _drive(  # noqa: PLR0912 - one case per coordinator effect
        self, request: _Request, effects: list[Any], now: float, out: list[Effect]
    ) -> None:
        """Carry out a coordinator's effects; requests to this node are answered in place.

        A store to this node of a put whose state it already wrote is acknowledged at once:
        the local write is the replica's write (no second merge, no message to itself).
        """
        node = self._node
        me = node.id
        coordinator: Any = request.coordinator  # a put's or a get's, as `request.kind` says
        queue = effects  # the coordinator's new list; grows with this node's own answers
        i = 0
        while i < len(queue):
            effect = queue[i]
            i += 1
            kind = type(effect)  # dispatched by exact type: this loop runs for every reply
            if kind is SendStore:
                target, key, hint = effect.target, effect.key, effect.hint
                if target != me:
                    store = _trusted(
                        StoreRequest, request.op, key, effect.state, hint, request.epoch
                    )
                    out.append(Send(target, store))
                    continue
                reply: Stored | Refused = Stored()
                if not (request.local and (hint is None or hint == me)):
                    stored, reason = self._apply_store(key, effect.state, hint, now)
                    reply = Stored() if stored else Refused(reason)
                queue.extend(coordinator.receive(target, reply, now))
            elif kind is SendFetch:
                target = effect.target
                if target == me:
                    found = self._local_fetch(effect.key, effect.hint)
                    queue.extend(coordinator.receive(target, Fetched(found), now))
                else:
                    fetch = _trusted(FetchRequest, request.op, effect.key, effect.hint)
                    out.append(Send(target, fetch))
            elif kind is SendRepair:
                if effect.target == me:
                    self._apply_store(effect.key, effect.state, effect.hint, now)
                else:
                    out.append(
                        Send(effect.target, ReadRepair(effect.key, effect.state, effect.hint))
                    )
            elif kind is Complete:
                self._complete(request, effect.result, out)
            else:  # pragma: no cover - the coordinators' effect unions are exhaustive
                raise AssertionError(f"unexpected coordinator effect {effect!r}")
        if coordinator._timeouts != len(request.reported):  # a replica timed out: suspect it
            for n in coordinator.timed_out:
                if n not in request.reported:
                    request.reported.add(n)
                    node.detector.suspect(n, now)
        due = coordinator.deadline()
        if due is None:  # closed
            self._requests.pop(request.op, None)
        elif due != request.due:
            request.due = due
            heapq.heappush(self._heap, (due, request.op))

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
        elif isinstance(result, PutResult):  # the coordinator's node ids: from the ring
            outcome = _trusted(PutReply, result.acked, result.hinted)
        else:
            found = cast("GetResult[DVVSet[bytes]]", result).state
            if found is None:
                outcome = GetReply((), EMPTY_CONTEXT, found=False)
            else:
                values = tuple(found.values)  # each within a stored record's cap
                context = encode_state_context(found)
                outcome = (
                    _trusted(GetReply, values, context, True)
                    if len(values) <= MAX_SIBLINGS  # a merge may hold more: the check refuses
                    else GetReply(values, context)
                )
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

    # -- replies to this node's requests -----------------------------------------------------

    def on_store_reply(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A replica's answer to a store of a put this node coordinates."""
        reply: StoreReply = message  # type: ignore[assignment] # dispatched by type
        answer = Stored() if reply.stored else Refused(reply.reason)
        self._replied(sender, reply.op, "put", answer, now, out)

    def on_fetch_reply(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A replica's answer to a fetch of a get this node coordinates."""
        reply: FetchReply = message  # type: ignore[assignment] # dispatched by type
        self._replied(sender, reply.op, "get", Fetched(reply.state), now, out)

    def _replied(  # noqa: PLR0917 - one reply to route
        self,
        sender: str,
        op: int,
        kind: Literal["put", "get"],
        answer: Stored | Refused | Fetched[DVVSet[bytes]],
        now: float,
        out: list[Effect],
    ) -> None:
        request = self._requests.get(op)
        if request is None or request.kind != kind:
            self._node.stats["messages_ignored"] += 1
            return
        coordinator: Any = request.coordinator
        try:
            effects = coordinator.receive(sender, answer, now)
        except RemoteProtocolError:  # a duplicate, or a reply from a node never asked
            self._node.stats["messages_ignored"] += 1
            return
        self._drive(request, effects, now, out)

    def on_forward_reply(
        self, sender: str, message: Message, now: float, out: list[Effect]
    ) -> None:
        """The outcome of a request this node forwarded: reply to its client."""
        reply: ForwardReply = message  # type: ignore[assignment] # dispatched by type
        forwarded = self._forwards.get(reply.fwd)
        if forwarded is None or forwarded.target != sender:
            self._node.stats["messages_ignored"] += 1
        else:
            del self._forwards[reply.fwd]
            out.append(Reply(forwarded.request_id, reply.result))

    # -- other nodes' requests ---------------------------------------------------------------

    def on_forward(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A request another node forwarded: coordinate it once (duplicates are ignored)."""
        forward: Forward = message  # type: ignore[assignment] # dispatched by type
        origin = (sender, forward.fwd)
        if origin in self._seen_forwards:  # a duplicate: coordinating twice would write twice
            self._node.stats["messages_ignored"] += 1
            return
        self._seen_forwards[origin] = now + 2 * self._forward_timeout()
        if forward.kind == "get":
            self._coordinate_get(forward.key, None, origin, now, out)
            return
        assert forward.value is not None  # Forward's validator
        refusal = self._node.config.limits.check_value(forward.value)
        if refusal is not None:
            self._node.stats["writes_refused"] += 1
            out.append(Send(sender, ForwardReply(forward.fwd, _refused(refusal))))
            return
        try:
            clock = None if forward.context is None else decode_context(forward.context)
        except DecodeError as exc:
            reason = f"bad context: {exc}"[: codec.DEFAULT_MAX_STR]
            out.append(Send(sender, ForwardReply(forward.fwd, RequestFailed(reason))))
            return
        self._coordinate_put(forward.key, forward.value, clock, None, origin, now, out)

    def on_store(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A replica write, fenced by ring epoch: a store placed with an older ring is refused."""
        store: StoreRequest = message  # type: ignore[assignment] # dispatched by type
        node = self._node
        m = node.membership
        epoch = m.record.epoch
        if not m.outside and store.epoch < epoch:
            node.stats["stores_refused_stale"] += 1
            out.append(Send(sender, StoreReply(store.op, False, "stale ring epoch")))
            out.append(Send(sender, m.digest()))
            return
        try:
            stored, reason = self._apply_store(store.key, store.state, store.hint, now)
        except StorageFull:
            node.storage_full(now)
            stored, reason = False, "storage full"
        reply = _stored_reply(store.op) if stored else StoreReply(store.op, stored, reason)
        out.append(Send(sender, reply))
        if store.epoch > epoch or m.outside:
            out.append(Send(sender, m.digest()))  # the coordinator knows a newer version

    def on_fetch(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A coordinator reads this replica's state (or a hint it keeps)."""
        fetch: FetchRequest = message  # type: ignore[assignment] # dispatched by type
        found = self._local_fetch(fetch.key, fetch.hint)
        out.append(Send(sender, _trusted(FetchReply, fetch.op, found)))

    def on_read_repair(self, sender: str, message: Message, now: float, out: list[Effect]) -> None:
        """A coordinator repairs this replica after a read."""
        repair: ReadRepair = message  # type: ignore[assignment] # dispatched by type
        self._node.stats["read_repairs"] += 1
        self._apply_store(repair.key, repair.state, repair.hint, now)

    def _apply_store(
        self, key: bytes, state: DVVSet[bytes], hint: str | None, now: float
    ) -> tuple[bool, str]:
        """Store a replica state, or keep it as a hint for `hint`; return (stored, reason)."""
        node = self._node
        if hint is None or hint == node.id:
            tok = node.ring.token(key)
            segment = node.replica.segment_of(tok)
            if segment is None:
                node.stats["messages_ignored"] += 1
                return False, "not a replica of this key"
            try:
                reason = node.replica.merge_at(key, tok, segment, state)
            except DotCollision as exc:  # a writer identity reused: refuse, keep ours
                node.stats["dot_collisions"] += 1
                return False, str(exc)
            return reason is None, reason or ""
        if hint not in node.ring and (node.previous is None or hint not in node.previous):
            node.stats["messages_ignored"] += 1
            return False, f"{hint} is not a member of the ring"
        if self._hint(hint, key, state, now):
            node.stats["hints_stored"] += 1
            return True, ""
        node.stats["hints_dropped"] += 1
        return False, f"hint for {hint} dropped (cap or window)"

    def _local_fetch(self, key: bytes, hint: str | None) -> DVVSet[bytes] | None:
        node = self._node
        if hint is None or hint == node.id:
            return node.replica.load(key)
        held = node.hints.get(hint, key)
        return None if held is None else held.state

    def _check_invariants(self) -> None:
        for op, request in self._requests.items():
            request.coordinator._check_invariants()
            due = request.coordinator.deadline()
            assert due is not None, "a closed request is kept"
            assert request.due == due, "a request's heap entry is stale"
            assert (due, op) in self._heap
        expiries = [f.expires for f in self._forwards.values()]
        assert expiries == sorted(expiries), "forwards expire in the order made"
