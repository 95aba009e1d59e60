"""`admin_request`: send one [admin request][dynamo_core.admin] to a node and wait for its answer.

What ``dynamo-core admin`` runs. The connection is opened in the *admin* role, which proves the
node secret (and, under mutual TLS, shows a ``dynamo-core://admin/NAME`` certificate): see the
[trust model](../explanation/trust-model.md). A client secret does not open it.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl

from dynamo_core import codec
from dynamo_core.admin import AdminReply, AdminRequest, reply_from_dict
from dynamo_core.aio.auth import DEFAULT_CLUSTER, TAG_SIZE, Certified, Connector, check_secret
from dynamo_core.aio.framing import encode_frame
from dynamo_core.aio.transport import (
    Address,
    TransportConfig,
    close_writer,
    dial,
    parse_address,
)
from dynamo_core.errors import DecodeError

__all__ = ["admin_request"]


async def admin_request(
    address: Address | str,
    request: AdminRequest,
    *,
    secret: bytes | None = None,
    ssl: _ssl.SSLContext | None = None,
    cluster: str = DEFAULT_CLUSTER,
    timeout: float = 10.0,
    config: TransportConfig | None = None,
) -> AdminReply:
    """Send `request` to the node at `address` over an admin connection; return its answer.

    Args:
        address: ``(host, port)`` or ``"host:port"`` of any member.
        request: The request.
        secret: The cluster's **node** secret (admins prove it), or `None`.
        ssl: A client TLS context holding an admin certificate, or `None`.
        cluster: The cluster's name.
        timeout: Seconds for the whole exchange, connection included.
        config: Connection limits and timings (default `TransportConfig()`).

    Returns:
        [`AdminAccepted`][dynamo_core.admin.AdminAccepted],
        [`AdminRefused`][dynamo_core.admin.AdminRefused] or
        [`RingReport`][dynamo_core.admin.RingReport].

    Raises:
        TypeError, ValueError: an argument is invalid.
        OSError, TimeoutError: the node cannot be reached, or did not answer in time.
        ConnectionResetError: the node refused the connection (wrong secret, role or
            certificate; its log says which) or closed it before answering.
        dynamo_core.aio.AuthError: the node did not authenticate.
        dynamo_core.errors.DecodeError: the node's answer is malformed.
    """
    where = parse_address(address)
    if not isinstance(request, AdminRequest):
        raise TypeError(f"request must be an AdminRequest, not {type(request).__name__}")
    key = check_secret(secret)
    cfg = TransportConfig() if config is None else config

    def connector(tls: Certified | None) -> Connector:
        return Connector("admin", None, secret=key, cluster=cluster, certified=tls)

    async with asyncio.timeout(timeout):
        _, writer, frames, peer = await dial(
            where,
            connector,
            ssl=ssl,
            connect_timeout=cfg.connect_timeout,
            handshake_timeout=cfg.handshake_timeout,
            limit=256 * 1024,
            max_frame=cfg.max_frame,
        )
        try:
            payload = codec.dumps(request.to_dict())
            if peer.seal is not None:
                payload = peer.seal.seal(payload)
            writer.write(encode_frame(payload, max_frame=cfg.max_frame + TAG_SIZE))
            frame = await frames.next()
            if frame is None:
                raise ConnectionResetError("the node closed the connection without answering")
            if peer.seal is not None:
                frame = peer.seal.open(frame)
            reply = reply_from_dict(codec.loads(frame, max_bytes=cfg.max_frame))
        finally:
            await close_writer(writer)
    if reply.rid != request.rid:
        raise DecodeError(f"the node answered request {reply.rid}, not {request.rid}")
    return reply
