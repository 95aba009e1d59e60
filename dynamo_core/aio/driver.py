"""`serve`: a [`Node`][dynamo_core.node.Node] on a transport, run by the generic driver.

`serve` is [`Driver`][dynamo_core.aio.Driver] — the same loop that runs any core — plus the
transport: each inbound node message and client request becomes an input the driver feeds to
the node at once, in the transport's task (so a reply is written before the socket is read
again); the node's [`deadline`][dynamo_core.node.Node.deadline] is the driver's timer; and the
effect handler carries out what the node asks for:

* [`Send`][dynamo_core.node.Send]: encode the message and hand it to the transport;
* [`Reply`][dynamo_core.node.Reply]: answer the client connection waiting for that request;
* an admin request ([`AdminCall`][dynamo_core.aio.inbox.AdminCall]) goes to the node under a
  sender name of its own (``admin/N``), and the node's answer, a `Send` of an admin reply to
  that name, goes back on the admin's connection;
* informational effects ([`HintsDelivered`][dynamo_core.hints.HintsDelivered],
  [`HintsExpired`][dynamo_core.hints.HintsExpired],
  [`AntiEntropyDone`][dynamo_core.node.AntiEntropyDone]) are counted for `stats` and passed to
  `on_effect`; effects the driver does not know are passed on and otherwise ignored, so new node
  features need no driver change.

**Containment.** An exception from the node core while it handles one input costs that input
only: a client request gets a `RequestFailed` reply (``code="bad_request"`` for a bad argument,
``"internal_error"`` for anything else), a peer message is dropped (counted in
``peer_errors`` and logged with the peer), a failed timer pass is counted in ``timer_errors``
and retried after a short pause, a message over the frame cap is not sent (``send_errors``), an
effect the handler could not carry out (``on_effect`` raised) is counted (``effect_errors``).
The one thing that stops the node is storage that stopped working for good — a
[`StorageError`][dynamo_core.errors.StorageError] other than
[`StorageFull`][dynamo_core.errors.StorageFull] (a degraded mode the node handles) and
[`CorruptRecord`][dynamo_core.errors.CorruptRecord] (one record, quarantined or contained) —
logged as one line.

With `Driver`, it is where the node meets an event loop and a clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from functools import partial
from typing import Any, Final, Protocol, cast

from dynamo_core import admin
from dynamo_core.aio.core_driver import Driver
from dynamo_core.aio.inbox import AdminCall, ClientCall, Inbound, Inbox
from dynamo_core.aio.protocol import (
    ClientGet,
    ClientPut,
    ClientResponse,
    ClientStats,
    RequestResponse,
    StatsReply,
)
from dynamo_core.errors import CorruptRecord, StorageError, StorageFull
from dynamo_core.hints import HintsDelivered, HintsExpired
from dynamo_core.interfaces import Clock, Transport
from dynamo_core.messages import Message, RequestFailed, encode_message
from dynamo_core.node import (
    AntiEntropyDone,
    Node,
    Quarantined,
    Reply,
    Send,
    VersionRefused,
)

__all__ = ["DriverTransport", "serve"]

log = logging.getLogger("dynamo_core.aio")

_SHUTDOWN: Final = "node shutting down"
_TIMER_RETRY: Final = 0.1  # seconds before a timer pass that raised is tried again


def _fatal(exc: BaseException) -> bool:
    """Whether `exc` means the node cannot go on: its storage stopped working for good.

    A full disk may pass and a corrupt record is one record: neither stops the node.
    """
    return isinstance(exc, StorageError) and not isinstance(exc, StorageFull | CorruptRecord)


class DriverTransport(Transport, Protocol):
    """What [`serve`][dynamo_core.aio.serve] needs from a transport.

    The sending half is [`interfaces.Transport`][dynamo_core.interfaces.Transport]; this adds
    the receiving half (`inbox`), the lifecycle and counters.
    [`TcpTransport`][dynamo_core.aio.TcpTransport] is one; see
    [Writing a transport](../how-to/transport.md) for another.
    """

    inbox: Inbox

    async def start(self) -> None:
        """Start listening and connecting."""

    async def close(self) -> None:
        """Stop listening and close every connection (idempotent)."""

    def stats(self) -> dict[str, int]:
        """Counters by name."""
        ...


class _Contained:
    """The node as the generic driver's core, with its timer passes contained.

    A timer pass that raises (a node bug) is counted and retried `_TIMER_RETRY` seconds later
    instead of ending the run; storage that failed for good still raises.
    """

    __slots__ = ("_counters", "_node", "_retry_at")

    def __init__(self, node: Node, counters: dict[str, int]) -> None:
        self._node = node
        self._counters = counters
        self._retry_at = -math.inf

    def deadline(self) -> float:
        return max(self._node.deadline(), self._retry_at)

    def on_timer(self, now: float) -> list[Any]:
        try:
            return self._node.on_timer(now)
        except Exception as exc:
            if _fatal(exc):
                raise
            self._counters["timer_errors"] += 1
            if self._counters["timer_errors"] == 1 or self._counters["timer_errors"] % 1000 == 0:
                log.exception("%s: error in a timer pass", self._node.node_id)
            self._retry_at = now + _TIMER_RETRY
            return []


def _counters(node: Node, transport: DriverTransport, driver: dict[str, int]) -> dict[str, int]:
    out = dict(node.stats())
    out.update(driver)
    out["hints_pending"] = len(node.hints)
    out["busy"] = int(node.busy())
    out.update({f"transport_{k}": v for k, v in transport.stats().items()})
    return out


async def serve(  # noqa: PLR0915 - the handler and inputs, stated in one place
    node: Node,
    transport: DriverTransport,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    close_storage: bool = True,
    on_effect: Callable[[Any], None] | None = None,
    started: Callable[[], None] | None = None,
) -> None:
    """Run `node` on `transport` until `stop` is set or the task is cancelled.

    The node must want times from `clock`: construct it with ``now=clock.now()`` (the default
    clock is `time.monotonic`, the event loop's own).

    Shutdown — on `stop`, on cancellation, or on an error — answers every client request still
    waiting with a `RequestFailed`, closes the transport (stops listening, closes every
    connection) and, with `close_storage`, closes the node's storage (SQLite commits each write
    as it happens, so closing is all the flushing it needs). A cancelled `serve` re-raises
    `CancelledError` after cleaning up, as asyncio expects; a stopped one returns.

    Args:
        node: The node to run.
        transport: Where node messages and client requests come from and go to.
        clock: The time source (default `time.monotonic`). Times given to the node never go
            backwards even if the clock does.
        stop: Set it to stop the driver cleanly (the CLI sets it on SIGTERM and SIGINT).
        close_storage: Close ``node.storage`` on the way out (default True).
        on_effect: Called with every informational effect (and any effect the driver does not
            know), e.g. to log hint deliveries.
        started: Called once the transport is listening.

    Raises:
        dynamo_core.errors.StorageError: the storage failed (the node cannot go on).
        OSError: the transport could not listen.
    """
    if not isinstance(node, Node):
        raise TypeError(f"node must be a Node, not {type(node).__name__}")
    counters = {
        "client_puts": 0,
        "client_gets": 0,
        "client_replies": 0,
        "client_rejected": 0,
        "hints_delivered": 0,
        "hints_expired": 0,
        "anti_entropy_done": 0,
        "effects_other": 0,
        "peer_errors": 0,
        "client_errors": 0,
        "timer_errors": 0,
        "send_errors": 0,
        "effect_errors": 0,
        "admin_requests": 0,
        "admin_errors": 0,
    }
    pending: dict[str, tuple[Callable[[RequestResponse], None], int]] = {}
    admins: dict[str, Callable[[admin.AdminReply], None]] = {}  # admin/N -> its connection
    inbox = transport.inbox
    sequence = 0

    def send(target: str, message: Any) -> None:
        try:
            transport.send(target, encode_message(message))
        except ValueError as exc:  # over the frame cap: drop it, keep serving
            counters["send_errors"] += 1
            log.warning("%s: message to %s not sent: %s", node.node_id, target, exc)

    def inform(effect: Any) -> None:
        """Count or log an informational effect and pass it to `on_effect`."""
        match effect:
            case HintsDelivered(removed=removed):
                counters["hints_delivered"] += removed
            case HintsExpired(count=count):
                counters["hints_expired"] += count
            case AntiEntropyDone():
                counters["anti_entropy_done"] += 1
            case VersionRefused(sender=sender, version=version, reason=reason):
                log.warning(
                    "%s: ring version %s from %s refused: %s", node.node_id, version, sender, reason
                )
            case Quarantined(key=key, reason=reason):
                log.warning(
                    "%s: record of key %r quarantined (kept, not served): %s",
                    node.node_id,
                    key[:64],
                    reason,
                )
            case _:
                counters["effects_other"] += 1
                log.debug("%s: effect %r ignored", node.node_id, effect)
        if on_effect is not None:
            on_effect(effect)

    def carry_out(effect: Any) -> None:
        """The effect handler: send, answer the waiting client, or inform."""
        match effect:
            case Send(target=target, message=message) if target in admins and isinstance(
                message, admin.AdminAccepted | admin.AdminRefused | admin.RingReport
            ):
                admins.pop(target)(message)
            case Send(target=target, message=message):
                send(target, message)
            case Reply(request_id=request_id, result=result):
                waiting = pending.pop(request_id, None)
                if waiting is not None:
                    respond, rid = waiting
                    counters["client_replies"] += 1
                    respond(ClientResponse(rid, result))
            case _:
                inform(effect)

    def lost(effect: Any, exc: Exception) -> None:
        """A handler failure (``on_effect`` raised, a reply could not be written): keep serving."""
        counters["effect_errors"] += 1
        log.error("%s: effect %s not carried out: %r", node.node_id, type(effect).__name__, exc)

    def peer(event: Inbound, now: float) -> list[Any]:
        try:
            return node.receive(event.sender, event.message, now)
        except Exception as exc:  # a node bug on peer input must not take the node down
            if _fatal(exc):
                raise
            counters["peer_errors"] += 1
            log.exception("%s: error handling a message from %s", node.node_id, event.sender)
            return []

    def client(call: ClientCall, now: float) -> list[Any]:
        nonlocal sequence
        request = call.request
        if isinstance(request, ClientStats):
            stats = _counters(node, transport, counters)
            call.respond(StatsReply.of(request.rid, node.node_id, stats))
            return []
        sequence += 1
        request_id = f"c{sequence}"
        pending[request_id] = (call.respond, request.rid)
        try:
            if isinstance(request, ClientPut):
                counters["client_puts"] += 1
                return node.put(request_id, request.key, request.value, request.context, now)
            assert isinstance(request, ClientGet)
            counters["client_gets"] += 1
            return node.get(request_id, request.key, now)
        except (TypeError, ValueError) as exc:  # a bad key or context: the client's fault
            del pending[request_id]
            counters["client_rejected"] += 1
            failed = RequestFailed(f"bad request: {exc}"[:1024], code="bad_request")
            call.respond(ClientResponse(request.rid, failed))
            return []
        except Exception as exc:  # a node bug on this request: fail it, keep serving
            if _fatal(exc):
                raise
            del pending[request_id]
            counters["client_errors"] += 1
            log.exception("%s: error handling client request %s", node.node_id, request_id)
            failed = RequestFailed(f"internal error: {exc!r}"[:1024], code="internal_error")
            call.respond(ClientResponse(request.rid, failed))
            return []

    def operator(call: AdminCall, now: float) -> list[Any]:
        nonlocal sequence
        sequence += 1
        sender = f"admin/{sequence}"  # not a node id any peer can claim: peers are known ids
        admins[sender] = call.respond
        counters["admin_requests"] += 1
        try:
            effects = node.receive(sender, cast("Message", call.request), now)
        except Exception as exc:  # a node bug on this request: refuse it, keep serving
            if _fatal(exc):
                raise
            admins.pop(sender, None)
            counters["admin_errors"] += 1
            log.exception("%s: error handling an admin request", node.node_id)
            call.respond(admin.AdminRefused(call.request.rid, "bad_request", f"{exc!r}"[:1024]))
            return []
        if not any(isinstance(e, Send) and e.target == sender for e in effects):
            admins.pop(sender)  # no answer: the storage refused the write (full disk)
            reason = "the node could not record the change (storage full?): try again"
            call.respond(admin.AdminRefused(call.request.rid, "bad_request", reason))
        return effects

    def input_for(event: Inbound | ClientCall | AdminCall) -> Callable[[float], list[Any]]:
        if isinstance(event, Inbound):
            return partial(peer, event)
        if isinstance(event, AdminCall):
            return partial(operator, event)
        return partial(client, event)

    driver: Driver[Any] = Driver(_Contained(node, counters), carry_out, clock=clock, on_error=lost)
    halt = asyncio.Event()  # set by `stop`, or when storage fails for good
    fatal: list[BaseException] = []

    def handle(event: Inbound | ClientCall | AdminCall) -> None:
        """Run one event at once, in the transport's task (the inbox's handler)."""
        if fatal:
            return
        try:
            driver.feed(input_for(event))
        except BaseException as exc:
            fatal.append(exc)
            halt.set()

    stopper: asyncio.Task[None] | None = None
    try:
        inbox.handler = handle
        for event in inbox.drain():  # queued before the handler was installed
            driver.submit(input_for(event))
        await transport.start()
        if started is not None:
            started()
        if stop is not None:

            async def watch() -> None:
                await stop.wait()
                halt.set()

            stopper = asyncio.create_task(watch())
        await driver.run(stop=halt)
        if fatal:
            raise fatal[0]
    except BaseException as exc:
        if _fatal(exc):
            log.error("%s: storage failed for good, stopping: %s", node.node_id, exc)
        raise
    finally:
        inbox.handler = None
        if stopper is not None:
            stopper.cancel()
        for respond, rid in pending.values():
            respond(ClientResponse(rid, RequestFailed(_SHUTDOWN)))
        pending.clear()
        try:
            await transport.close()
        finally:
            if close_storage:
                node.storage.close()
            log.info("%s: stopped", node.node_id)
