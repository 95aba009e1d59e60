"""What a transport hands the driver: node messages, client and admin calls, in one queue.

A transport puts [`Inbound`][dynamo_core.aio.inbox.Inbound] (a decoded node message and its
authenticated sender), [`ClientCall`][dynamo_core.aio.inbox.ClientCall] (a client request
and how to answer it) and [`AdminCall`][dynamo_core.aio.inbox.AdminCall] (an admin request
from an authenticated admin connection) into an [`Inbox`][dynamo_core.aio.inbox.Inbox]. While
the driver runs it installs a `handler`, and `put` hands each event straight to it (no task
switch between the socket and the node); otherwise events queue, and the driver takes them
with `drain()` and sleeps in `wait()` until something arrives or its next timer is due. A
transport of your own (HTTP, gRPC, QUIC) only needs to `put` into an `Inbox` the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TypeAlias

import attrs

from dynamo_core.admin import AdminReply, AdminRequest
from dynamo_core.aio.protocol import ClientRequest, RequestResponse
from dynamo_core.messages import Message

__all__ = ["AdminCall", "ClientCall", "Event", "Inbound", "Inbox"]


@attrs.frozen
class Inbound:
    """A message from another node.

    Attributes:
        sender: The node id the transport *authenticated* for the connection the message came
            on — never a field of the message itself.
        message: The decoded message.
    """

    sender: str
    message: Message


@attrs.frozen
class ClientCall:
    """A request from a client.

    Attributes:
        request: The decoded request.
        respond: Sends the response back on the client's connection; a no-op once that
            connection is gone. Never blocks.
    """

    request: ClientRequest
    respond: Callable[[RequestResponse], None] = attrs.field(eq=False)


@attrs.frozen
class AdminCall:
    """A request from an admin connection (the transport authenticated the admin role).

    Attributes:
        request: The decoded request.
        respond: Sends the reply back on the admin's connection; a no-op once it is gone.
    """

    request: AdminRequest
    respond: Callable[[AdminReply], None] = attrs.field(eq=False)


Event: TypeAlias = Inbound | ClientCall | AdminCall
"""Everything an inbox holds."""


class Inbox:
    """A FIFO of events with an awaitable "something arrived", for one driver.

    Args:
        limit: The most events held; `put` refuses more (the transport counts and sheds them).
    """

    __slots__ = ("_event", "_items", "handler", "limit")

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._items: deque[Event] = deque()
        self._event = asyncio.Event()
        self.handler: Callable[[Event], None] | None = None
        """Set by the driver: `put` calls it with each event instead of queueing it."""

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> bool:
        """Hand `event` to the handler, or queue it and wake the driver.

        Returns:
            False (and the event is dropped) when the queue is full.
        """
        handler = self.handler
        if handler is not None:
            handler(event)
            return True
        if len(self._items) >= self.limit:
            return False
        self._items.append(event)
        self._event.set()
        return True

    def drain(self) -> list[Event]:
        """Remove and return every queued event, oldest first. Cost: O(events)."""
        items = list(self._items)
        self._items.clear()
        return items

    def interrupt(self) -> None:
        """Wake a pending `wait` without an event (the driver is asked to stop)."""
        self._event.set()

    async def wait(self, timeout: float | None) -> None:
        """Return when an event is queued, `interrupt` is called, or `timeout` seconds pass."""
        if self._items:
            return
        self._event.clear()
        if timeout is None:
            await self._event.wait()
            return
        handle = asyncio.get_running_loop().call_later(max(0.0, timeout), self._event.set)
        try:
            await self._event.wait()
        finally:
            handle.cancel()
