"""TcpTransport against well-behaved and hostile peers, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from aio.relay import Relay
from dynamo_core import codec
from dynamo_core.aio import Client, ClientCall, Inbound, TcpTransport, TransportConfig, tls_contexts
from dynamo_core.aio import transport as transport_module
from dynamo_core.aio.auth import Connector, FrameSeal, Proof
from dynamo_core.aio.framing import encode_frame
from dynamo_core.aio.protocol import ClientPut, ClientResponse
from dynamo_core.messages import Heartbeat, RequestFailed, encode_message

SECRET = b"k" * 32
CLIENTS = b"c" * 32
FAST = TransportConfig(
    connect_timeout=5.0,
    handshake_timeout=5.0,
    backoff_initial=0.02,
    backoff_max=0.2,
    max_frame=4096,
)
Eventually = Callable[..., Coroutine[Any, Any, None]]


def collect(transport: TcpTransport, into: list[Any], count: int = 1) -> bool:
    """Move the transport's inbox into `into`; whether it now holds `count` events."""
    into.extend(transport.inbox.drain())
    return len(into) >= count


def beat(seq: int = 1) -> bytes:
    return encode_message(Heartbeat(1, seq))


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Read until the other side closes; a reset counts as closed."""
    chunks = []
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            chunks.append(chunk)
    except ConnectionError:
        pass
    return b"".join(chunks)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header, "big"))


async def handshake(
    port: int, connector: Connector
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameSeal | None]:
    """Speak the handshake by hand; return the stream and the connection's seal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_frame(connector.hello()))
    writer.write(encode_frame(connector.on_challenge(await read_frame(reader))))
    peer = connector.on_proof(await read_frame(reader))
    return reader, writer, peer.seal


def pair(free_port: Callable[[], int], **kw: Any) -> tuple[TcpTransport, TcpTransport]:
    pa, pb = free_port(), free_port()
    a = TcpTransport("A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, config=FAST, seed=1, **kw)
    b = TcpTransport("B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, config=FAST, seed=2, **kw)
    return a, b


async def deliver(a: TcpTransport, b: TcpTransport, eventually: Eventually) -> Inbound:
    """Send heartbeats from a to b until one arrives; return it."""
    got: list[Any] = []

    def arrived() -> bool:
        got.extend(b.inbox.drain())
        if not got:
            a.send("B", beat())
        return bool(got)

    await eventually(arrived, what="a message from A at B")
    event = got[0]
    assert isinstance(event, Inbound)
    return event


def test_messages_flow_with_the_authenticated_sender(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        a, b = pair(free_port, secret=SECRET)
        async with a, b:
            event = await deliver(a, b, eventually)
            assert event.sender == "A"
            assert event.message == Heartbeat(1, 1)
            for seq in range(2, 50):
                a.send("B", beat(seq))
            received: list[Any] = []
            await eventually(lambda: collect(b, received, 48))
            assert [e.message.seq for e in received[:48]] == list(range(2, 50))  # in order
            assert a.stats()["connects"] == 1  # one connection, reused
            assert b.stats()["auth_failures"] == 0

    run(main())


def test_send_drops_and_counts_when_it_cannot_deliver(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        dead = free_port()  # nothing listens there
        t = TcpTransport("A", ("127.0.0.1", 0), {"B": ("127.0.0.1", dead)}, config=FAST, seed=3)
        async with t:
            t.send("Z", beat())
            assert t.stats()["dropped_unknown_peer"] == 1
            await eventually(lambda: t.peer_state("B") == "down", what="B marked down")
            t.send("B", beat())
            assert t.stats()["dropped_peer_down"] >= 1
            await eventually(lambda: t.stats()["connect_failures"] >= 3, what="retries")
        with pytest.raises(TypeError, match="payload"):
            t.send("B", "text")  # type: ignore[arg-type]

    run(main())


def test_a_full_queue_drops_new_messages(run: Any, eventually: Eventually) -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accepts, never answers the handshake
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = TransportConfig(max_queue=3, handshake_timeout=30.0)
        t = TcpTransport("A", ("127.0.0.1", 0), {"B": ("127.0.0.1", port)}, config=config)
        async with t, server:
            for seq in range(5):
                t.send("B", beat(seq))
            assert t.peer_state("B") == "connecting"
            assert t.stats()["dropped_queue_full"] == 2
            assert t.stats()["queued"] == 3

    run(main())


@pytest.mark.parametrize(
    ("name", "data", "counter"),
    [
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "closed_oversized"),
        ("huge length prefix", b"\x7f\xff\xff\xff" + b"x" * 100, "closed_oversized"),
        ("half a frame, then close", b"\x00\x00\x00\x40abc", "closed_malformed"),
        ("a frame that is not JSON", encode_frame(b"\x00\x01binary"), "closed_malformed"),
        ("a frame that is not a hello", encode_frame(b'{"type":"x","v":1}'), "closed_malformed"),
        ("a hello from an unknown node", None, "auth_failures"),
    ],
)
def test_hostile_connections_are_closed_and_counted(
    run: Any,
    free_port: Callable[[], int],
    eventually: Eventually,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: bytes | None,
    counter: str,
) -> None:
    async def main() -> None:
        a, b = pair(free_port)
        async with a, b:
            port = b.address[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if data is None:
                writer.write(encode_frame(Connector("node", "Mallory", secret=None).hello()))
            else:
                writer.write(data)
            if name.startswith("half"):
                writer.write_eof()
            assert await read_all(reader) == b""  # closed without a word
            writer.close()
            await eventually(lambda: b.stats()[counter] == 1, what=counter)
            assert len(b.inbox) == 0
            # The node is unharmed: a real peer still gets through.
            assert (await deliver(a, b, eventually)).sender == "A"

    with caplog.at_level(logging.WARNING, logger="dynamo_core.aio"):
        run(main())
    assert any("B: " in r.getMessage() for r in caplog.records), "the reason is logged"


def test_wrong_or_missing_secret_cannot_join_read_or_write(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        pa, pb = free_port(), free_port()
        b = TcpTransport(
            "B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, secret=SECRET, config=FAST
        )
        intruder = TcpTransport(
            "A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, secret=b"w" * 32, config=FAST
        )
        async with b, intruder:
            for seq in range(20):
                intruder.send("B", beat(seq))
                await asyncio.sleep(0.01)
            await eventually(lambda: intruder.stats()["auth_failures"] >= 1, what="refusal")
            assert intruder.stats()["connects"] == 0
            # No secret at all, speaking the handshake by hand: refused at the proof.
            reader, writer = await asyncio.open_connection("127.0.0.1", pb)
            plain = Connector("node", "A", secret=None)
            writer.write(encode_frame(plain.hello()))
            writer.write(encode_frame(plain.on_challenge(await read_frame(reader))))
            writer.write(encode_frame(beat()))
            assert await read_all(reader) == b""
            writer.close()
            # A forged proof: refused.
            reader, writer = await asyncio.open_connection("127.0.0.1", pb)
            writer.write(encode_frame(Connector("node", "A", secret=None).hello()))
            await read_frame(reader)
            writer.write(encode_frame(codec.dumps(Proof(b"\x01" * 32).to_dict())))
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["auth_failures"] >= 2, what="B's refusals")
            assert len(b.inbox) == 0  # nothing was written into the node

    run(main())


def test_a_client_cannot_pose_as_a_node(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        a, b = pair(free_port, secret=SECRET, client_secret=CLIENTS)
        async with a, b:
            # Authenticated as a client, it sends a node message: not a client request.
            reader, writer, seal = await handshake(
                b.address[1], Connector("client", None, secret=CLIENTS)
            )
            assert seal is not None
            writer.write(encode_frame(seal.seal(beat())))
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["closed_malformed"] == 1, what="closing")
            # With the client secret, it claims to be node A: refused at the proof.
            reader, writer = await asyncio.open_connection("127.0.0.1", b.address[1])
            liar = Connector("node", "A", secret=CLIENTS)
            writer.write(encode_frame(liar.hello()))
            writer.write(encode_frame(liar.on_challenge(await read_frame(reader))))
            writer.write(encode_frame(beat()))
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["auth_failures"] == 1, what="refusal")
            assert len(b.inbox) == 0
            assert (await deliver(a, b, eventually)).sender == "A"  # the real A still gets in

    run(main())


def test_a_silent_connection_times_out_in_the_handshake(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        config = TransportConfig(handshake_timeout=0.2)
        b = TcpTransport("B", ("127.0.0.1", 0), {"A": ("127.0.0.1", free_port())}, config=config)
        async with b:
            reader, writer = await asyncio.open_connection("127.0.0.1", b.address[1])
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["handshake_timeouts"] == 1, what="timeout")

    run(main())


def test_an_oversized_frame_from_a_peer_closes_only_that_connection(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        a, b = pair(free_port)
        async with a, b:
            await deliver(a, b, eventually)
            reader, writer, _ = await handshake(b.address[1], Connector("node", "A", secret=None))
            writer.write(b"\x00\x10\x00\x00")  # 1 MiB announced; the cap is 4 KiB
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["closed_oversized"] == 1, what="closing")
            a.send("B", beat(7))
            got: list[Any] = []
            await eventually(lambda: collect(b, got))
            assert got[0].message == Heartbeat(1, 7)

    run(main())


def test_reconnects_after_the_peer_restarts(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        a, b = pair(free_port, secret=SECRET)
        async with a:
            await b.start()
            await deliver(a, b, eventually)
            await b.close()
            await eventually(lambda: a.peer_state("B") != "up", what="A noticing B is gone")
            b2 = TcpTransport("B", b.listen, {"A": a.listen}, secret=SECRET, config=FAST)
            async with b2:
                assert (await deliver(a, b2, eventually)).sender == "A"
            stats = a.stats()
            assert stats["connects"] == 2
            assert stats["disconnects"] >= 1

    run(main())


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="own id"):
        TcpTransport("A", "127.0.0.1:0", {"A": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="host:port"):
        TcpTransport("A", "nowhere", {})
    with pytest.raises(ValueError, match="port"):
        TcpTransport("A", ("127.0.0.1", 70000), {})
    with pytest.raises(TypeError, match="server_ssl"):
        TcpTransport("A", "127.0.0.1:0", {}, server_ssl="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff_max"):
        TransportConfig(backoff_initial=1.0, backoff_max=0.5)
    with pytest.raises(RuntimeError, match="not started"):
        _ = TcpTransport("A", "127.0.0.1:0", {}).address


async def through_relay(
    mode: str, free_port: Callable[[], int], eventually: Eventually, **keys: Any
) -> tuple[list[int], TcpTransport]:
    """A sends heartbeats 1..30 to B through a tampering relay; return what B accepted."""
    pb = free_port()
    b = TcpTransport("B", ("127.0.0.1", pb), {"A": ("127.0.0.1", free_port())}, config=FAST, **keys)
    relay = Relay(pb, mode, sealed="secret" in keys)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    a = TcpTransport(
        "A", "127.0.0.1:0", {"B": server.sockets[0].getsockname()}, config=FAST, **keys
    )
    accepted: list[int] = []
    async with server, b, a:
        await eventually(lambda: a.peer_state("B") == "up", what="A connected through the relay")
        for seq in range(1, 31):  # all on the first connection: no reconnect in between
            a.send("B", beat(seq))

        def done() -> bool:
            for event in b.inbox.drain():
                assert isinstance(event, Inbound) and isinstance(event.message, Heartbeat)
                accepted.append(event.message.seq)
            return b.stats()["auth_failures"] >= 1 or 30 in accepted

        await eventually(done, what="the tampering refused or everything delivered")
        # The cluster carries on: A reconnects (the relay no longer tampers) and gets through.
        assert (await deliver(a, b, eventually)).sender == "A"
    await relay.close()
    return accepted, b


@pytest.mark.parametrize("mode", ["inject", "replay", "reorder", "drop", "truncate"])
def test_a_relay_without_the_secret_cannot_tamper_with_frames(
    run: Any, free_port: Callable[[], int], eventually: Eventually, mode: str
) -> None:
    """Finding 3: with the secret, every frame after the handshake is authenticated."""

    async def main() -> None:
        accepted, b = await through_relay(mode, free_port, eventually, secret=SECRET)
        assert b.stats()["auth_failures"] == 1
        assert 99 not in accepted  # nothing forged arrived
        assert accepted == sorted(set(accepted))  # no replay, no reordering
        assert accepted == list(range(1, len(accepted) + 1))  # what came before the tampering
        assert 1 <= len(accepted) <= 2

    run(main())


def test_without_a_secret_the_same_relay_injects(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    """The control: without a secret the relay's forged heartbeat is accepted (and the seal
    is what stops it above)."""

    async def main() -> None:
        accepted, b = await through_relay("inject", free_port, eventually)
        assert 99 in accepted
        assert b.stats()["auth_failures"] == 0

    run(main())


def test_a_relay_cannot_inject_a_client_put(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    """Finding 3 as reported: a relay on a client's connection injects a ``client_put``."""

    async def main() -> None:
        b = TcpTransport("B", "127.0.0.1:0", {}, config=FAST, secret=SECRET, client_secret=CLIENTS)
        async with b:
            relay = Relay(b.address[1], "inject a client put")
            server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
            async with server, Client([server.sockets[0].getsockname()], secret=CLIENTS) as client:
                calls: list[ClientCall] = []

                def answer() -> bool:
                    for event in b.inbox.drain():
                        assert isinstance(event, ClientCall)
                        calls.append(event)
                        event.respond(ClientResponse(event.request.rid, RequestFailed("test")))
                    return b.stats()["auth_failures"] == 1

                tasks = [asyncio.create_task(client.stats()) for _ in range(3)]
                await eventually(answer, what="the injected put refused")
                await asyncio.gather(*tasks, return_exceptions=True)
            await relay.close()
            assert calls and all(not isinstance(c.request, ClientPut) for c in calls)

    run(main())


def test_the_tls_handshake_is_under_the_handshake_timeout_and_failures_are_counted(
    run: Any, eventually: Eventually, certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 5: an idle TLS connection lived 60 s; failed TLS attempts were not counted."""
    server, _ = tls_contexts(certs / "node-B.pem", certs / "node-B.key", certs / "ca.pem")
    config = TransportConfig(handshake_timeout=0.3)

    async def main() -> None:
        b = TcpTransport("B", "127.0.0.1:0", {"A": "127.0.0.1:1"}, server_ssl=server, config=config)
        async with b:
            port = b.address[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # says nothing
            started = asyncio.get_running_loop().time()
            assert await read_all(reader) == b""
            assert asyncio.get_running_loop().time() - started < 3
            writer.close()
            await eventually(lambda: b.stats()["handshake_timeouts"] == 1, what="the timeout")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # speaks plain TCP
            writer.write(encode_frame(Connector("node", "A", secret=None).hello()))
            assert await read_all(reader) == b""
            writer.close()
            await eventually(lambda: b.stats()["tls_failures"] == 1, what="the TLS failure")

    with caplog.at_level(logging.WARNING, logger="dynamo_core.aio"):
        run(main())
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_refusals_are_counted_but_logged_at_most_once_per_interval(
    run: Any, free_port: Callable[[], int], eventually: Eventually, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 5: 2,000 refused handshakes wrote 2,000 warnings."""

    async def main() -> None:
        b = TcpTransport("B", "127.0.0.1:0", {"A": "127.0.0.1:1"}, config=FAST)
        async with b:
            for _ in range(40):
                reader, writer = await asyncio.open_connection("127.0.0.1", b.address[1])
                writer.write(encode_frame(Connector("node", "Mallory", secret=None).hello()))
                assert await read_all(reader) == b""
                writer.close()
            await eventually(lambda: b.stats()["auth_failures"] == 40, what="40 refusals")

    with caplog.at_level(logging.WARNING, logger="dynamo_core.aio"):
        run(main())
    lines = [r for r in caplog.records if "unknown node id" in r.getMessage()]
    assert len(lines) == 1
    assert all(r.exc_info is None for r in caplog.records)


def test_connections_mid_handshake_are_capped_per_source_and_in_total(
    run: Any, eventually: Eventually
) -> None:
    config = TransportConfig(max_unauthenticated=3, max_unauthenticated_per_host=2)

    async def main() -> None:
        b = TcpTransport("B", "127.0.0.1:0", {"A": "127.0.0.1:1"}, config=config)
        async with b:
            port = b.address[1]

            async def idle(source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))

            held = [await idle("127.0.0.2"), await idle("127.0.0.2")]
            await eventually(lambda: b.stats()["inbound_connections"] == 2, what="two pending")
            reader, writer = await idle("127.0.0.2")  # a third from the same source
            assert await read_all(reader) == b""
            writer.close()
            assert b.stats()["refused_unauthenticated"] == 1
            held.append(await idle("127.0.0.3"))  # another source: admitted (3 in total)
            await eventually(lambda: b.stats()["inbound_connections"] == 3, what="three pending")
            reader, writer = await idle("127.0.0.4")  # over the total
            assert await read_all(reader) == b""
            writer.close()
            assert b.stats()["refused_unauthenticated"] == 2
            for _, w in held:  # once they are gone, there is room again
                w.close()
            await eventually(lambda: not b._pending, what="the slots freed")
            reader, writer, _ = await handshake(port, Connector("client", None, secret=None))
            writer.close()
            assert b.stats()["refused_unauthenticated"] == 2

    run(main())


def test_accept_errors_are_counted_without_a_traceback(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 5: out of file descriptors, asyncio logged a traceback per accept attempt."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        b = TcpTransport("B", "127.0.0.1:0", {"A": "127.0.0.1:1"}, config=FAST)
        async with b:
            assert b._server is not None
            listening = b._server.sockets[0]
            for _ in range(100):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                        "socket": listening,
                    }
                )
            assert b.stats()["accept_errors"] == 100
            loop.call_exception_handler({"message": "something else"})  # passed on

    with caplog.at_level(logging.WARNING):
        run(main())
    emfile = [r for r in caplog.records if "Too many open files" in r.getMessage()]
    assert len(emfile) == 1
    assert emfile[0].exc_info is None
    assert any("something else" in r.getMessage() for r in caplog.records)


def test_an_insecure_listener_beyond_loopback_warns(
    run: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6, from Python: no secret, no TLS, beyond loopback: a warning at start."""
    monkeypatch.setattr(transport_module, "is_loopback", lambda host: False)

    async def main() -> None:
        async with TcpTransport("B", "127.0.0.1:0", {}, config=FAST):
            pass
        async with TcpTransport("C", "127.0.0.1:0", {}, config=FAST, secret=SECRET):
            pass

    with caplog.at_level(logging.WARNING, logger="dynamo_core.aio"):
        run(main())
    insecure = [r.getMessage() for r in caplog.records if "INSECURE" in r.getMessage()]
    assert len(insecure) == 1 and insecure[0].startswith("B:")


def test_the_node_and_client_secrets_must_differ() -> None:
    with pytest.raises(ValueError, match="client_secret must differ"):
        TcpTransport("B", "127.0.0.1:0", {}, secret=SECRET, client_secret=SECRET)
    with pytest.raises(ValueError, match="at least 32"):
        TcpTransport("B", "127.0.0.1:0", {}, secret=b"short" * 6)


def test_the_largest_frame_cap_still_works(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    """A sealed frame carries 32 more bytes; the wire cap never exceeds what a header holds."""
    assert transport_module.sealed_cap(2**32 - 1) == 2**32 - 1
    big = TransportConfig(max_frame=2**32 - 1, backoff_initial=0.02, backoff_max=0.2)

    async def main() -> None:
        pa, pb = free_port(), free_port()
        a = TcpTransport(
            "A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, config=big, secret=SECRET
        )
        b = TcpTransport(
            "B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, config=big, secret=SECRET
        )
        async with a, b:
            assert (await deliver(a, b, eventually)).sender == "A"

    run(main())
