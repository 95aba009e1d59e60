"""`Client`: put and get against a running cluster, with retries to another node.

A client connects to any node (every node takes every request and forwards it to a key's
replicas), keeps one connection per node it has used, and sends many requests at once on it,
matched to their responses by id. When a node cannot be reached, does not answer within
`timeout`, or answers [`RequestFailed`][dynamo_core.messages.RequestFailed], the request is
retried on the next node, round robin from a seeded start; a write refused at admission
(over a [`Limits`][dynamo_core.limits.Limits] limit) raises
[`LimitExceeded`][dynamo_core.errors.LimitExceeded] at once.

A retried put may have been applied by the node that failed to answer: puts are
*at least once*. With the context from a read, a duplicate lands as a sibling of equal value
that the next read-modify-write merges away.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl as _ssl
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Final, Self

from dynamo_core import codec
from dynamo_core._check import check_bytes, check_key, check_node_id, check_positive_float
from dynamo_core.aio.auth import (
    DEFAULT_CLUSTER,
    TAG_SIZE,
    AuthError,
    Certified,
    Connector,
    FrameSeal,
    check_secret,
)
from dynamo_core.aio.coalesce import Coalescer, FrameBatch
from dynamo_core.aio.framing import encode_frame
from dynamo_core.aio.protocol import (
    ClientGet,
    ClientPut,
    ClientRequest,
    ClientResponse,
    ClientStats,
    RequestResponse,
    StatsReply,
    response_from_dict,
)
from dynamo_core.aio.transport import (
    Address,
    FrameStream,
    TransportConfig,
    close_writer,
    dial,
    parse_address,
)
from dynamo_core.errors import DecodeError, DynamoError, LimitExceeded
from dynamo_core.limits import LIMIT_NAMES
from dynamo_core.messages import MAX_KEY_BYTES, GetReply, PutReply, RequestFailed

__all__ = ["Client", "ClientError"]

log = logging.getLogger("dynamo_core.aio")

_RID_LIMIT: Final = 2**63 - 1


class ClientError(DynamoError):
    """Every node tried failed the request.

    Attributes:
        failures: ``(address, reason)`` for every attempt, in order.
    """

    def __init__(self, message: str, failures: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failures: tuple[tuple[str, str], ...] = tuple(failures)


class _Connection:
    """One client connection to one node: requests out, responses matched by rid."""

    __slots__ = (
        "address",
        "batch",
        "closed",
        "coalescer",
        "reader_task",
        "seal",
        "waiting",
        "writer",
    )

    def __init__(
        self,
        address: Address,
        writer: asyncio.StreamWriter,
        seal: FrameSeal | None,
        coalescer: Coalescer,
    ) -> None:
        self.address = address
        self.writer = writer
        self.seal = seal
        self.batch = FrameBatch(writer)  # the requests of one loop turn, written together
        self.coalescer = coalescer
        self.waiting: dict[int, asyncio.Future[RequestResponse]] = {}
        self.closed = False
        self.reader_task: asyncio.Task[None] | None = None

    async def read(self, frames: FrameStream, max_frame: int) -> None:
        try:
            while (payload := await frames.next()) is not None:
                if self.seal is not None:
                    payload = self.seal.open(payload)
                response = response_from_dict(codec.loads(payload, max_bytes=max_frame))
                future = self.waiting.pop(response.rid, None)
                if future is not None and not future.done():
                    future.set_result(response)
        except (OSError, DecodeError, AuthError) as exc:
            log.debug("client: connection to %s:%d failed: %r", *self.address, exc)
        finally:
            self.close()

    def send(self, payload: bytes, max_frame: int) -> None:
        if self.seal is not None:
            payload = self.seal.seal(payload)
        self.batch.send(encode_frame(payload, max_frame=max_frame + TAG_SIZE), self.coalescer)

    def close(self) -> None:
        self.closed = True
        self.writer.close()
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionResetError("the node closed the connection"))
        self.waiting.clear()


def _key(key: object) -> bytes:
    check_key(key)
    data = key.encode("utf-8") if isinstance(key, str) else key
    assert isinstance(data, bytes)
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"key must be at most {MAX_KEY_BYTES} bytes, got {len(data)}")
    return data


class Client:
    """A client of a dynamo_core cluster.

    Use it as ``async with Client(["127.0.0.1:7001", ...]) as client:``; connections open on
    first use and close on exit.

    Args:
        addresses: The nodes to talk to: ``"host:port"`` strings or ``(host, port)`` pairs.
        secret: The *client* secret when the nodes require one (never the node secret; see
            [`load_secret`][dynamo_core.aio.auth.load_secret]).
        ssl: A client `ssl.SSLContext` when the nodes listen with TLS (with a client
            certificate, ``dynamo-core://client/NAME``); a node must then show a node
            certificate.
        timeout: Seconds one attempt may take (connecting included). Give it more than the
            nodes' ``request_timeout`` (a forwarded request may take twice that).
        retries: Further attempts on other nodes after a failure (default: one per other node).
            A failed put may still have reached some replicas, so a retried put is a second
            write: with no context it can stand as identical siblings, which the next
            read-merge-write folds into one.
        seed: Seeds the choice of the first node (default: random).
        config: Frame cap and connect/handshake timeouts.
        suspect_for: Seconds a node that timed out or could not be reached is tried last
            (after every other node), so a paused or overloaded node costs one timeout, not one
            per request (a gray failure). An answer from it clears the mark.
        cluster: The cluster's name (the nodes refuse clients of another cluster).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = (
        "_coalescer",
        "_conns",
        "_cursor",
        "_locks",
        "_rids",
        "_secret",
        "_suspects",
        "addresses",
        "cluster",
        "config",
        "retries",
        "ssl",
        "suspect_for",
        "timeout",
    )

    def __init__(
        self,
        addresses: Sequence[Address | str],
        *,
        secret: bytes | None = None,
        ssl: _ssl.SSLContext | None = None,
        timeout: float = 5.0,
        retries: int | None = None,
        seed: int | None = None,
        config: TransportConfig | None = None,
        suspect_for: float = 10.0,
        cluster: str = DEFAULT_CLUSTER,
    ) -> None:
        if isinstance(addresses, str) or not isinstance(addresses, Sequence):
            raise TypeError("addresses must be a sequence of 'host:port' or (host, port)")
        if not addresses:
            raise ValueError("addresses must name at least one node")
        self.addresses = tuple(parse_address(a, f"addresses[{i}]") for i, a in enumerate(addresses))
        self._secret = check_secret(secret)
        self.cluster = check_node_id(cluster, "cluster")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}")
        self.ssl = ssl
        self.timeout = check_positive_float(timeout, "timeout")
        if retries is None:
            retries = len(self.addresses) - 1
        elif type(retries) is not int or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        self.retries = retries
        self.config = config if config is not None else TransportConfig()
        if not isinstance(self.config, TransportConfig):
            raise TypeError(f"config must be a TransportConfig, not {type(config).__name__}")
        start = random.Random(seed).randrange(len(self.addresses))  # noqa: S311
        self._cursor = itertools.count(start)
        self._rids = itertools.count(1)
        self._conns: dict[Address, _Connection] = {}
        self._coalescer = Coalescer()
        self._locks: dict[Address, asyncio.Lock] = {}
        self.suspect_for = check_positive_float(suspect_for, "suspect_for")
        self._suspects: dict[Address, float] = {}  # address -> tried last until then

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        self._coalescer.flush()  # requests already made still go out, as with a plain write
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()
        tasks = [c.reader_task for c in conns if c.reader_task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(close_writer(c.writer) for c in conns))

    # -- requests ----------------------------------------------------------------------------

    async def put(self, key: str | bytes, value: bytes, context: bytes | None = None) -> PutReply:
        """Write `value` under `key`.

        Args:
            key: The key (`str` is sent as UTF-8), at most 64 KiB.
            value: The value.
            context: The context a `get` of this key returned: the write then replaces exactly
                the values that read saw. `None` writes blindly (a sibling of what is there).

        Returns:
            The acknowledgement: which replicas stored it, and which fallbacks keep hints.

        Raises:
            TypeError, ValueError: an argument is invalid (nothing is sent).
            dynamo_core.errors.LimitExceeded: a node refused the write at admission (a limit
                of [`Limits`][dynamo_core.limits.Limits]; the message says what to do); it
                changed nothing and is not retried on another node.
            ClientError: every attempt failed.
        """
        data = _key(key)
        check_bytes(value, "value")
        if context is not None:
            check_bytes(context, "context")
        result = await self._call(lambda rid: ClientPut(rid, data, value, context), PutReply)
        assert isinstance(result, PutReply)
        return result

    async def get(self, key: str | bytes) -> tuple[tuple[bytes, ...], bytes]:
        """Read `key`.

        Returns:
            ``(values, context)``: the siblings (empty when the key was never written) and the
            opaque context to pass to the next `put` of this key.

        Raises:
            TypeError, ValueError: `key` is invalid.
            ClientError: every attempt failed.
        """
        reply = await self.get_reply(key)
        return reply.values, reply.context

    async def get_reply(self, key: str | bytes) -> GetReply:
        """Read `key` and return the whole [`GetReply`][dynamo_core.messages.GetReply].

        Raises:
            TypeError, ValueError: `key` is invalid.
            ClientError: every attempt failed.
        """
        data = _key(key)
        result = await self._call(lambda rid: ClientGet(rid, data), GetReply)
        assert isinstance(result, GetReply)
        return result

    async def stats(self, node: Address | str | None = None) -> tuple[str, dict[str, int]]:
        """Return a node's id and counters (node, transport and driver; see the deploy guide).

        Args:
            node: The node's address; `None` asks the next node in turn.

        Raises:
            ClientError: the node (every node, with `None`) could not be asked.
        """
        targets = None if node is None else [parse_address(node, "node")]
        result = await self._call(ClientStats, StatsReply, targets=targets)
        assert isinstance(result, StatsReply)
        return result.node_id, result.as_dict()

    # -- machinery ---------------------------------------------------------------------------

    async def _call(
        self,
        make: Callable[[int], ClientRequest],
        expect: type[PutReply | GetReply | StatsReply],
        *,
        targets: Sequence[Address] | None = None,
    ) -> PutReply | GetReply | StatsReply:
        if targets is None:
            targets = self._targets()
        failures: list[tuple[str, str]] = []
        loop = asyncio.get_running_loop()
        for address in targets:
            rid = next(self._rids) % _RID_LIMIT
            request = make(rid)
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._send(address, request)
            except TimeoutError:
                self._suspects[address] = loop.time() + self.suspect_for
                failures.append((f"{address[0]}:{address[1]}", "timed out"))
                continue
            except (OSError, AuthError, DecodeError) as exc:
                self._suspects[address] = loop.time() + self.suspect_for
                failures.append((f"{address[0]}:{address[1]}", f"{type(exc).__name__}: {exc}"))
                continue
            self._suspects.pop(address, None)
            result = response.result if isinstance(response, ClientResponse) else response
            if isinstance(result, RequestFailed):
                if result.code in LIMIT_NAMES:  # refused at admission: no other node admits it
                    raise LimitExceeded(result.reason, limit=result.code)
                if result.code == "bad_request":  # every node would refuse it the same way
                    where = f"{address[0]}:{address[1]}"
                    raise ClientError(f"{where}: {result.reason}", [(where, result.reason)])
                failures.append((f"{address[0]}:{address[1]}", result.reason))
                continue
            if not isinstance(result, expect):
                failures.append((f"{address[0]}:{address[1]}", f"unexpected {result!r:.80}"))
                continue
            return result
        shown = "; ".join(f"{a}: {r}" for a, r in failures)
        tried = "1 attempt" if len(failures) == 1 else f"{len(failures)} attempts"
        raise ClientError(f"{tried} failed: {shown}"[:2000], failures)

    def _targets(self) -> list[Address]:
        """The next nodes in turn, those that recently timed out or failed last."""
        first = next(self._cursor)
        n = len(self.addresses)
        order = [self.addresses[(first + i) % n] for i in range(n)]
        if self._suspects:
            now = asyncio.get_running_loop().time()
            for address, until in list(self._suspects.items()):
                if until <= now:
                    del self._suspects[address]
            order.sort(key=lambda address: address in self._suspects)  # stable: turn kept
        return [order[i % n] for i in range(self.retries + 1)]

    async def _send(self, address: Address, request: ClientRequest) -> RequestResponse:
        conn = self._conns.get(address)
        if conn is None or conn.closed:
            lock = self._locks.setdefault(address, asyncio.Lock())
            async with lock:  # concurrent requests share one new connection
                conn = self._conns.get(address)
                if conn is None or conn.closed:
                    conn = await self._open(address)
        future: asyncio.Future[RequestResponse] = asyncio.get_running_loop().create_future()
        conn.waiting[request.rid] = future
        try:
            conn.send(codec.dumps(request.to_dict()), self.config.max_frame)
            return await future
        finally:
            conn.waiting.pop(request.rid, None)

    async def _open(self, address: Address) -> _Connection:
        cfg = self.config

        def connector(tls: Certified | None) -> Connector:
            return Connector(
                "client", None, secret=self._secret, cluster=self.cluster, certified=tls
            )

        _, writer, frames, peer = await dial(
            address,
            connector,
            ssl=self.ssl,
            connect_timeout=cfg.connect_timeout,
            handshake_timeout=cfg.handshake_timeout,
            limit=256 * 1024,
            max_frame=cfg.max_frame,
        )
        conn = _Connection(address, writer, peer.seal, self._coalescer)
        conn.reader_task = asyncio.create_task(conn.read(frames, cfg.max_frame))
        old = self._conns.get(address)
        if old is not None:
            old.close()
        self._conns[address] = conn
        return conn
