"""Three nodes in one process over real TCP: quorum reads and writes with a node stopped, TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from dynamo_core import HashRing, MemoryStorage, Node, NodeConfig
from dynamo_core.aio import Client, ClientError, TcpTransport, TransportConfig, serve, tls_contexts

Eventually = Callable[..., Coroutine[Any, Any, None]]
IDS = ("A", "B", "C")
SECRET = b"cluster-secret-0123456789"
# Generous budgets: the suite runs on a loaded 2-core machine (TLS handshakes included).
CONFIG = NodeConfig(heartbeat_interval=0.1, request_timeout=2.0, anti_entropy_interval=0.5)
FAST = TransportConfig(connect_timeout=5.0, handshake_timeout=5.0, backoff_max=0.2)


class Cluster:
    def __init__(self, ports: dict[str, int], **transport: Any) -> None:
        self.ports = ports
        self.transport_options = transport
        ring = HashRing(3, partitions=16)
        ring.add_nodes(IDS)
        self.ring = ring
        self.storages = {i: MemoryStorage() for i in IDS}
        self.nodes: dict[str, Node] = {}
        self.boots = dict.fromkeys(IDS, 0)
        self.transports: dict[str, TcpTransport] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def address(self, node: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[node])

    def start(self, node: str) -> None:
        """Start `node` as a new incarnation on its storage (volatile state starts empty)."""
        self.nodes[node] = Node(
            node,
            self.ring,
            config=CONFIG,
            storage=self.storages[node],
            incarnation=self.boots[node],
        )
        self.boots[node] += 1
        peers = {p: self.address(p) for p in IDS if p != node}
        transport = TcpTransport(
            node, self.address(node), peers, config=FAST, seed=ord(node), **self.transport_options
        )
        self.transports[node] = transport
        self.stops[node] = asyncio.Event()
        self.tasks[node] = asyncio.create_task(
            serve(self.nodes[node], transport, stop=self.stops[node], close_storage=False)
        )

    async def stop(self, node: str) -> None:
        self.stops[node].set()
        await self.tasks.pop(node)

    async def stop_all(self) -> None:
        for node in list(self.tasks):
            await self.stop(node)

    async def connected(self, eventually: Eventually) -> None:
        """Wait until every running node is connected to, and believes up, every other one."""

        def up() -> bool:
            now = time.monotonic()
            running = [n for n in IDS if n in self.tasks]
            return all(
                self.transports[n].stats()["peers_up"] == len(running) - 1
                and all(self.nodes[n].detector.is_available(p, now) for p in running if p != n)
                for n in running
            )

        await eventually(up, what="every node connected and believed up")


def test_quorum_reads_and_writes_survive_a_stopped_node(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = Cluster({i: free_port() for i in IDS}, secret=SECRET)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, secret=SECRET, timeout=10.0, seed=0) as client:
                first = await client.put("cart:alice", b"book")
                assert len(first.acked) >= 2
                values, context = await client.get("cart:alice")
                assert values == (b"book",)
                await cluster.stop("B")
                await client.put("cart:alice", b"book+pen", context)  # W=2 with B down
                for _ in range(6):  # every node in turn, the stopped one included: retried
                    values, context = await client.get("cart:alice")
                    assert values == (b"book+pen",)
            cluster.start("B")
            await cluster.connected(eventually)

            # B catches up (hints or anti-entropy) without any client read.
            def has_update() -> bool:
                state = cluster.nodes["B"].state_of("cart:alice")
                return state is not None and state.values == [b"book+pen"]

            await eventually(has_update, what="B repaired")
            for node in IDS:
                cluster.nodes[node]._check_invariants()
        finally:
            await cluster.stop_all()

    run(main())


def test_a_client_without_the_secret_is_refused(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = Cluster({i: free_port() for i in IDS}, secret=SECRET)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, timeout=2.0) as client:
                with pytest.raises(ClientError, match="3 attempts failed") as info:
                    await client.put("k", b"v")
                assert len(info.value.failures) == 3
            async with Client(addresses, secret=b"x" * 32, timeout=2.0) as client:
                with pytest.raises(ClientError, match="does not know the cluster secret"):
                    await client.get("k")
            assert sum(t.stats()["auth_failures"] for t in cluster.transports.values()) >= 3
        finally:
            await cluster.stop_all()

    run(main())


def test_mutual_tls(
    run: Any, free_port: Callable[[], int], eventually: Eventually, certs: Path
) -> None:
    server, client_ctx = tls_contexts(certs / "node.pem", certs / "node.key", certs / "ca.pem")
    _, rogue = tls_contexts(certs / "rogue.pem", certs / "rogue.key", certs / "ca.pem")

    async def main() -> None:
        cluster = Cluster({i: free_port() for i in IDS}, server_ssl=server, client_ssl=client_ctx)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, ssl=client_ctx, timeout=10.0) as client:
                await client.put("k", b"over tls")
                assert (await client.get("k"))[0] == (b"over tls",)
            # A certificate from another CA is refused; so is plain TCP.
            async with Client(addresses, ssl=rogue, timeout=2.0) as client:
                with pytest.raises(ClientError):
                    await client.get("k")
            async with Client(addresses, timeout=2.0) as client:
                with pytest.raises(ClientError):
                    await client.get("k")
        finally:
            await cluster.stop_all()

    run(main())


def test_tls_contexts_require_certificates(certs: Path) -> None:
    server, client = tls_contexts(certs / "node.pem", certs / "node.key", certs / "ca.pem")
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert not client.check_hostname
    with pytest.raises(FileNotFoundError):
        tls_contexts(certs / "missing.pem", certs / "node.key", certs / "ca.pem")
