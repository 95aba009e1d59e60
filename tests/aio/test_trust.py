"""The trust model against real ``dynamo-core serve`` processes: the attacks of the security
review, each refused, counted, and the node still serving with nothing forged stored."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from aio.processes import serve, stop
from aio.relay import Relay
from dynamo_core import DVVSet, HashRing, codec
from dynamo_core.aio import Client, ClientError, tls_contexts
from dynamo_core.aio.auth import Challenge, Connector, FrameSeal, load_secret
from dynamo_core.aio.framing import encode_frame
from dynamo_core.cli import main
from dynamo_core.membership import GossipUpdate
from dynamo_core.messages import StoreRequest


def secret_files(tmp_path: Path) -> tuple[Path, Path]:
    nodes, clients = tmp_path / "node.secret", tmp_path / "client.secret"
    assert main(["secret", "--out", str(nodes)]) == 0
    assert main(["secret", "--out", str(clients)]) == 0
    return nodes, clients


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header, "big"))


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionError:
        return True


def _key_of_a() -> str:
    """A key node A owns in the ring `serve` builds (N=1, 8 partitions, nodes A and B)."""
    ring = HashRing(1, partitions=8)
    ring.add_nodes(["A", "B"])
    return next(k for k in (f"cart{i}" for i in range(1000)) if ring.owner(k) == "A")


KEY = _key_of_a()
FORGED = StoreRequest(1, KEY.encode(), DVVSet[bytes]().update(b"forged", "B"))
STRANGERS = GossipUpdate(None, 99, "f" * 16, (), ())  # 'a ring of strangers' (finding 1)


async def attacks(port: int, client_secret: bytes) -> None:
    """Finding 1: a holder of the client secret claims node B and sends node messages."""
    for message in (FORGED, STRANGERS):
        payload = message.to_dict()
        # As node B, proving with the client secret: the node refuses the proof.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        liar = Connector("node", "B", secret=client_secret)
        writer.write(encode_frame(liar.hello()))
        writer.write(encode_frame(liar.on_challenge(await read_frame(reader))))
        writer.write(encode_frame(codec.dumps(payload)))
        assert await closed(reader)
        writer.close()
        # As an authenticated client, sealing the node message: not a client request.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Connector("client", None, secret=client_secret)
        writer.write(encode_frame(client.hello()))
        challenge = await read_frame(reader)
        # Finding 4: the node proves nothing before the client has (no offline guessing).
        assert set(codec.loads(challenge)) == {"type", "v", "id", "nonce", "config"}  # type: ignore[arg-type]
        writer.write(encode_frame(client.on_challenge(challenge)))
        seal = client.on_proof(await read_frame(reader)).seal
        assert isinstance(seal, FrameSeal)
        writer.write(encode_frame(seal.seal(codec.dumps(payload))))
        assert await closed(reader)
        writer.close()


async def surrogate_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 'node' whose challenge names an id with a lone surrogate (finding 8)."""
    await read_frame(reader)
    raw = codec.dumps(Challenge("X", b"n" * 32).to_dict()).replace(b'"X"', b'"\\udc80"')
    writer.write(encode_frame(raw))
    await writer.drain()
    await reader.read()
    writer.close()


def test_clients_cannot_act_as_nodes_and_ids_must_be_utf8(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    nodes, clients = secret_files(tmp_path)
    keys = ["--secret-file", str(nodes), "--client-secret-file", str(clients)]
    proc = serve(tmp_path / "a", port, *keys)
    client_opts = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(clients)]
    try:
        client_secret = load_secret(clients)  # the Python API reads the CLI's file alike
        asyncio.run(attacks(port, client_secret))
        assert main(["get", KEY, "--json", *client_opts]) == 0
        assert json.loads(capsys.readouterr().out)["values"] == []  # nothing forged stored

        async def through_a_bad_node() -> None:
            bad = await asyncio.start_server(surrogate_node, "127.0.0.1", 0)
            async with bad:
                addresses = [bad.sockets[0].getsockname(), ("127.0.0.1", port)]
                for seed in (0, 1):  # the bad node first, then second
                    async with Client(addresses, secret=client_secret, seed=seed) as client:
                        assert (await client.put(KEY, b"apple")).acked == ("A",)
                async with Client(addresses[:1], secret=client_secret, timeout=5) as client:
                    with pytest.raises(ClientError, match="UTF-8"):
                        await client.put(KEY, b"pear")

        asyncio.run(through_a_bad_node())
        # The node still serves, and counted every refusal.
        assert main(["stats", *client_opts, "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_auth_failures"] == 2
        assert stats["transport_closed_malformed"] == 2
        assert stats["client_puts"] == 2
        # The node secret is not a client's: a client given it is refused.
        wrong = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(nodes)]
        assert main(["get", KEY, *wrong]) == 1
        assert "refused" in capsys.readouterr().err
    finally:
        out = stop(proc)
    assert "Traceback" not in out


def test_unauthenticated_connections_are_cheap(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 5: 300 idle connections against a node with 256 file descriptors."""
    port = free_port()
    nodes, clients = secret_files(tmp_path)
    keys = ["--secret-file", str(nodes), "--client-secret-file", str(clients)]
    proc = serve(tmp_path / "a", port, *keys, "--log-level", "info", max_files=256)
    idle: list[socket.socket] = []
    try:
        # From another loopback source address than the client's: the per-source cap is what
        # keeps them from crowding out the legitimate client.
        idle.extend(
            socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            for _ in range(300)
        )
        client_opts = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(clients)]
        assert main(["put", "k", "v", "--timeout", "10", *client_opts]) == 0
        assert "stored on A" in capsys.readouterr().out
        assert main(["stats", *client_opts, "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_refused_unauthenticated"] >= 300 - 16
    finally:
        for sock in idle:
            sock.close()
        out = stop(proc)
    assert "Traceback" not in out
    refusals = [line for line in out.splitlines() if "too many unauthenticated" in line]
    assert 1 <= len(refusals) <= 2  # throttled: one line per 10 seconds, the rest counted


def test_serve_listens_beyond_loopback_only_on_purpose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 6: no secret, no TLS, not loopback: refused unless --insecure."""
    base = ["serve", "--id", "A", "--data", str(tmp_path), "--n", "1", "--r", "1", "--w", "1"]
    assert main([*base, "--listen", "0.0.0.0:0"]) == 2
    assert "--insecure" in capsys.readouterr().err
    with socket.socket() as taken:  # --insecure passes the check; the bind then fails, so
        taken.bind(("127.0.0.1", 0))  # nothing ever listens beyond loopback in this test
        taken.listen()
        busy = taken.getsockname()[1]
        assert main([*base, "--listen", f"0.0.0.0:{busy}", "--insecure"]) == 1
    assert "cannot listen" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640])
def test_serve_refuses_a_secret_file_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    """Finding 7: group- or world-readable secret files do not load."""
    secret = tmp_path / "secret"
    assert main(["secret", "--out", str(secret)]) == 0
    os.chmod(secret, mode)
    argv = ["serve", "--id", "A", "--listen", "127.0.0.1:0", "--data", str(tmp_path)]
    assert main([*argv, "--secret-file", str(secret)]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_the_secret_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secret"]) == 0
    printed = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(printed)) == 32
    out = tmp_path / "s"
    assert main(["secret", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert load_secret(out) != bytes.fromhex(printed)
    assert main(["secret", "--out", str(out)]) == 2  # never over an existing file
    assert "cannot create" in capsys.readouterr().err


def test_two_clusters_sharing_a_secret_refuse_each_other(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 7: the cluster name is bound into every proof."""
    port = free_port()
    nodes, clients = secret_files(tmp_path)
    keys = ["--secret-file", str(nodes), "--client-secret-file", str(clients)]
    proc = serve(tmp_path / "a", port, *keys, "--cluster", "blue")
    try:
        opts = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(clients), "--timeout", "3"]
        assert main(["get", "k", *opts, "--cluster", "green"]) == 1
        capsys.readouterr()
        assert main(["get", "k", *opts, "--cluster", "blue"]) == 0
    finally:
        out = stop(proc)
    assert "cluster 'green', this node in 'blue'" in out


def tls_options(certs: Path, name: str) -> list[str]:
    return [
        *("--tls-cert", str(certs / f"{name}.pem"), "--tls-key", str(certs / f"{name}.key")),
        *("--tls-ca", str(certs / "ca.pem")),
    ]


async def claim_b(port: int, certs: Path, name: str) -> bool:
    """With `name`'s certificate, claim to be node B; whether the node closed on us."""
    context = tls_contexts(certs / f"{name}.pem", certs / f"{name}.key", certs / "ca.pem")[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(encode_frame(Connector("node", "B", secret=None).hello()))
        return await closed(reader)
    finally:
        writer.close()


def test_a_mutual_tls_cluster_binds_certificates_to_node_ids(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str], certs: Path
) -> None:
    """Finding 2: three serve processes, a certificate each; A's certificate and a client's
    both fail to pose as B at C, while the real nodes and a real client work."""
    ports = {node: free_port() for node in "ABC"}
    procs = {}
    try:
        for node in "ABC":
            peers = ",".join(f"{p}=127.0.0.1:{ports[p]}" for p in "ABC" if p != node)
            procs[node] = serve(
                tmp_path / node,
                ports[node],
                *tls_options(certs, f"node-{node}"),
                node=node,
                peers=peers,
                placement=("--n", "3", "--r", "2", "--w", "2"),
            )
        client = ["--nodes", f"127.0.0.1:{ports['C']}", *tls_options(certs, "client-ops")]
        for _ in range(50):  # until the nodes see each other
            if main(["put", "k", "v", "--timeout", "5", *client]) == 0:
                break
        assert "stored on" in capsys.readouterr().out
        for name in ("node-A", "client-ops"):
            assert asyncio.run(claim_b(ports["C"], certs, name))
        assert main(["stats", *client, "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_auth_failures"] == 2
        assert stats["transport_peers_up"] == 2  # the real A and B are still connected
        assert main(["get", "k", *client]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "v"
    finally:
        outs = {node: stop(proc) for node, proc in procs.items()}
    assert "certificate of node 'A' cannot act as node 'B'" in outs["C"]
    assert all("Traceback" not in out for out in outs.values())


def test_a_shared_cluster_file_and_nodes_that_disagree_with_it(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nodes whose configurations differ refuse each other, and both logs name the difference;
    with one cluster file, nodes and a client agree."""
    nodes, clients = secret_files(tmp_path)
    pa, pb = free_port(), free_port()
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'cluster = "carts"\nn = 2\nr = 1\nw = 2\npartitions = 8\n'
        f'[nodes]\nA = "127.0.0.1:{pa}"\nB = "127.0.0.1:{pb}"\n'
        f'[security]\nsecret_file = "{nodes.name}"\nclient_secret_file = "{clients.name}"\n'
    )
    a = serve(tmp_path / "a", pa, "--config", str(config), peers="", placement=())
    b_argv = ["--secret-file", str(nodes), "--client-secret-file", str(clients)]
    b_argv += ["--cluster", "carts"]
    outs = {}
    try:
        b = serve(tmp_path / "b", pb, *b_argv, node="B", peers=f"A=127.0.0.1:{pa}")  # N=1
        try:
            opts = ["--config", str(config), "--timeout", "3"]
            for _ in range(100):  # until both refused each other at least once
                assert main(["stats", *opts, "--nodes", f"127.0.0.1:{pa}", "--json"]) == 0
                stats = json.loads(capsys.readouterr().out)["stats"]
                if stats["transport_auth_failures"] and stats["transport_connect_failures"]:
                    break
            assert stats["transport_peers_up"] == 0
        finally:
            outs["B"] = stop(b)
        b = serve(tmp_path / "b2", pb, "--config", str(config), node="B", peers="", placement=())
        try:
            opts = ["--config", str(config), "--timeout", "5"]
            for _ in range(50):  # W=2: stored on both once both are up
                if main(["put", "k", "v", *opts]) == 0:
                    break
            assert main(["get", "k", *opts]) == 0
            assert capsys.readouterr().out.splitlines()[-2] == "v"
        finally:
            outs["B2"] = stop(b)
    finally:
        outs["A"] = stop(a)
    assert "node 'B' has another cluster configuration: n 2 here, 1 there" in outs["A"]
    assert "node 'A' has another cluster configuration: n 1 here, 2 there" in outs["B"]
    assert "has another cluster configuration" not in outs["B2"]
    # A flag that contradicts the file is a usage error.
    argv = ["serve", "--id", "A", "--data", str(tmp_path / "x"), "--config", str(config)]
    assert main([*argv, "--n", "5"]) == 2
    assert "--n 5 contradicts" in capsys.readouterr().err


def test_a_relay_without_the_secret_cannot_inject_a_client_put(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3 as reported: a relay passes a real client's handshake through to a serve
    process, then injects a ``client_put``: refused, counted, not stored."""
    port = free_port()
    nodes, clients = secret_files(tmp_path)
    proc = serve(
        tmp_path / "a", port, "--secret-file", str(nodes), "--client-secret-file", str(clients)
    )
    relay = Relay(port, "inject a client put", key=KEY.encode())

    async def through_the_relay() -> None:
        listener = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
        async with listener:
            address = listener.sockets[0].getsockname()
            async with Client([address], secret=load_secret(clients), timeout=5) as client:
                await client.stats()  # the handshake and one request pass through
                await client.stats()  # then this one, with a forged put behind it
        await relay.close()

    opts = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(clients)]
    try:
        asyncio.run(through_the_relay())
        assert relay.tampered
        assert main(["get", KEY, "--json", *opts]) == 0
        assert json.loads(capsys.readouterr().out)["values"] == []  # nothing forged stored
        assert main(["stats", *opts, "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_auth_failures"] == 1
        assert stats["client_puts"] == 0
    finally:
        stop(proc)
