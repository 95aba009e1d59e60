"""`TcpTransport`: node messages and client requests over TCP, with asyncio streams.

Each node listens on one address. For every peer it keeps **one outbound connection**, reused
for all the messages it sends that peer; replies come back on the peer's own outbound
connection (as in Cassandra's internode messaging), so each connection carries one direction.
Every connection opens with the [handshake][dynamo_core.aio.auth], then carries
[length-prefixed frames][dynamo_core.aio.framing] of codec bytes.

Sending never blocks the node: [`send`][dynamo_core.aio.TcpTransport.send] appends to a bounded
per-peer queue; when the queue is full, or the peer is down and in backoff, the message is
dropped and counted. Node messages are best effort by design — the node's timeouts, retries,
hints and anti-entropy handle loss. The messages (and client responses) made while handling
one read's frames are [written together][dynamo_core.aio.coalesce], one write per connection,
in order, once those frames are handled; a peer that reads too slowly (over 1 MiB unsent) is
written to by its connection's task after the buffer drained, within `write_timeout`. A broken
connection is reopened with jittered exponential backoff.

Inbound, a connection that sends a malformed, oversized or unauthenticated frame, or does not
finish its TLS and application handshakes within `handshake_timeout`, is closed with a reason
logged (logger ``dynamo_core.aio``, at most one line per reason every 10 seconds) and a
counter; the node never sees it. Connections that have not finished their handshake are capped,
in total and per source address: beyond the caps a new connection is closed at once, so
strangers cost a socket for a moment, not the node's file descriptors. With a secret, every
frame after the handshake is [sealed][dynamo_core.aio.auth.FrameSeal].

Each connection is read in the role its handshake authenticated: a node connection as node
messages, a client connection as client requests, an admin connection as
[admin requests][dynamo_core.admin]. An admin request on a client connection is answered with
a ``forbidden`` refusal and counted (``refused_admin``); on a node connection it is not a node
message, and the connection is closed as malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import ssl as _ssl
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final

import attrs

from dynamo_core import admin, codec
from dynamo_core._check import (
    check_bytes,
    check_node_id,
    check_positive_float,
    check_positive_int,
)
from dynamo_core.aio.auth import (
    DEFAULT_CLUSTER,
    NONCE_SIZE,
    TAG_SIZE,
    Acceptor,
    AuthError,
    Certified,
    ConfigMismatch,
    ConfigSummary,
    Connector,
    FrameSeal,
    Hello,
    Peer,
    check_secret,
)
from dynamo_core.aio.coalesce import Coalescer, FrameBatch
from dynamo_core.aio.framing import (
    DEFAULT_MAX_FRAME,
    MAX_FRAME_LIMIT,
    MAX_HANDSHAKE_FRAME,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
)
from dynamo_core.aio.inbox import AdminCall, ClientCall, Inbound, Inbox
from dynamo_core.aio.protocol import ClientResponse, RequestResponse, request_from_dict
from dynamo_core.aio.tls import certified
from dynamo_core.errors import DecodeError
from dynamo_core.messages import RequestFailed, decode_message

__all__ = ["Address", "FrameStream", "TcpTransport", "TransportConfig", "parse_address"]

log = logging.getLogger("dynamo_core.aio")

Address = tuple[str, int]
"""A ``(host, port)`` pair."""

_READ_CHUNK: Final = 256 * 1024

_STAT_NAMES: Final = (
    "accept_errors",
    "admin_connections",
    "admin_requests",
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
    "refused_admin",
    "refused_unauthenticated",
    "shed_client_requests",
    "tls_failures",
)

_LOG_INTERVAL: Final = 10.0  # seconds between two log lines for the same kind of refusal
_ACCEPT_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Throttle:
    """Log at most one warning per reason every `_LOG_INTERVAL` seconds; count the rest."""

    __slots__ = ("_next", "_suppressed")

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(reason, 0.0):
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._next[reason] = now + _LOG_INTERVAL
        suppressed = self._suppressed.pop(reason, 0)
        if suppressed:
            message += " (and %d more like it since the last report)"
            args = (*args, suppressed)
        log.warning(message, *args)


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Close a stream and wait until its socket is closed (aborting it after `timeout`)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, TimeoutError, _ssl.SSLError):
        writer.transport.abort()


async def dial(
    address: Address,
    connector: Callable[[Certified | None], Connector],
    *,
    ssl: _ssl.SSLContext | None,
    connect_timeout: float,
    handshake_timeout: float,
    limit: int,
    max_frame: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameStream, Peer]:
    """Connect to `address` and run the dialling side of the TLS and application handshakes.

    Args:
        address: Where to connect.
        connector: Makes the handshake's connecting side from what TLS established (`None`
            without TLS).
        ssl: A client context for TLS, or `None`.
        connect_timeout: Seconds to open the TCP connection.
        handshake_timeout: Seconds for the TLS handshake and the four handshake frames.
        limit: The stream buffer limit.
        max_frame: The frame cap of the frames read.

    Returns:
        The raw reader, the writer, the frame reader over the raw reader and the acceptor.

    Raises:
        OSError, TimeoutError: the connection or a handshake failed (the socket is closed).
        AuthError: the other side did not check out.
        dynamo_core.errors.DecodeError: the other side sent a malformed handshake frame.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*address, limit=limit), connect_timeout
    )
    try:
        frames = FrameStream(reader, sealed_cap(max_frame))
        async with asyncio.timeout(handshake_timeout):
            tls = None
            if ssl is not None:
                await writer.start_tls(
                    ssl, server_hostname=address[0] if ssl.check_hostname else None
                )
                tls = certified(writer.get_extra_info("ssl_object"))
            side = connector(tls)
            writer.write(encode_frame(side.hello()))
            challenge = await frames.next()
            if challenge is None:
                raise ConnectionResetError(
                    "the other side closed the connection during the handshake "
                    "(refused: wrong cluster, id, role, certificate or secret? see its log)"
                )
            writer.write(encode_frame(side.on_challenge(challenge)))
            proof = await frames.next()
            if proof is None:
                raise ConnectionResetError(
                    "the other side refused this side's proof (wrong secret? see its log)"
                )
            peer = side.on_proof(proof)
    except BaseException:
        await close_writer(writer)
        raise
    return reader, writer, frames, peer


def sealed_cap(max_frame: int) -> int:
    """The frame cap on the wire for payloads of at most `max_frame`: room for a frame's tag."""
    return min(max_frame + TAG_SIZE, MAX_FRAME_LIMIT)


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
        max_unauthenticated: Inbound connections that have not finished their handshake, in
            total; more are closed at once (and counted as ``refused_unauthenticated``).
        max_unauthenticated_per_host: The same, per source address.
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
    max_unauthenticated: int = attrs.field(default=128, validator=_positive_int)
    max_unauthenticated_per_host: int = attrs.field(default=16, validator=_positive_int)

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

    async def batch(self) -> list[bytes]:
        """Return the next frame and every frame already read after it; ``[]`` at a clean end.

        What one read of the socket brought, handled together: the answers it makes are
        written together at its end (see [`coalesce`][dynamo_core.aio.coalesce]).

        Raises:
            FrameError: a frame is over the cap, or the stream ended inside a frame.
            ConnectionError: the connection broke.
        """
        first = await self.next()
        if first is None:
            return []
        if not self._pending:
            return [first]
        frames = [first, *self._pending]
        self._pending.clear()
        return frames

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
        "flush",
        "peer",
        "queue",
        "queued_bytes",
        "seal",
        "state",
        "task",
        "wake",
        "writer",
    )

    def __init__(self, peer: str, address: Address) -> None:
        self.peer = peer
        self.address = address
        self.queue: deque[bytes] = deque()  # payloads, sealed when written
        self.queued_bytes = 0
        self.seal: FrameSeal | None = None
        self.state = "connecting"  # connecting | up | down (backing off: sends are dropped)
        self.wake = asyncio.Event()
        self.broken = False
        self.attempts = 0
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.flush: Callable[[], None] = lambda: None  # set by the transport: write the queue


_HIGH_WATER: Final = 1 << 20  # bytes buffered in a connection before its task waits for drain

_started: weakref.WeakSet[TcpTransport] = weakref.WeakSet()


def is_loopback(host: str) -> bool:
    """Whether `host` is ``localhost`` or a loopback IP address (where no security is fine)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quiet_accept_errors(
    previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """Wrap a loop exception handler: accept errors become a counter and a throttled line.

    asyncio reports running out of file descriptors on accept (EMFILE and kin, expected under
    attack) with a traceback every time; everything else goes to `previous`.
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        sock = context.get("socket")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and sock is not None:
            for transport in list(_started):
                if transport._listens_on(sock):
                    transport._on_accept_error(exc)
                    return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    handler.dynamo_core_quiet = True  # type: ignore[attr-defined]
    return handler


class TcpTransport:
    """Node-to-node messages and client requests over TCP (optionally TLS and a cluster secret).

    Args:
        node_id: This node's id (what peers authenticate it as).
        listen: The ``(host, port)`` or ``"host:port"`` to listen on; port 0 picks a free port
            (see `address` after `start`).
        peers: Every other node: ``{node_id: (host, port)}``. Only these ids may connect as nodes.
        secret: The node secret (at least 32 random bytes, see
            [`load_secret`][dynamo_core.aio.auth.load_secret]), or `None`. With it, nodes
            prove it to each other before any message flows and seal every frame, so a process
            without it can neither join, read the cluster's messages into a node, nor inject.
        client_secret: The client secret, different from `secret`, or `None`. With a node
            secret, clients are accepted only when this is given, and must prove it; they can
            never act as nodes.
        server_ssl: A server-side `ssl.SSLContext` for accepted connections, or `None`.
        client_ssl: A client-side `ssl.SSLContext` for outbound connections, or `None`.
            [`tls_contexts`][dynamo_core.aio.tls_contexts] builds both for mutual TLS; each
            peer's certificate must then name it (``dynamo-core://node/ID``).
        config: Limits and timings.
        seed: Seeds the reconnect jitter (tests pass one; default: random).
        allow_clients: Whether clients may connect to this listener.
        allow_admin: Whether admins (``dynamo-core admin``: membership changes; they prove
            the node secret or show an admin certificate) may connect to this listener.
        cluster: The cluster's name: nodes and clients of another cluster are refused, even
            with the same secret.
        config_summary: This node's [configuration
            summary][dynamo_core.aio.config.config_summary], sent to peers: a peer whose
            summary differs is refused, and the difference logged on both sides.

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = (
        "__weakref__",
        "_address",
        "_client_secret",
        "_closing",
        "_coalescer",
        "_connections",
        "_handlers",
        "_out",
        "_pending",
        "_rng",
        "_secret",
        "_server",
        "_stats",
        "_throttle",
        "allow_admin",
        "allow_clients",
        "client_ssl",
        "cluster",
        "config",
        "config_summary",
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
        allow_admin: bool = True,
        client_secret: bytes | None = None,
        cluster: str = DEFAULT_CLUSTER,
        config_summary: ConfigSummary = (),
    ) -> None:
        self.node_id = check_node_id(node_id, "node_id")
        self.cluster = check_node_id(cluster, "cluster")
        Hello("node", node_id, bytes(NONCE_SIZE), cluster, config_summary)  # checks the summary
        self.config_summary = config_summary
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
        self._client_secret = check_secret(client_secret, "client_secret")
        if secret is not None and secret == client_secret:
            raise ValueError("client_secret must differ from secret: clients must not hold it")
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
        self.allow_admin = bool(allow_admin)
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not secrecy
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        self.inbox = Inbox(config.max_inbox)
        self._out = {peer: _Outbound(peer, addr) for peer, addr in checked.items()}
        for out in self._out.values():
            out.flush = partial(self._write_out, out)
        self._coalescer = Coalescer()
        self._server: asyncio.Server | None = None
        self._address: Address | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._pending: dict[str, int] = {}  # source host -> connections still in the handshake
        self._throttle = _Throttle()
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
            self._on_connection, self.listen[0], self.listen[1], limit=_READ_CHUNK
        )  # TLS starts in the handler, under the handshake timeout and the caps
        sock = self._server.sockets[0].getsockname()
        self._address = (str(sock[0]), int(sock[1]))
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        if not getattr(previous, "dynamo_core_quiet", False):
            loop.set_exception_handler(_quiet_accept_errors(previous))
        _started.add(self)
        for out in self._out.values():
            out.task = asyncio.create_task(self._run_outbound(out), name=f"dynamo-out-{out.peer}")
        log.info("%s listening on %s:%d", self.node_id, *self._address)
        if self._secret is None and self.server_ssl is None and not is_loopback(self.listen[0]):
            log.warning(
                "%s: INSECURE: listening on %s with neither a secret nor TLS: anyone who "
                "reaches the port can read, write and pose as a node",
                self.node_id,
                self.listen[0],
            )

    def _listens_on(self, sock: Any) -> bool:
        server = self._server
        fileno = sock.fileno()
        return server is not None and any(s.fileno() == fileno for s in server.sockets)

    def _on_accept_error(self, exc: OSError) -> None:
        self._stats["accept_errors"] += 1
        self._throttle.warning(
            "accept_errors", "%s: cannot accept a connection: %s", self.node_id, exc.strerror
        )

    async def close(self) -> None:
        """Stop listening, close every connection and stop reconnecting. Idempotent."""
        if self._closing:
            return
        self._coalescer.flush()  # what was handed over before the close still goes out
        self._closing = True
        _started.discard(self)
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
        check_bytes(payload, "payload")
        size = len(payload)
        config = self.config
        if size > config.max_frame:
            raise ValueError(f"payload is {size} bytes; max_frame is {config.max_frame}")
        out = self._out.get(target)
        if out is None or self._closing:
            self._stats["dropped_unknown_peer"] += 1
            return
        if out.state == "down":
            self._stats["dropped_peer_down"] += 1
            return
        if len(out.queue) >= config.max_queue or out.queued_bytes + size > config.max_queue_bytes:
            self._stats["dropped_queue_full"] += 1
            return
        out.queue.append(payload)
        out.queued_bytes += size
        # Written with the other frames of this batch of work: one write, not one per frame.
        self._coalescer.mark(out, out.flush)

    def _write_out(self, out: _Outbound) -> None:
        """Write `out`'s queue into its connection, or leave it to the connection's task.

        The task takes over while there is no connection (it writes once connected) and while
        the peer reads too slowly (it writes after the connection's buffer drained).
        """
        writer = out.writer
        if not out.queue:
            return
        if writer is None or out.broken or writer.transport.get_write_buffer_size() >= _HIGH_WATER:
            out.wake.set()
            return
        self._write_queue(out, writer)

    def _write_queue(self, out: _Outbound, writer: asyncio.StreamWriter) -> None:
        """Seal and frame every queued payload, in order, and write them with one call."""
        frames = [self._frame(out, payload) for payload in out.queue]
        out.queue.clear()
        out.queued_bytes = 0
        writer.writelines(frames)
        self._stats["frames_sent"] += len(frames)
        self._stats["bytes_sent"] += sum(map(len, frames))

    def _frame(self, out: _Outbound, payload: bytes) -> bytes:
        """Seal `payload` for the current connection to `out.peer` (in write order) and frame it."""
        if out.seal is not None:
            payload = out.seal.seal(payload)
        return encode_frame(payload, max_frame=self.config.max_frame + TAG_SIZE)

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

    async def _connect(
        self, out: _Outbound
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Peer]:
        cfg = self.config

        def connector(tls: Certified | None) -> Connector:
            return Connector(
                "node",
                self.node_id,
                secret=self._secret,
                expect=out.peer,
                cluster=self.cluster,
                certified=tls,
                config=self.config_summary,
            )

        reader, writer, _, peer = await dial(
            out.address,
            connector,
            ssl=self.client_ssl,
            connect_timeout=cfg.connect_timeout,
            handshake_timeout=cfg.handshake_timeout,
            limit=_READ_CHUNK,
            max_frame=MAX_HANDSHAKE_FRAME,  # only the handshake is read on an outbound connection
        )
        return reader, writer, peer

    async def _run_outbound(self, out: _Outbound) -> None:
        """Keep one connection to `out.peer` open and flush its queue into it."""
        while not self._closing:
            try:
                reader, writer, peer = await self._connect(out)
            except (OSError, TimeoutError, AuthError, DecodeError) as exc:
                out.state = "down"
                out.attempts += 1
                self._stats["connect_failures"] += 1
                if isinstance(exc, AuthError | DecodeError):
                    self._stats["auth_failures"] += 1
                    self._throttle.warning(
                        f"out-{out.peer}",
                        "%s: handshake with %s failed: %s",
                        self.node_id,
                        out.peer,
                        exc,
                    )
                elif isinstance(exc, _ssl.SSLError):
                    self._stats["tls_failures"] += 1
                    self._throttle.warning(
                        f"out-{out.peer}",
                        "%s: TLS handshake with %s failed: %s",
                        self.node_id,
                        out.peer,
                        exc,
                    )
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
            out.seal = peer.seal
            out.writer = writer
            self._connections.add(writer)
            watcher = asyncio.create_task(self._watch(reader, out))
            try:
                await self._flush(out, writer)
            except (OSError, TimeoutError) as exc:
                log.info("%s: connection to %s lost: %r", self.node_id, out.peer, exc)
            finally:
                out.writer = None
                out.seal = None
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
            if writer.transport.get_write_buffer_size() >= _HIGH_WATER:
                # The peer reads too slowly: it takes some first (or is dropped), and the
                # queue, capped, waits. So at most one queue's worth is ever over the mark.
                await asyncio.wait_for(writer.drain(), timeout)
                continue
            self._write_queue(out, writer)

    async def _watch(self, reader: asyncio.StreamReader, out: _Outbound) -> None:
        """Notice at once when the peer closes our outbound connection (it never writes)."""
        with contextlib.suppress(OSError):
            await reader.read(1)
        out.broken = True
        out.wake.set()

    # -- receiving ---------------------------------------------------------------------------

    def _admit(self, writer: asyncio.StreamWriter) -> str | None:
        """Count a new connection as pending its handshake; `None` (and closed) over a cap."""
        where = writer.get_extra_info("peername")
        host = str(where[0]) if isinstance(where, tuple) and where else "?"
        cfg = self.config
        pending = self._pending.get(host, 0)
        if self._closing:  # accepted while closing: refuse
            writer.transport.abort()
            return None
        if (
            pending >= cfg.max_unauthenticated_per_host
            or sum(self._pending.values()) >= cfg.max_unauthenticated
        ):  # too many strangers mid-handshake: this one costs nothing more
            writer.transport.abort()
            self._refused("refused_unauthenticated", host, "too many unauthenticated connections")
            return None
        self._pending[host] = pending + 1
        return host

    def _authenticated(self, host: str) -> None:
        left = self._pending[host] - 1
        if left:
            self._pending[host] = left
        else:
            del self._pending[host]

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # No await before the TLS handshake starts: asyncio runs this task before it first
        # reads the socket, so the peer's first TLS bytes go to TLS, not to `reader`.
        host = self._admit(writer)
        if host is None:
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections.add(writer)
        self._stats["inbound_connections"] += 1
        where = writer.get_extra_info("peername")
        frames = FrameStream(reader, MAX_HANDSHAKE_FRAME)  # unauthenticated: small frames only
        frames.until_authenticated()
        in_handshake = True
        try:
            try:
                peer = await self._accept(frames, writer)
            finally:
                self._authenticated(host)
            in_handshake = False
            frames.allow(sealed_cap(self.config.max_frame))
            if peer.role == "node":
                await self._read_node(peer, frames)
            elif peer.role == "admin":
                self._stats["admin_connections"] += 1
                await self._read_admin(peer, frames, writer)
            else:
                self._stats["client_connections"] += 1
                await self._read_client(peer, frames, writer)
        except asyncio.CancelledError:  # close() cancels handlers; this task is ours to end
            pass
        except Exception as exc:
            self._closed_by(exc, where, in_handshake=in_handshake)
        finally:
            self._coalescer.flush()  # answers made before the end still go out, then the close
            self._connections.discard(writer)
            self._handlers.discard(task)
            await close_writer(writer)

    def _refuse_admin(
        self, data: object, respond: Callable[[RequestResponse | admin.AdminReply], None]
    ) -> None:
        """Answer an admin request sent on a client connection: ``forbidden``, and counted."""
        self._stats["refused_admin"] += 1
        self._throttle.warning(
            "refused_admin", "%s: refused an admin request from a client", self.node_id
        )
        rid = data.get("rid") if isinstance(data, dict) else None
        if type(rid) is int and 0 <= rid <= codec.MAX_COUNTER:
            reason = "admin requests need the admin role (the node secret or an admin certificate)"
            respond(admin.AdminRefused(rid, "forbidden", reason))

    def _closed_by(self, exc: Exception, where: object, *, in_handshake: bool) -> None:
        """Count and log (throttled) why an inbound connection ended; re-raise a bug."""
        match exc:
            case FrameTooLarge():
                self._refused("closed_oversized", where, exc)
            case FrameError():
                self._refused("closed_malformed", where, exc)
            case AuthError():
                self._refused("auth_failures", where, exc)
            case DecodeError():
                self._refused("closed_malformed", where, f"malformed frame: {exc}")
            case TimeoutError():
                self._refused("handshake_timeouts", where, "handshake timed out")
            case _ssl.SSLError():
                self._refused("tls_failures", where, f"TLS handshake failed: {exc.reason or exc}")
            case OSError() if in_handshake and self.server_ssl is not None:
                self._refused("tls_failures", where, f"TLS handshake failed: {exc!r}")
            case OSError():
                log.debug("%s: connection from %s broke: %r", self.node_id, where, exc)
            case _:
                raise exc

    def _refused(self, counter: str, where: object, reason: object) -> None:
        self._stats[counter] += 1
        self._throttle.warning(
            counter, "%s: closing connection from %s: %s", self.node_id, where, reason
        )

    async def _accept(self, frames: FrameStream, writer: asyncio.StreamWriter) -> Peer:
        async with asyncio.timeout(self.config.handshake_timeout):
            tls = None
            if self.server_ssl is not None:
                await writer.start_tls(self.server_ssl)
                tls = certified(writer.get_extra_info("ssl_object"))
            acceptor = Acceptor(
                self.node_id,
                secret=self._secret,
                client_secret=self._client_secret,
                peers=self.peers,
                allow_clients=self.allow_clients,
                allow_admin=self.allow_admin,
                cluster=self.cluster,
                certified=tls,
                config=self.config_summary,
            )
            hello = await frames.next()
            if hello is None:
                raise ConnectionResetError("closed before the handshake")
            try:
                challenge = acceptor.on_hello(hello)
            except ConfigMismatch as exc:  # tell the peer what we run, so it can say why
                writer.write(encode_frame(exc.reply))
                await writer.drain()
                raise
            writer.write(encode_frame(challenge))
            proof = await frames.next()
            if proof is None:
                raise ConnectionResetError("closed during the handshake")
            mine, peer = acceptor.on_proof(proof)
            writer.write(encode_frame(mine))
            await writer.drain()
            return peer

    async def _read_node(self, peer: Peer, frames: FrameStream) -> None:
        max_frame = self.config.max_frame
        stats = self._stats
        inbox = self.inbox
        flush = self._coalescer.flush
        sender = peer.node_id
        assert sender is not None
        seal = peer.seal
        while batch := await frames.batch():
            for frame in batch:
                payload = frame if seal is None else seal.open(frame)
                message = decode_message(payload, max_bytes=max_frame)
                stats["frames_received"] += 1
                stats["bytes_received"] += len(payload) + 4
                if not inbox.put(Inbound(sender, message)):
                    stats["dropped_inbox_full"] += 1
            flush()  # the batch read is handled: send what it produced

    def _responder(
        self, peer: Peer, writer: asyncio.StreamWriter
    ) -> Callable[[RequestResponse | admin.AdminReply], None]:
        """How to answer on an inbound client or admin connection (never blocks)."""
        max_frame = self.config.max_frame
        limit = self.config.max_client_buffer
        stats = self._stats
        seal = peer.seal
        batch = FrameBatch(writer)  # responses of this batch of work, written together
        mark = self._coalescer.mark

        def respond(response: RequestResponse | admin.AdminReply) -> None:
            if writer.is_closing():
                return
            transport = writer.transport
            if transport.get_write_buffer_size() + batch.size > limit:
                stats["closed_slow_client"] += 1
                log.warning("%s: closing a client that does not read its responses", self.node_id)
                batch.clear()
                transport.abort()  # drop its unread responses now (close() would keep them)
                return
            payload = codec.dumps(response.to_dict())
            if seal is not None:
                payload = seal.seal(payload)
            batch.add(encode_frame(payload, max_frame=max_frame + TAG_SIZE))
            mark(batch, batch.flush)
            stats["frames_sent"] += 1
            stats["bytes_sent"] += len(payload) + 4

        return respond

    async def _read_admin(
        self, peer: Peer, frames: FrameStream, writer: asyncio.StreamWriter
    ) -> None:
        max_frame = self.config.max_frame
        stats = self._stats
        seal = peer.seal
        respond = self._responder(peer, writer)
        while (payload := await frames.next()) is not None:
            if seal is not None:
                payload = seal.open(payload)
            request = admin.request_from_dict(codec.loads(payload, max_bytes=max_frame))
            stats["admin_requests"] += 1
            stats["frames_received"] += 1
            stats["bytes_received"] += len(payload) + 4
            if request.op != "ring":  # an audit line for every membership change asked
                log.warning(
                    "%s: admin request: %s %s%s",
                    self.node_id,
                    request.op,
                    request.node,
                    "" if request.new is None else f" by {request.new}",
                )
            if not self.inbox.put(AdminCall(request, respond)):
                reason = "node overloaded: try again"
                respond(admin.AdminRefused(request.rid, "bad_request", reason))

    async def _read_client(
        self, peer: Peer, frames: FrameStream, writer: asyncio.StreamWriter
    ) -> None:
        max_frame = self.config.max_frame
        stats = self._stats
        seal = peer.seal
        respond = self._responder(peer, writer)
        flush = self._coalescer.flush

        while batch := await frames.batch():
            for frame in batch:
                payload = frame if seal is None else seal.open(frame)
                data = codec.loads(payload, max_bytes=max_frame)
                if admin.is_admin_request(data):  # a client never changes membership
                    self._refuse_admin(data, respond)
                    continue
                request = request_from_dict(data)
                stats["client_requests"] += 1
                stats["frames_received"] += 1
                stats["bytes_received"] += len(payload) + 4
                if not self.inbox.put(ClientCall(request, respond)):
                    stats["shed_client_requests"] += 1
                    failed = RequestFailed("node overloaded: try another")
                    respond(ClientResponse(request.rid, failed))
            flush()  # the batch read is handled: send what it produced
