"""Three nodes in one process over real TCP: quorum reads and writes with a node stopped, TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from aio.serving import Serving
from dynamo_core import HashRing, MemoryStorage, Node, NodeConfig
from dynamo_core.aio import Client, ClientError, TcpTransport, TransportConfig, tls_contexts
from dynamo_core.aio.auth import Connector
from dynamo_core.aio.framing import encode_frame

Eventually = Callable[..., Coroutine[Any, Any, None]]
IDS = ("A", "B", "C")
SECRET = b"node-secret-0123456789abcdefghijk"
CLIENTS = b"client-secret-0123456789abcdefgh"
# Generous budgets: the suite runs on a loaded 2-core machine (TLS handshakes included).
CONFIG = NodeConfig(heartbeat_interval=0.1, request_timeout=2.0, anti_entropy_interval=0.5)
FAST = TransportConfig(connect_timeout=5.0, handshake_timeout=5.0, backoff_max=0.2)


def node_tls(certs: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server and client contexts of `name` (``node-A``, ``client-ops``) under the test CA."""
    return tls_contexts(certs / f"{name}.pem", certs / f"{name}.key", certs / "ca.pem")


class Cluster(Serving):
    def __init__(self, ports: dict[str, int], certs: Path | None = None, **transport: Any) -> None:
        super().__init__()
        self.ports = ports
        self.certs = certs
        self.transport_options = transport
        ring = HashRing(3, partitions=16)
        ring.add_nodes(IDS)
        self.ring = ring
        self.storages = {i: MemoryStorage() for i in IDS}
        self.boots = dict.fromkeys(IDS, 0)

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
        options = dict(self.transport_options)
        if self.certs is not None:  # every node its own certificate
            options["server_ssl"], options["client_ssl"] = node_tls(self.certs, f"node-{node}")
        transport = TcpTransport(
            node, self.address(node), peers, config=FAST, seed=ord(node), **options
        )
        self.run(node, transport, close_storage=False)

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
        cluster = Cluster({i: free_port() for i in IDS}, secret=SECRET, client_secret=CLIENTS)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, secret=CLIENTS, timeout=10.0, seed=0) as client:
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
        cluster = Cluster({i: free_port() for i in IDS}, secret=SECRET, client_secret=CLIENTS)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, timeout=2.0) as client:
                with pytest.raises(ClientError, match="3 attempts failed") as info:
                    await client.put("k", b"v")
                assert len(info.value.failures) == 3
            for wrong in (b"x" * 32, SECRET):  # a wrong secret; the node secret is not a client's
                async with Client(addresses, secret=wrong, timeout=2.0) as client:
                    with pytest.raises(ClientError, match="refused this side's proof"):
                        await client.get("k")
            assert sum(t.stats()["auth_failures"] for t in cluster.transports.values()) >= 9
        finally:
            await cluster.stop_all()

    run(main())


async def pose(port: int, ctx: ssl.SSLContext, claim: str) -> bytes:
    """Open TLS with `ctx`, claim to be node `claim`; return what the node answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        writer.write(encode_frame(Connector("node", claim, secret=None).hello()))
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def test_mutual_tls_binds_certificates_to_node_ids(
    run: Any, free_port: Callable[[], int], eventually: Eventually, certs: Path
) -> None:
    """Finding 2: three nodes, a certificate each; A's and a client's cannot pose as B."""
    _, client_ctx = node_tls(certs, "client-ops")
    _, a_ctx = node_tls(certs, "node-A")
    _, rogue = tls_contexts(
        certs / "rogue/node-A.pem", certs / "rogue/node-A.key", certs / "ca.pem"
    )

    async def main() -> None:
        cluster = Cluster({i: free_port() for i in IDS}, certs)
        try:
            for node in IDS:
                cluster.start(node)
            await cluster.connected(eventually)
            addresses = [cluster.address(n) for n in IDS]
            async with Client(addresses, ssl=client_ctx, timeout=10.0) as client:
                await client.put("k", b"over tls")
                # A put refused while the nodes' TLS links come up is retried on the next node
                # (at least once, as documented), so the write may stand as identical siblings.
                assert set((await client.get("k"))[0]) == {b"over tls"}
            c = cluster.transports["C"]
            # Inbound: A's certificate and a client's, each claiming to be B at C.
            for ctx in (a_ctx, client_ctx):
                assert await pose(cluster.ports["C"], ctx, "B") == b""
            await eventually(lambda: c.stats()["auth_failures"] == 2, what="C refusing both")
            # Outbound: B is replaced by a listener holding A's certificate that answers as B.
            await cluster.stop("B")
            impostor_ssl = node_tls(certs, "node-A")
            impostor = TcpTransport(
                "B",
                cluster.address("B"),
                {"A": cluster.address("A"), "C": cluster.address("C")},
                server_ssl=impostor_ssl[0],
                client_ssl=impostor_ssl[1],
                config=FAST,
            )
            failures = c.stats()["auth_failures"]
            async with impostor:
                await eventually(
                    lambda: c.stats()["auth_failures"] > failures, what="C refusing the impostor"
                )
                assert c.peer_state("B") != "up"
                assert impostor.stats()["frames_received"] == 0  # C told it nothing
            # A certificate from another CA is refused; so is plain TCP; both are counted.
            tls_failures = c.stats()["tls_failures"]
            async with Client([cluster.address("C")], ssl=rogue, timeout=2.0) as client:
                with pytest.raises(ClientError):
                    await client.get("k")
            async with Client([cluster.address("C")], timeout=2.0) as client:
                with pytest.raises(ClientError):
                    await client.get("k")
            await eventually(
                lambda: c.stats()["tls_failures"] >= tls_failures + 2, what="counted TLS failures"
            )
        finally:
            await cluster.stop_all()

    run(main())


def test_tls_and_secret_together_refuse_a_relay_with_a_client_certificate(
    run: Any, free_port: Callable[[], int], eventually: Eventually, certs: Path
) -> None:
    """Finding 2: A dials "B" at a relay holding only a client certificate (and no secret)."""
    relay_ctx = node_tls(certs, "client-ops")

    async def main() -> None:
        ports = {i: free_port() for i in IDS}
        cluster = Cluster(ports, certs, secret=SECRET)
        relayed: list[bytes] = []

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            relayed.append(await reader.read(65536))  # whatever A would tell "B"
            writer.close()

        server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=relay_ctx[0])
        relay_port = server.sockets[0].getsockname()[1]
        try:
            cluster.start("B")
            cluster.start("C")
            cluster.ports = {**ports, "B": relay_port}  # A is told B lives at the relay
            cluster.start("A")
            a = cluster.transports["A"]
            await eventually(lambda: a.stats()["auth_failures"] >= 2, what="A refusing the relay")
            assert a.peer_state("B") != "up"
            assert relayed and relayed == [b""] * len(relayed)  # A told the relay nothing
        finally:
            await cluster.stop_all()
            server.close()

    run(main())


def test_tls_contexts_require_certificates(certs: Path) -> None:
    server, client = node_tls(certs, "node-A")
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert not client.check_hostname
    with pytest.raises(FileNotFoundError):
        tls_contexts(certs / "missing.pem", certs / "node-A.key", certs / "ca.pem")
