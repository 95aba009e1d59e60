"""`TcpTransport`: node messages and client requests over TCP, with asyncio streams.

Each node listens on one address. For every peer it keeps **one outbound connection**, reused
for all the messages it sends that peer; replies come back on the peer's own outbound
connection (as in Cassandra's internode messaging), so each connection carries one direction.
Every connection opens with the [handshake][dynamo_core.aio.auth], then carries
[length-prefixed frames][dynamo_core.aio.framing] of codec bytes.

Sending never blocks the node: [`send`][dynamo_core.aio.TcpTransport.send] appends to a bounded
per-peer queue that a writer task flushes; when the queue is full, or the peer is down and in
backoff, the message is dropped and counted. Node messages are best effort by design — the
node's timeouts, retries, hints and anti-entropy handle loss. A broken connection is reopened
with jittered exponential backoff.

Inbound, a connection that sends a malformed, oversized or unauthenticated frame, or does not
finish its handshake in time, is closed with a logged reason (logger ``dynamo_core.aio``) and a
counter; the node never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as _ssl
from collections import deque
from collections.abc import Mapping
from typing import Final

import attrs

from dynamo_core import codec
from dynamo_core._check import check_node_id, check_positive_float, check_positive_int
from dynamo_core.aio.auth import Acceptor, AuthError, Connector, Peer, check_secret
from dynamo_core.aio.framing import (
    DEFAULT_MAX_FRAME,
    MAX_FRAME_LIMIT,
    MAX_HANDSHAKE_FRAME,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
)
from dynamo_core.aio.inbox import ClientCall, Inbound, Inbox
from dynamo_core.aio.protocol import ClientResponse, RequestResponse, request_from_dict
from dynamo_core.errors import DecodeError
from dynamo_core.messages import RequestFailed, decode_message

__all__ = ["Address", "FrameStream", "TcpTransport", "TransportConfig", "parse_address"]

log = logging.getLogger("dynamo_core.aio")

Address = tuple[str, int]
"""A ``(host, port)`` pair."""

_READ_CHUNK: Final = 256 * 1024

_STAT_NAMES: Final = (
    "auth_failures",
    "bytes_received",
    "bytes_sent",
    "client_connections",
    "client_requests",
    "closed_malformed",
    "closed_oversized",
    "closed_slow_client",
    "connect_failures",
    "connects",
    "disconnects",
    "dropped_inbox_full",
    "dropped_peer_down",
    "dropped_queue_full",
    "dropped_unknown_peer",
    "frames_received",
    "frames_sent",
    "handshake_timeouts",
    "inbound_connections",
    "shed_client_requests",
)


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Close a stream and wait until its socket is closed (aborting it after `timeout`)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, TimeoutError, _ssl.SSLError):
        writer.transport.abort()


async def dial(
    address: Address,
    connector: Connector,
    *,
    ssl: _ssl.SSLContext | None,
    connect_timeout: float,
    handshake_timeout: float,
    limit: int,
    max_frame: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameStream]:
    """Connect to `address` and run the dialling side of the handshake with `connector`.

    Returns:
        The raw reader, the writer and the frame reader over the raw reader, once the proof
        was sent.

    Raises:
        OSError, TimeoutError: the connection or the handshake failed (the socket is closed).
        AuthError: the other side's challenge did not check out.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*address, ssl=ssl, limit=limit), connect_timeout
    )
    try:
        frames = FrameStream(reader, max_frame)
        async with asyncio.timeout(handshake_timeout):
            writer.write(encode_frame(connector.hello()))
            challenge = await frames.next()
            if challenge is None:
                raise ConnectionResetError(
                    "the other side closed the connection during the handshake (wrong secret?)"
                )
            proof, _ = connector.on_challenge(challenge)
            writer.write(encode_frame(proof))
            await writer.drain()
    except BaseException:
        await close_writer(writer)
        raise
    return reader, writer, frames


def parse_address(text: object, name: str = "address") -> Address:
    """Parse ``"host:port"`` (IPv6 as ``"[::1]:7001"``) or check a ``(host, port)`` pair.

    Returns:
        ``(host, port)``.

    Raises:
        TypeError: `text` is neither a `str` nor a pair.
        ValueError: the port is missing or not in ``0 .. 65535``.
    """
    if isinstance(text, tuple) and len(text) == 2:
        host, port = text
    elif isinstance(text, str):
        host, sep, raw = text.rpartition(":")
        if not sep or not host or not raw.isdigit():
            raise ValueError(f"{name} must be 'host:port', got {text!r:.80}")
        host, port = host.strip("[]"), int(raw)
    else:
        raise TypeError(
            f"{name} must be 'host:port' or a (host, port) pair, not {type(text).__name__}"
        )
    if type(host) is not str or not host:
        raise TypeError(f"{name} host must be a non-empty str")
    if type(port) is not int or not 0 <= port <= 65535:
        raise ValueError(f"{name} port must be an int in 0..65535, got {port!r}")
    return host, port


def _positive(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_positive_float(value, attribute.name)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name)


def _frame_cap(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name, maximum=MAX_FRAME_LIMIT)


@attrs.frozen
class TransportConfig:
    """Limits and timings of a [`TcpTransport`][dynamo_core.aio.TcpTransport] (and a `Client`).

    Attributes:
        max_frame: The largest frame payload sent or accepted, in bytes (default 16 MiB).
        max_queue: Messages queued for one peer before new ones are dropped.
        max_queue_bytes: Bytes queued for one peer before new messages are dropped (with
            `max_client_buffer`, what bounds a connection's memory).
        connect_timeout: Seconds to open a TCP (and TLS) connection.
        handshake_timeout: Seconds for the three handshake frames, inbound and outbound.
        write_timeout: Seconds a peer may take to accept queued bytes before its connection
            is dropped and reopened.
        backoff_initial: The first reconnect delay, in seconds.
        backoff_max: The longest reconnect delay (delays double up to it, each with a random
            factor in ``[0.5, 1)``).
        max_inbox: Events queued for the driver before node messages are dropped and client
            requests refused (load shedding). While `serve` runs, events go to the node at
            once and TCP flow control pushes back instead; the queue holds events that arrive
            when no driver is attached.
        max_client_buffer: Bytes of responses a client may leave unread before its connection
            is closed (aborted: the unread responses are freed at once).
    """

    max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, validator=_frame_cap)
    max_queue: int = attrs.field(default=10_000, validator=_positive_int)
    max_queue_bytes: int = attrs.field(default=64 * 2**20, validator=_positive_int)
    connect_timeout: float = attrs.field(default=2.0, validator=_positive)
    handshake_timeout: float = attrs.field(default=5.0, validator=_positive)
    write_timeout: float = attrs.field(default=10.0, validator=_positive)
    backoff_initial: float = attrs.field(default=0.05, validator=_positive)
    backoff_max: float = attrs.field(default=2.0, validator=_positive)
    max_inbox: int = attrs.field(default=100_000, validator=_positive_int)
    max_client_buffer: int = attrs.field(default=64 * 2**20, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max must be at least backoff_initial={self.backoff_initial}, "
                f"got {self.backoff_max}"
            )


class FrameStream:
    """Frames read from an asyncio stream through a capped frame decoder.

    Args:
        reader: The stream.
        max_frame: The frame cap.
    """

    __slots__ = ("_decoder", "_pending", "_reader", "_step", "received")

    def __init__(self, reader: asyncio.StreamReader, max_frame: int) -> None:
        self._reader = reader
        self._decoder = FrameDecoder(max_frame)
        self._pending: deque[bytes] = deque()
        self._step: int | None = None  # frames parsed at a time (1 while the cap may change)
        self.received = 0

    async def next(self) -> bytes | None:
        """Return the next frame's payload, or `None` at a clean end of stream.

        Raises:
            FrameError: a frame is over the cap, or the stream ended inside a frame.
            ConnectionError: the connection broke.
        """
        if not self._pending and self._step is not None:  # frames already buffered
            self._pending.extend(self._decoder.feed(b"", max_frames=self._step))
        while not self._pending:
            data = await self._reader.read(_READ_CHUNK)
            if not data:
                self._decoder.close()
                return None
            self.received += len(data)
            self._pending.extend(self._decoder.feed(data, max_frames=self._step))
        return self._pending.popleft()

    def until_authenticated(self) -> None:
        """Parse one frame at a time, so frames after the handshake meet the raised cap."""
        self._step = 1

    def allow(self, max_frame: int) -> None:
        """Raise the frame cap once the connection is authenticated (it starts small)."""
        self._decoder.max_frame = max_frame
        if self._step is not None:
            self._step = None
            self._pending.extend(self._decoder.feed(b""))


class _Outbound:
    """The one outbound connection to a peer, and its queue."""

    __slots__ = (
        "address",
        "attempts",
        "broken",
        "peer",
        "queue",
        "queued_bytes",
        "state",
        "task",
        "wake",
        "writer",
    )

    def __init__(self, peer: str, address: Address) -> None:
        self.peer = peer
        self.address = address
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.state = "connecting"  # connecting | up | down (backing off: sends are dropped)
        self.wake = asyncio.Event()
        self.broken = False
        self.attempts = 0
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None


_HIGH_WATER: Final = 1 << 20  # bytes buffered in a connection before sends queue instead


class TcpTransport:
    """Node-to-node messages and client requests over TCP (optionally TLS and a cluster secret).

    Args:
        node_id: This node's id (what peers authenticate it as).
        listen: The ``(host, port)`` or ``"host:port"`` to listen on; port 0 picks a free port
            (see `address` after `start`).
        peers: Every other node: ``{node_id: (host, port)}``. Only these ids may connect as nodes.
        secret: The cluster secret (at least 16 bytes), or `None`. With a secret, both sides
            of every connection prove they know it (HMAC-SHA256 challenge-response) before any
            message flows, so a process without it can neither join, read nor write.
        server_ssl: A server-side `ssl.SSLContext` for the listening socket, or `None`.
        client_ssl: A client-side `ssl.SSLContext` for outbound connections, or `None`.
            [`tls_contexts`][dynamo_core.aio.tls_contexts] builds both for mutual TLS.
        config: Limits and timings.
        seed: Seeds the reconnect jitter (tests pass one; default: random).
        allow_clients: Whether clients may connect to this listener.

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = (
        "_address",
        "_closing",
        "_connections",
        "_handlers",
        "_out",
        "_rng",
        "_secret",
        "_server",
        "_stats",
        "allow_clients",
        "client_ssl",
        "config",
        "inbox",
        "listen",
        "node_id",
        "peers",
        "server_ssl",
    )

    def __init__(
        self,
        node_id: str,
        listen: Address | str,
        peers: Mapping[str, Address | str],
        *,
        secret: bytes | None = None,
        server_ssl: _ssl.SSLContext | None = None,
        client_ssl: _ssl.SSLContext | None = None,
        config: TransportConfig | None = None,
        seed: int | None = None,
        allow_clients: bool = True,
    ) -> None:
        self.node_id = check_node_id(node_id, "node_id")
        self.listen = parse_address(listen, "listen")
        if not isinstance(peers, Mapping):
            raise TypeError(
                f"peers must be a mapping of node id to address, not {type(peers).__name__}"
            )
        checked: dict[str, Address] = {}
        for peer in sorted(peers):
            check_node_id(peer, "peers key")
            if peer == node_id:
                raise ValueError(f"peers must not contain this node's own id {node_id!r}")
            checked[peer] = parse_address(peers[peer], f"peers[{peer!r}]")
        self.peers: dict[str, Address] = checked
        self._secret = check_secret(secret)
        for name, ctx in (("server_ssl", server_ssl), ("client_ssl", client_ssl)):
            if ctx is not None and not isinstance(ctx, _ssl.SSLContext):
                raise TypeError(
                    f"{name} must be an ssl.SSLContext or None, not {type(ctx).__name__}"
                )
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        if config is None:
            config = TransportConfig()
        elif not isinstance(config, TransportConfig):
            raise TypeError(f"config must be a TransportConfig, not {type(config).__name__}")
        self.config = config
        self.allow_clients = bool(allow_clients)
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not secrecy
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        self.inbox = Inbox(config.max_inbox)
        self._out = {peer: _Outbound(peer, addr) for peer, addr in checked.items()}
        self._server: asyncio.Server | None = None
        self._address: Address | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The address actually listened on (after `start`; port 0 resolved).

        Raises:
            RuntimeError: the transport is not started.
        """
        if self._address is None:
            raise RuntimeError("the transport is not started")
        return self._address

    async def start(self) -> None:
        """Listen, and start connecting to every peer.

        Raises:
            OSError: the listen address cannot be bound.
            RuntimeError: already started or closed.
        """
        if self._server is not None or self._closing:
            raise RuntimeError("the transport was already started")
        self._server = await asyncio.start_server(
            self._on_connection, self.listen[0], self.listen[1], ssl=self.server_ssl
        )
        sock = self._server.sockets[0].getsockname()
        self._address = (str(sock[0]), int(sock[1]))
        for out in self._out.values():
            out.task = asyncio.create_task(self._run_outbound(out), name=f"dynamo-out-{out.peer}")
        log.info("%s listening on %s:%d", self.node_id, *self._address)

    async def close(self) -> None:
        """Stop listening, close every connection and stop reconnecting. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = [out.task for out in self._out.values() if out.task is not None]
        while True:  # handlers may start while others finish: until none is left
            pending = [*tasks, *self._handlers]
            for task in pending:
                task.cancel()
            for writer in list(self._connections):
                writer.close()
            await asyncio.gather(*pending, return_exceptions=True)
            tasks = []
            if not self._handlers:
                break
        for out in self._out.values():
            out.queue.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self.inbox.interrupt()

    async def __aenter__(self) -> TcpTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -----------------------------------------------------------------------------

    def send(self, target: str, payload: bytes) -> None:
        """Queue `payload` (an encoded node message) for the node `target`. Never blocks.

        The message is dropped, and counted, when `target` is not a known peer, when its queue
        is full, when the peer is down and backing off, or when the transport is closed.

        Raises:
            TypeError: `payload` is not `bytes`.
            ValueError: `payload` is over `max_frame`.
        """
        frame = encode_frame(payload, max_frame=self.config.max_frame)
        out = self._out.get(target)
        if out is None or self._closing:
            self._stats["dropped_unknown_peer"] += 1
            return
        if out.state == "down":
            self._stats["dropped_peer_down"] += 1
            return
        writer = out.writer
        if (
            writer is not None
            and not out.queue
            and not out.broken
            and writer.transport.get_write_buffer_size() < _HIGH_WATER
        ):  # the fast path: straight into the connection's buffer, no task switch
            writer.write(frame)
            self._stats["frames_sent"] += 1
            self._stats["bytes_sent"] += len(frame)
            return
        if (
            len(out.queue) >= self.config.max_queue
            or out.queued_bytes + len(frame) > self.config.max_queue_bytes
        ):
            self._stats["dropped_queue_full"] += 1
            return
        out.queue.append(frame)
        out.queued_bytes += len(frame)
        out.wake.set()

    def peer_state(self, peer: str) -> str:
        """``"connecting"``, ``"up"`` or ``"down"`` for a known peer.

        Raises:
            KeyError: `peer` is not a known peer.
        """
        return self._out[peer].state

    def stats(self) -> dict[str, int]:
        """Counters by name (sorted), plus ``peers_up`` and ``queued``."""
        out = dict(self._stats)
        out["peers_up"] = sum(1 for o in self._out.values() if o.state == "up")
        out["queued"] = sum(len(o.queue) for o in self._out.values())
        return dict(sorted(out.items()))

    def _delay(self, attempts: int) -> float:
        base = min(self.config.backoff_max, self.config.backoff_initial * (1 << min(attempts, 30)))
        return base * (0.5 + 0.5 * self._rng.random())

    async def _connect(self, out: _Outbound) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.config
        reader, writer, _ = await dial(
            out.address,
            Connector("node", self.node_id, secret=self._secret, expect=out.peer),
            ssl=self.client_ssl,
            connect_timeout=cfg.connect_timeout,
            handshake_timeout=cfg.handshake_timeout,
            limit=_READ_CHUNK,
            max_frame=MAX_HANDSHAKE_FRAME,  # only the handshake is read on an outbound connection
        )
        return reader, writer

    async def _run_outbound(self, out: _Outbound) -> None:
        """Keep one connection to `out.peer` open and flush its queue into it."""
        while not self._closing:
            try:
                reader, writer = await self._connect(out)
            except (OSError, TimeoutError, AuthError, DecodeError) as exc:
                out.state = "down"
                out.attempts += 1
                self._stats["connect_failures"] += 1
                if isinstance(exc, AuthError | DecodeError):
                    self._stats["auth_failures"] += 1
                    log.warning("%s: handshake with %s failed: %s", self.node_id, out.peer, exc)
                else:
                    log.debug("%s: cannot reach %s: %r", self.node_id, out.peer, exc)
                dropped = len(out.queue)
                out.queue.clear()
                out.queued_bytes = 0
                self._stats["dropped_peer_down"] += dropped
                await asyncio.sleep(self._delay(out.attempts - 1))
                out.state = "connecting"
                continue
            self._stats["connects"] += 1
            if out.attempts:
                log.info(
                    "%s: connected to %s after %d failures", self.node_id, out.peer, out.attempts
                )
            out.attempts = 0
            out.state = "up"
            out.broken = False
            out.writer = writer
            self._connections.add(writer)
            watcher = asyncio.create_task(self._watch(reader, out))
            try:
                await self._flush(out, writer)
            except (OSError, TimeoutError) as exc:
                log.info("%s: connection to %s lost: %r", self.node_id, out.peer, exc)
            finally:
                out.writer = None
                watcher.cancel()
                out.state = "connecting"
                if not self._closing:
                    self._stats["disconnects"] += 1
                self._connections.discard(writer)
                await close_writer(writer)

    async def _flush(self, out: _Outbound, writer: asyncio.StreamWriter) -> None:
        timeout = self.config.write_timeout
        while not self._closing:
            if not out.queue:
                out.wake.clear()
                await out.wake.wait()
            if out.broken or writer.is_closing():
                raise ConnectionResetError(f"{out.peer} closed the connection")
            if not out.queue:
                continue
            frames = list(out.queue)
            out.queue.clear()
            out.queued_bytes = 0
            writer.writelines(frames)
            self._stats["frames_sent"] += len(frames)
            self._stats["bytes_sent"] += sum(map(len, frames))
            await asyncio.wait_for(writer.drain(), timeout)

    async def _watch(self, reader: asyncio.StreamReader, out: _Outbound) -> None:
        """Notice at once when the peer closes our outbound connection (it never writes)."""
        with contextlib.suppress(OSError):
            await reader.read(1)
        out.broken = True
        out.wake.set()

    # -- receiving ---------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._closing:  # accepted while closing: refuse
            await close_writer(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections.add(writer)
        self._stats["inbound_connections"] += 1
        where = writer.get_extra_info("peername")
        frames = FrameStream(reader, MAX_HANDSHAKE_FRAME)  # unauthenticated: small frames only
        frames.until_authenticated()
        try:
            peer = await self._accept(frames, writer)
            frames.allow(self.config.max_frame)
            if peer.role == "node":
                assert peer.node_id is not None
                await self._read_node(peer.node_id, frames)
            else:
                self._stats["client_connections"] += 1
                await self._read_client(frames, writer)
        except FrameTooLarge as exc:
            self._stats["closed_oversized"] += 1
            log.warning("%s: closing connection from %s: %s", self.node_id, where, exc)
        except FrameError as exc:
            self._stats["closed_malformed"] += 1
            log.warning("%s: closing connection from %s: %s", self.node_id, where, exc)
        except AuthError as exc:
            self._stats["auth_failures"] += 1
            log.warning("%s: refused connection from %s: %s", self.node_id, where, exc)
        except DecodeError as exc:
            self._stats["closed_malformed"] += 1
            log.warning(
                "%s: closing connection from %s: malformed frame: %s", self.node_id, where, exc
            )
        except TimeoutError:
            self._stats["handshake_timeouts"] += 1
            log.warning("%s: closing connection from %s: handshake timed out", self.node_id, where)
        except (OSError, _ssl.SSLError) as exc:
            log.debug("%s: connection from %s broke: %r", self.node_id, where, exc)
        except asyncio.CancelledError:  # close() cancels handlers; this task is ours to end
            pass
        finally:
            self._connections.discard(writer)
            self._handlers.discard(task)
            await close_writer(writer)

    async def _accept(self, frames: FrameStream, writer: asyncio.StreamWriter) -> Peer:
        acceptor = Acceptor(
            self.node_id, secret=self._secret, peers=self.peers, allow_clients=self.allow_clients
        )
        async with asyncio.timeout(self.config.handshake_timeout):
            hello = await frames.next()
            if hello is None:
                raise ConnectionResetError("closed before the handshake")
            writer.write(encode_frame(acceptor.on_hello(hello)))
            await writer.drain()
            proof = await frames.next()
            if proof is None:
                raise ConnectionResetError("closed during the handshake")
            return acceptor.on_proof(proof)

    async def _read_node(self, sender: str, frames: FrameStream) -> None:
        max_frame = self.config.max_frame
        stats = self._stats
        inbox = self.inbox
        while (payload := await frames.next()) is not None:
            message = decode_message(payload, max_bytes=max_frame)
            stats["frames_received"] += 1
            stats["bytes_received"] += len(payload) + 4
            if not inbox.put(Inbound(sender, message)):
                stats["dropped_inbox_full"] += 1

    async def _read_client(self, frames: FrameStream, writer: asyncio.StreamWriter) -> None:
        max_frame = self.config.max_frame
        limit = self.config.max_client_buffer
        stats = self._stats

        def respond(response: RequestResponse) -> None:
            if writer.is_closing():
                return
            transport = writer.transport
            if transport.get_write_buffer_size() > limit:
                stats["closed_slow_client"] += 1
                log.warning("%s: closing a client that does not read its responses", self.node_id)
                transport.abort()  # drop its unread responses now (close() would keep them)
                return
            payload = codec.dumps(response.to_dict())
            writer.write(encode_frame(payload, max_frame=max_frame))
            stats["frames_sent"] += 1
            stats["bytes_sent"] += len(payload) + 4

        while (payload := await frames.next()) is not None:
            request = request_from_dict(codec.loads(payload, max_bytes=max_frame))
            stats["client_requests"] += 1
            stats["frames_received"] += 1
            stats["bytes_received"] += len(payload) + 4
            if not self.inbox.put(ClientCall(request, respond)):
                stats["shed_client_requests"] += 1
                respond(ClientResponse(request.rid, RequestFailed("node overloaded: try another")))
