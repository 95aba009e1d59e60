"""`serve`: the asyncio driver that runs a [`Node`][dynamo_core.node.Node] on a transport.

The driver holds no protocol logic. It waits for the earliest of an inbound node message, a
client request and the node's [`deadline`][dynamo_core.node.Node.deadline]; feeds it to the
node with the current time; and carries out the effects:

* [`Send`][dynamo_core.node.Send]: encode the message and hand it to the transport;
* [`Reply`][dynamo_core.node.Reply]: answer the client connection waiting for that request;
* informational effects ([`HintsDelivered`][dynamo_core.hints.HintsDelivered],
  [`HintsExpired`][dynamo_core.hints.HintsExpired],
  [`AntiEntropyDone`][dynamo_core.node.AntiEntropyDone]) are counted for `stats` and passed to
  `on_effect`; effects the driver does not know are passed on and otherwise ignored, so new node
  features need no driver change.

**Containment.** An exception from the node core while it handles one input costs that input
only: a client request gets a `RequestFailed` reply (``code="bad_request"`` for a bad argument,
``"internal_error"`` for anything else), a peer message is dropped (counted in
``peer_errors`` and logged with the peer), a failed timer pass is counted in ``timer_errors``
and retried after a short pause, a message over the frame cap is not sent (``send_errors``).
The one thing that stops the node is storage that stopped working for good — a
[`StorageError`][dynamo_core.errors.StorageError] other than
[`StorageFull`][dynamo_core.errors.StorageFull] (a degraded mode the node handles) and
[`CorruptRecord`][dynamo_core.errors.CorruptRecord] (one record, quarantined or contained) —
logged as one line.

It is the only place in the library with an event loop and a clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from dynamo_core.aio.inbox import ClientCall, Inbound, Inbox
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
from dynamo_core.messages import RequestFailed, encode_message
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


class _MonotonicClock:
    """`time.monotonic`: the clock the event loop itself uses."""

    def now(self) -> float:
        return time.monotonic()


def _counters(node: Node, transport: DriverTransport, driver: dict[str, int]) -> dict[str, int]:
    out = dict(node.stats())
    out.update(driver)
    out["hints_pending"] = len(node.hints)
    out["busy"] = int(node.busy())
    out.update({f"transport_{k}": v for k, v in transport.stats().items()})
    return out


async def serve(  # noqa: PLR0912, PLR0915 - one loop, stated in one place
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
    source = clock if clock is not None else _MonotonicClock()
    last = [0.0]

    def now() -> float:
        t = source.now()
        t = max(t, last[0])
        last[0] = t
        return t

    driver = {
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
    }
    pending: dict[str, tuple[Callable[[RequestResponse], None], int]] = {}
    inbox = transport.inbox
    sequence = 0

    def send(target: str, message: Any) -> None:
        try:
            transport.send(target, encode_message(message))
        except ValueError as exc:  # over the frame cap: drop it, keep serving
            driver["send_errors"] += 1
            log.warning("%s: message to %s not sent: %s", node.node_id, target, exc)

    def inform(effect: Any) -> None:
        """Count or log an informational effect and pass it to `on_effect`."""
        match effect:
            case HintsDelivered(removed=removed):
                driver["hints_delivered"] += removed
            case HintsExpired(count=count):
                driver["hints_expired"] += count
            case AntiEntropyDone():
                driver["anti_entropy_done"] += 1
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
                driver["effects_other"] += 1
                log.debug("%s: effect %r ignored", node.node_id, effect)
        if on_effect is not None:
            on_effect(effect)

    def dispatch(effects: list[Any]) -> None:
        for effect in effects:
            match effect:
                case Send(target=target, message=message):
                    send(target, message)
                case Reply(request_id=request_id, result=result):
                    waiting = pending.pop(request_id, None)
                    if waiting is not None:
                        respond, rid = waiting
                        driver["client_replies"] += 1
                        respond(ClientResponse(rid, result))
                case _:
                    inform(effect)

    def client(call: ClientCall, t: float) -> None:
        nonlocal sequence
        request = call.request
        if isinstance(request, ClientStats):
            counters = _counters(node, transport, driver)
            call.respond(StatsReply.of(request.rid, node.node_id, counters))
            return
        sequence += 1
        request_id = f"c{sequence}"
        pending[request_id] = (call.respond, request.rid)
        try:
            if isinstance(request, ClientPut):
                driver["client_puts"] += 1
                effects = node.put(request_id, request.key, request.value, request.context, t)
            else:
                assert isinstance(request, ClientGet)
                driver["client_gets"] += 1
                effects = node.get(request_id, request.key, t)
        except (TypeError, ValueError) as exc:  # a bad key or context: the client's fault
            del pending[request_id]
            driver["client_rejected"] += 1
            failed = RequestFailed(f"bad request: {exc}"[:1024], code="bad_request")
            call.respond(ClientResponse(request.rid, failed))
            return
        except Exception as exc:  # a node bug on this request: fail it, keep serving
            if _fatal(exc):
                raise
            del pending[request_id]
            driver["client_errors"] += 1
            log.exception("%s: error handling client request %s", node.node_id, request_id)
            failed = RequestFailed(f"internal error: {exc!r}"[:1024], code="internal_error")
            call.respond(ClientResponse(request.rid, failed))
            return
        dispatch(effects)

    def step(events: list[Inbound | ClientCall]) -> None:
        for event in events:
            t = now()
            if isinstance(event, Inbound):
                try:
                    effects = node.receive(event.sender, event.message, t)
                except Exception as exc:  # a node bug on peer input must not take the node down
                    if _fatal(exc):
                        raise
                    driver["peer_errors"] += 1
                    log.exception(
                        "%s: error handling a message from %s", node.node_id, event.sender
                    )
                    continue
                dispatch(effects)
            else:
                client(event, t)

    planned = [0.0]  # the node time the loop sleeps until
    fatal: list[BaseException] = []
    timers_after = [0.0]  # a timer pass raised: the next one waits until then

    def timers(t: float) -> None:
        try:
            effects = node.on_timer(t)
        except Exception as exc:  # a node bug in a timer: count it, retry a little later
            if _fatal(exc):
                raise
            driver["timer_errors"] += 1
            if driver["timer_errors"] == 1 or driver["timer_errors"] % 1000 == 0:
                log.exception("%s: error in a timer pass", node.node_id)
            timers_after[0] = t + _TIMER_RETRY
            return
        dispatch(effects)

    def handle(event: Inbound | ClientCall) -> None:
        """Run one event at once, in the transport's task (the inbox's handler)."""
        if fatal:
            return
        try:
            step([event])
        except BaseException as exc:
            fatal.append(exc)
            inbox.interrupt()
            return
        if node.deadline() < planned[0]:  # the event brought a timer forward
            inbox.interrupt()

    stopper: asyncio.Task[None] | None = None
    try:
        inbox.handler = handle
        await transport.start()
        if started is not None:
            started()
        if stop is not None:

            async def watch() -> None:
                await stop.wait()
                inbox.interrupt()

            stopper = asyncio.create_task(watch())
        while stop is None or not stop.is_set():
            if fatal:
                raise fatal[0]
            step(inbox.drain())
            t = now()
            if node.deadline() <= t and t >= timers_after[0]:
                timers(t)
            if len(inbox):
                continue
            planned[0] = max(node.deadline(), timers_after[0])
            await inbox.wait(planned[0] - now())
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
