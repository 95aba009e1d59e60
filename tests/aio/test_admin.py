"""``dynamo-core admin`` against real ``serve`` processes: a replace, an update, and the hostile
cases of the admin role (a client, a stranger, a node connection)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aio.processes import serve, stop
from aio.test_trust import closed, read_frame, secret_files, tls_options
from dynamo_core import HashRing, codec
from dynamo_core.admin import AdminRefused, AdminRequest, reply_from_dict
from dynamo_core.aio import Client
from dynamo_core.aio.auth import (
    Acceptor,
    AuthError,
    Certified,
    Connector,
    FrameSeal,
    Peer,
    load_secret,
)
from dynamo_core.aio.framing import encode_frame
from dynamo_core.cli import main

NODES = ("a", "b", "c", "d")


def ring_of(capsys: pytest.CaptureFixture[str], *opts: str) -> dict[str, Any]:
    assert main(["admin", "ring", "--json", *opts]) == 0, capsys.readouterr().err
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def wait_for(
    capsys: pytest.CaptureFixture[str],
    via: str,
    opts: list[str],
    done: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    """Poll `admin ring` on `via` until `done(report)`: a generous wait for convergence."""
    deadline = time.monotonic() + 60
    while True:
        report = ring_of(capsys, "--via", via, *opts)
        if done(report):
            return report
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {report}"
        time.sleep(0.1)


def members(report: dict[str, Any]) -> dict[str, tuple[str | None, float, int]]:
    return {m[0]: (m[1], m[2], m[3]) for m in report["members"]}


def partitions(ring: HashRing) -> dict[str, int]:
    counts = dict.fromkeys(ring.nodes, 0)
    for _, plist in ring.segments():
        counts[plist[0]] += 1
    return counts


async def raw_admin_request(
    port: int, role: str, node: str | None, secret: bytes, request: AdminRequest | dict[str, Any]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open an authenticated connection in `role` and send `request` (or raw fields), sealed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    side = Connector(role, node, secret=secret, cluster="carts")  # type: ignore[arg-type]
    writer.write(encode_frame(side.hello()))
    writer.write(encode_frame(side.on_challenge(await read_frame(reader))))
    seal = side.on_proof(await read_frame(reader)).seal
    assert isinstance(seal, FrameSeal)
    fields = request.to_dict() if isinstance(request, AdminRequest) else request
    writer.write(encode_frame(seal.seal(codec.dumps(fields))))
    return reader, writer


async def client_refused(port: int, client_secret: bytes) -> AdminRefused:
    """The reply a client connection gets to an admin request, opened through its seal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    side = Connector("client", None, secret=client_secret, cluster="carts")
    writer.write(encode_frame(side.hello()))
    writer.write(encode_frame(side.on_challenge(await read_frame(reader))))
    seal = side.on_proof(await read_frame(reader)).seal
    assert isinstance(seal, FrameSeal)
    request = AdminRequest(7, "replace", "a", new="c")
    writer.write(encode_frame(seal.seal(codec.dumps(request.to_dict()))))
    reply = reply_from_dict(codec.loads(seal.open(await read_frame(reader))))
    writer.close()
    assert isinstance(reply, AdminRefused)
    return reply


def test_replace_update_and_the_admin_role_on_a_running_cluster(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, clients = secret_files(tmp_path)
    ports = {n: free_port() for n in NODES}
    config = tmp_path / "cluster.toml"
    listed = "".join(f'{n} = "127.0.0.1:{p}"\n' for n, p in ports.items())
    config.write_text(
        'cluster = "carts"\nn = 2\nr = 1\nw = 2\npartitions = 8\nmembers = ["a", "b", "c"]\n'
        f"[nodes]\n{listed}"
        f'[security]\nsecret_file = "{nodes.name}"\nclient_secret_file = "{clients.name}"\n'
    )
    fast = ("--config", str(config), "--gossip", "0.1", "--anti-entropy", "1")
    procs: dict[str, subprocess.Popen[str]] = {}
    outs: dict[str, str] = {}
    admin = ["--config", str(config)]
    try:
        for n in ("a", "b", "c"):
            procs[n] = serve(tmp_path / n, ports[n], *fast, node=n, peers="", placement=())
        procs["d"] = serve(
            tmp_path / "d", ports["d"], *fast, "--join", node="d", peers="", placement=()
        )
        node_secret, client_secret = load_secret(nodes), load_secret(clients)
        addresses = [("127.0.0.1", ports[n]) for n in ("a", "b", "c")]

        async def write(keys: list[str]) -> list[str]:
            acked = []
            async with Client(addresses, secret=client_secret, cluster="carts") as client:
                for key in keys:
                    try:
                        await client.put(key, key.encode())
                    except Exception:
                        continue
                    acked.append(key)
            return acked

        async def read(keys: list[str], via: str) -> dict[str, tuple[bytes, ...]]:
            where = [("127.0.0.1", ports[via])]
            async with Client(where, secret=client_secret, cluster="carts") as client:
                return {key: (await client.get(key))[0] for key in keys}

        for n in NODES:  # every node connected to every other (a generous wait, no timing)
            deadline = time.monotonic() + 60
            while True:
                at = ["--config", str(config), "--nodes", f"127.0.0.1:{ports[n]}", "--json"]
                assert main(["stats", *at]) == 0
                if json.loads(capsys.readouterr().out)["stats"]["transport_peers_up"] == 3:
                    break
                assert time.monotonic() < deadline, f"{n} never connected to every peer"
                time.sleep(0.1)
        acked = asyncio.run(write([f"cart{i}" for i in range(40)]))
        assert len(acked) >= 30
        before = HashRing(2, partitions=8)
        before.add_nodes(["a", "b", "c"])
        first = ring_of(capsys, "--via", f"127.0.0.1:{ports['a']}", *admin)
        assert first["fingerprint"] == before.fingerprint
        assert first["epoch"] == 0

        # Replace c by d: exactly c's partitions go to d, and only c's data moves.
        assert main(["admin", "replace", "c", "d", *admin]) == 0
        assert "accepted: replace c by d (change a/0/1)" in capsys.readouterr().out
        expected = before.copy()
        expected.replace("c", "d")
        for n in ("a", "b", "d"):
            report = wait_for(
                capsys,
                f"127.0.0.1:{ports[n]}",
                admin,
                lambda r: r["epoch"] == 1 and r["settled"],
                f"{n} to settle the replace",
            )
            assert report["fingerprint"] == expected.fingerprint
        assert members(report)["d"][2] == partitions(before)["c"]
        assert {m: c[2] for m, c in members(report).items()} == partitions(expected)
        wait_for(
            capsys, f"127.0.0.1:{ports['c']}", admin, lambda r: r["status"] == "left", "c to leave"
        )
        for via in ("d", "a"):
            got = asyncio.run(read(acked, via))
            assert all(got[k] == (k.encode(),) for k in acked), via

        # Update a in place: a heavier node in a zone of its own, and the transfer plan runs.
        assert (
            main(["admin", "update", "a", "--weight", "2", "--zone", "z1", *admin, "--json"]) == 0
        )
        accepted = json.loads(capsys.readouterr().out)
        assert accepted["change"].startswith("a/")
        report = wait_for(
            capsys,
            f"127.0.0.1:{ports['b']}",
            admin,
            lambda r: r["epoch"] == 2 and r["settled"],
            "the update to settle",
        )
        expected.update_node("a", weight=2.0, zone="z1")
        assert report["fingerprint"] == expected.fingerprint
        assert members(report)["a"] == ("z1", 2.0, partitions(expected)["a"])
        assert report["transfers"] > 0
        assert report["transfers_done"] == report["transfers"]
        got = asyncio.run(read(acked, "b"))
        assert all(got[k] == (k.encode(),) for k in acked)

        # Leave a: its data moves to b and d, and a reports left.
        assert main(["admin", "leave", "a", *admin]) == 0
        assert "accepted: leave a" in capsys.readouterr().out
        expected.remove_node("a")
        for n in ("b", "d"):
            report = wait_for(
                capsys,
                f"127.0.0.1:{ports[n]}",
                admin,
                lambda r: r["epoch"] == 3 and r["settled"],
                f"{n} to settle the leave",
            )
            assert report["fingerprint"] == expected.fingerprint
        wait_for(
            capsys, f"127.0.0.1:{ports['a']}", admin, lambda r: r["status"] == "left", "a to leave"
        )
        got = asyncio.run(read(acked, "d"))
        assert all(got[k] == (k.encode(),) for k in acked)

        # Refusals: one clear line and exit 1; the node keeps serving.
        via_b = ["--via", f"127.0.0.1:{ports['b']}", *admin]
        assert main(["admin", "leave", "b", *via_b]) == 1
        err = capsys.readouterr().err
        assert (
            "refused (too_few_members): removing 'b' would leave 1 members, fewer than n=2" in err
        )
        assert main(["admin", "join", "d", *via_b]) == 1
        assert "refused (already_member)" in capsys.readouterr().err
        assert main(["admin", "update", "zz", "--weight", "2", *via_b]) == 1
        assert "refused (not_member)" in capsys.readouterr().err

        # Hostile: the client secret does not open an admin connection, nor does no secret.
        as_client = ["--via", f"127.0.0.1:{ports['b']}", "--cluster", "carts", "--timeout", "3"]
        assert main(["admin", "ring", *as_client, "--secret-file", str(clients)]) == 1
        assert "no node answered" in capsys.readouterr().err
        assert main(["admin", "ring", *as_client]) == 1
        assert "no node answered" in capsys.readouterr().err
        # A client connection sending an admin request gets `forbidden`, never a change.
        refusal = asyncio.run(client_refused(ports["b"], client_secret))
        assert refusal.code == "forbidden"
        assert refusal.rid == 7

        async def node_channel() -> bool:
            request = AdminRequest(8, "replace", "b", new="c")
            reader, writer = await raw_admin_request(ports["d"], "node", "b", node_secret, request)
            try:
                return await closed(reader)
            finally:
                writer.close()

        assert asyncio.run(node_channel())  # not an admin channel: closed as malformed

        async def hostile_admin() -> bool:  # the admin role, a request no decoder accepts
            fields = {**AdminRequest(9, "update", "b", weight=2.0).to_dict(), "weight": -1.0}
            reader, writer = await raw_admin_request(ports["d"], "admin", None, node_secret, fields)
            try:
                return await closed(reader)
            finally:
                writer.close()

        assert asyncio.run(hostile_admin())  # refused at decode: closed as malformed
        after = ring_of(capsys, *via_b)
        assert after["fingerprint"] == expected.fingerprint
        assert after["pending_changes"] == 0
        stats_of = ["stats", "--config", str(config), "--json", "--nodes"]
        assert main([*stats_of, f"127.0.0.1:{ports['b']}"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_refused_admin"] == 1
        assert stats["transport_auth_failures"] >= 2
        assert main([*stats_of, f"127.0.0.1:{ports['d']}"]) == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        assert stats["transport_closed_malformed"] == 2
    finally:
        for n, proc in procs.items():
            outs[n] = stop(proc)
    for n, out in outs.items():
        assert "Traceback" not in out, n
    assert "admin request: replace c by d" in outs["a"]  # the audit line


def test_under_mutual_tls_only_an_admin_certificate_opens_an_admin_connection(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str], certs: Path
) -> None:
    port = free_port()
    proc = serve(tmp_path / "a", port, *tls_options(certs, "node-A"))
    via = ["--via", f"127.0.0.1:{port}", "--timeout", "5"]
    try:
        report = ring_of(capsys, *via, *tls_options(certs, "admin-ops"))
        assert (report["node"], report["status"]) == ("A", "member")
        for name in ("client-ops", "node-B"):  # neither a client's nor a node's certificate
            assert main(["admin", "ring", *via, *tls_options(certs, name)]) == 1
            assert "no node answered" in capsys.readouterr().err
    finally:
        out = stop(proc)
    assert "the certificate of client 'ops' cannot act as an admin" in out
    assert "Traceback" not in out


# -- the handshake of the admin role, without sockets ------------------------------------------

SECRET, CLIENT_SECRET = b"n" * 32, b"c" * 32


def handshake(
    role: str, secret: bytes | None, certified: Certified | None = None, **options: Any
) -> Peer:
    acceptor = Acceptor(
        "A",
        secret=SECRET,
        client_secret=CLIENT_SECRET,
        peers={"B"},
        certified=certified,
        **options,
    )
    side = Connector(role, None, secret=secret)  # type: ignore[arg-type]
    proof = side.on_challenge(acceptor.on_hello(side.hello()))
    mine, peer = acceptor.on_proof(proof)
    side.on_proof(mine)
    return peer


def test_an_admin_proves_the_node_secret() -> None:
    peer = handshake("admin", SECRET)
    assert (peer.role, peer.node_id, peer.authenticated) == ("admin", None, True)
    with pytest.raises(AuthError, match="does not know the admin secret"):
        handshake("admin", CLIENT_SECRET)  # the client secret is not an admin's
    with pytest.raises(AuthError, match="sent no proof"):
        handshake("admin", None)  # a stranger
    with pytest.raises(AuthError, match="admins are not accepted here"):
        handshake("admin", SECRET, allow_admin=False)


@pytest.mark.parametrize(
    ("identity", "ok"),
    [(("admin", "ops"), True), (("client", "ops"), False), (("node", "B"), False), (None, False)],
)
def test_an_admin_certificate_is_needed_under_tls(
    identity: tuple[str, str] | None, ok: bool
) -> None:
    certified = Certified(identity)  # type: ignore[arg-type]
    if ok:
        assert handshake("admin", SECRET, certified).role == "admin"
    else:
        with pytest.raises(AuthError, match="cannot act as an admin|names no"):
            handshake("admin", SECRET, certified)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["admin", "ring"], "give --via HOST:PORT"),
        (["admin", "update", "a", "--via", "127.0.0.1:1"], "must give a zone or a weight"),
        (["admin", "replace", "a", "a", "--via", "127.0.0.1:1"], "cannot replace itself"),
        (["admin", "ring", "--via", "nowhere"], "--via must be 'host:port'"),
        (["admin", "join", "x", "--via", "127.0.0.1:1", "--weight", "0"], "above 0"),
    ],
)
def test_admin_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own checks exit 2 the same way
        status = exc.code  # type: ignore[assignment]
    assert status == 2
    assert message in capsys.readouterr().err


def test_serve_join_and_members_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["serve", "--id", "a", "--listen", "127.0.0.1:0", "--data", str(tmp_path / "x")]
    base += ["--peers", "b=127.0.0.1:1,c=127.0.0.1:2", "--n", "1", "--r", "1", "--w", "1"]
    assert main([*base, "--join", "--members", "b,c"]) == 2
    assert "--join and --members exclude each other" in capsys.readouterr().err
    assert main([*base, "--members", "a,zz"]) == 2
    assert "neither --id nor a peer: ['zz']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing created by a refused start
