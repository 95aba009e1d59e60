"""The asyncio runtime: run [`Node`][dynamo_core.node.Node]s as processes that talk over TCP.

* [`serve`][dynamo_core.aio.serve] — the driver: feeds messages, client requests and timers to a
  node, carries out its effects, and shuts down cleanly.
* [`Driver`][dynamo_core.aio.Driver] — the generic driver: runs any protocol core (a quorum
  coordinator, a handoff, a Merkle exchange, a range stream, a node) against an effect handler
  you write; [`SyncDriver`][dynamo_core.drive.SyncDriver] is its synchronous twin.
* [`TcpTransport`][dynamo_core.aio.TcpTransport] — length-prefixed codec frames over asyncio
  streams: one reusable connection per peer, reconnect with jittered backoff, a frame-size cap,
  caps on unauthenticated connections, optional mutual TLS with certificate identities and
  optional node and client secrets (every frame authenticated; see the
  [trust model](../explanation/trust-model.md)).
* [`Client`][dynamo_core.aio.Client] — put and get against any node, with retries;
  [`admin_request`][dynamo_core.aio.admin_request] — one membership change (or a ring report)
  over an admin connection.
* [`tls_contexts`][dynamo_core.aio.tls_contexts] — mutual-TLS contexts from a cluster CA;
  [`load_secret`][dynamo_core.aio.auth.load_secret] — the one reader of secret files.

The pure pieces — [framing][dynamo_core.aio.framing], the [handshake][dynamo_core.aio.auth] and
the [client protocol][dynamo_core.aio.protocol] — import no asyncio and are tested without
sockets. ``import dynamo_core`` does not import this package; import it explicitly.
"""

from dynamo_core.aio.admin import admin_request
from dynamo_core.aio.auth import AuthError
from dynamo_core.aio.client import Client, ClientError
from dynamo_core.aio.core_driver import Driver
from dynamo_core.aio.driver import DriverTransport, serve
from dynamo_core.aio.framing import FrameDecoder, FrameError, FrameTooLarge, encode_frame
from dynamo_core.aio.inbox import AdminCall, ClientCall, Inbound, Inbox
from dynamo_core.aio.tls import tls_contexts
from dynamo_core.aio.transport import TcpTransport, TransportConfig, parse_address

__all__ = [
    "AdminCall",
    "AuthError",
    "Client",
    "ClientCall",
    "ClientError",
    "Driver",
    "DriverTransport",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "Inbound",
    "Inbox",
    "TcpTransport",
    "TransportConfig",
    "admin_request",
    "encode_frame",
    "parse_address",
    "serve",
    "tls_contexts",
]
