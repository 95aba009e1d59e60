"""In-process nodes served over TCP for the runtime tests: start, stop and stop them all."""

from __future__ import annotations

import asyncio
from typing import Any

from dynamo_core import Node
from dynamo_core.aio import TcpTransport, serve


class Serving:
    """The running half of an in-process test cluster: one `serve` task per node."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.transports: dict[str, TcpTransport] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def run(self, node: str, transport: TcpTransport, **options: Any) -> None:
        """Serve `self.nodes[node]` over `transport` until `stop(node)`."""
        self.transports[node] = transport
        self.stops[node] = asyncio.Event()
        self.tasks[node] = asyncio.create_task(
            serve(self.nodes[node], transport, stop=self.stops[node], **options)
        )

    async def stop(self, node: str) -> None:
        self.stops[node].set()
        await self.tasks.pop(node)

    async def stop_all(self) -> None:
        for node in list(self.tasks):
            await self.stop(node)
