"""A transport of your own: three nodes served by `serve` over an in-process "network".

`serve` needs from a transport only an `Inbox` to fill, `start`, `close`, a non-blocking
`send(target, payload)` and `stats`. This one delivers encoded messages between transports in
the same process (a stand-in for HTTP, gRPC or a message bus), decodes them with the library's
capped decoder, and stamps each with the sender it *knows* (here: the transport that called
`send`; on a network: the identity authenticated for the connection). Client requests are put
in the inbox as `ClientCall`s with a function that answers them.

Run it: ``python examples/custom_transport.py``.
"""

from __future__ import annotations

import asyncio
import time

from dynamo_core import HashRing, Node, NodeConfig
from dynamo_core.aio import ClientCall, Inbound, Inbox, serve
from dynamo_core.aio.protocol import ClientGet, ClientPut, ClientResponse, RequestResponse
from dynamo_core.errors import DecodeError
from dynamo_core.messages import GetReply, PutReply, decode_message

MAX_MESSAGE = 1 << 20


class LocalNetwork:
    """Who is listening: node id -> transport."""

    def __init__(self) -> None:
        self.members: dict[str, LocalTransport] = {}


class LocalTransport:
    """Best-effort delivery between transports of one `LocalNetwork`."""

    def __init__(self, node_id: str, network: LocalNetwork) -> None:
        self.node_id = node_id
        self.network = network
        self.inbox = Inbox()
        self.counters = {"sent": 0, "dropped": 0, "malformed": 0}

    async def start(self) -> None:
        """Join the network."""
        self.network.members[self.node_id] = self

    async def close(self) -> None:
        """Leave the network (idempotent)."""
        self.network.members.pop(self.node_id, None)

    def send(self, target: str, payload: bytes) -> None:
        """Deliver `payload` to `target` later, or drop it; never block."""
        peer = self.network.members.get(target)
        if peer is None:  # down or unknown: drop; the node's timeouts and hints cope
            self.counters["dropped"] += 1
            return
        self.counters["sent"] += 1
        # Deliver on the next loop turn, as a network would: send() must never run the peer.
        asyncio.get_running_loop().call_soon(peer.deliver, self.node_id, payload)

    def deliver(self, sender: str, payload: bytes) -> None:
        """Decode one message and hand it to the node with its known sender."""
        try:
            message = decode_message(payload, max_bytes=MAX_MESSAGE)
        except DecodeError:  # a real transport closes the offending connection here
            self.counters["malformed"] += 1
            return
        self.inbox.put(Inbound(sender, message))  # the sender we know, never one it claims

    def stats(self) -> dict[str, int]:
        """Counters for `serve`'s stats reply."""
        return dict(self.counters)


async def call(transport: LocalTransport, request: ClientPut | ClientGet) -> RequestResponse:
    """What a client connection does: put a ClientCall in the inbox, await the answer."""
    answer: asyncio.Future[RequestResponse] = asyncio.get_running_loop().create_future()
    transport.inbox.put(ClientCall(request, answer.set_result))
    return await answer


async def main() -> None:
    network = LocalNetwork()
    ring = HashRing(3, partitions=16)
    ring.add_nodes(["a", "b", "c"])
    config = NodeConfig(heartbeat_interval=0.1, request_timeout=0.5)
    transports = {i: LocalTransport(i, network) for i in ring.nodes}
    stops = {i: asyncio.Event() for i in ring.nodes}
    tasks = [
        asyncio.create_task(
            serve(Node(i, ring, config=config, now=time.monotonic()), transports[i], stop=stops[i])
        )
        for i in ring.nodes
    ]
    await asyncio.sleep(0.3)  # a few heartbeats: every node sees the others up

    put = await call(transports["a"], ClientPut(1, b"cart:alice", b"book"))
    assert isinstance(put, ClientResponse)
    assert isinstance(put.result, PutReply)
    print("put acknowledged by", ", ".join(put.result.acked))

    stops["b"].set()  # b leaves the network; the others still reach a quorum
    await asyncio.sleep(0.05)
    got = await call(transports["c"], ClientGet(2, b"cart:alice"))
    assert isinstance(got, ClientResponse)
    assert isinstance(got.result, GetReply)
    print("read through c with b stopped:", got.result.values)
    assert got.result.values == (b"book",)
    print("a's transport:", transports["a"].stats())

    for stop in stops.values():
        stop.set()
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
