"""TLS contexts for a cluster with its own certificate authority."""

from __future__ import annotations

import os
import ssl

__all__ = ["tls_contexts"]


def tls_contexts(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    ca: str | os.PathLike[str],
    *,
    check_hostname: bool = False,
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Build the server and client contexts for mutual TLS inside a cluster.

    Both sides present `cert` and require the other's certificate to be signed by `ca`
    (TLS 1.2 or newer). Node addresses are usually IPs, and the cluster CA signs only cluster
    members, so host names are not checked by default; pass ``check_hostname=True`` when the
    certificates name the hosts the peers are dialled by.

    Returns:
        ``(server_context, client_context)`` for
        [`TcpTransport`][dynamo_core.aio.TcpTransport] (and the client context for
        [`Client`][dynamo_core.aio.Client]).

    Raises:
        OSError, ssl.SSLError: a file is missing or not a valid PEM certificate or key.
    """
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.fspath(ca))
    server.load_cert_chain(os.fspath(cert), os.fspath(key))
    server.verify_mode = ssl.CERT_REQUIRED
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(ca))
    client.load_cert_chain(os.fspath(cert), os.fspath(key))
    client.check_hostname = check_hostname
    client.verify_mode = ssl.CERT_REQUIRED
    client.minimum_version = ssl.TLSVersion.TLSv1_2
    return server, client
