"""Mutual TLS for a cluster with its own certificate authority, and certificate identities.

Every certificate the cluster CA signs names one identity in its subjectAltName, as a URI:

* ``dynamo-core://node/ID`` — the node whose id is ``ID``;
* ``dynamo-core://client/NAME`` — a client (``NAME`` is for your logs and revocation lists);
* ``dynamo-core://admin/NAME`` — an operator allowed to change membership (``dynamo-core
  admin``); admins also prove the node secret when the cluster has one.

A node accepts a connection in the node role only with the certificate of the very node it
claims to be, accepts the admin role only with an admin certificate, and dials a peer only if
the certificate presented names the node it meant to reach; a client certificate never passes
for a node or an admin. `examples/issue_certs.sh` issues such
certificates with ``openssl`` (see [Securing a cluster](../how-to/security.md)).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

from dynamo_core._check import check_node_id
from dynamo_core.aio.auth import Certified, Role

__all__ = ["URI_SCHEME", "certificate_identity", "certified", "identity_uri", "tls_contexts"]

URI_SCHEME: Final = "dynamo-core"
"""The scheme of the identity URIs in certificates."""

_ROLES: Final[tuple[Role, ...]] = ("node", "client", "admin")


def identity_uri(role: Role, name: str) -> str:
    """Return the subjectAltName URI naming `name` in `role`, e.g. ``dynamo-core://node/A``.

    Raises:
        ValueError: `role` is not ``"node"``, ``"client"`` or ``"admin"``, or `name` is not a
            valid id.
    """
    if role not in _ROLES:
        raise ValueError(f"role must be 'node', 'client' or 'admin', got {role!r:.40}")
    return f"{URI_SCHEME}://{role}/{check_node_id(name, 'name')}"


def certificate_identity(peercert: Mapping[str, object] | None) -> tuple[Role, str] | None:
    """Return ``(role, name)`` from a certificate's ``dynamo-core://`` URI, or `None`.

    Args:
        peercert: What `ssl.SSLSocket.getpeercert` returns.

    Returns:
        The identity, or `None` when the certificate names no identity, names more than one,
        or names one that is not a valid id.
    """
    if not peercert:
        return None
    sans = peercert.get("subjectAltName", ())
    found: list[tuple[Role, str]] = []
    prefix = f"{URI_SCHEME}://"
    for entry in sans if isinstance(sans, tuple) else ():
        if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "URI"):
            continue
        uri = entry[1]
        if not isinstance(uri, str) or not uri.startswith(prefix):
            continue
        role, sep, name = uri[len(prefix) :].partition("/")
        for known in _ROLES:
            if role == known and sep:
                try:
                    found.append((known, check_node_id(unquote(name, errors="strict"), "name")))
                except (TypeError, ValueError):
                    return None
    return found[0] if len(found) == 1 else None


def certified(ssl_object: object) -> Certified:
    """What a finished TLS handshake established: the peer's identity and the channel binding.

    Args:
        ssl_object: The connection's `ssl.SSLObject` (``writer.get_extra_info("ssl_object")``).

    Raises:
        TypeError: `ssl_object` is not an `ssl.SSLObject` or `ssl.SSLSocket`.
    """
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        raise TypeError(f"ssl_object must be an ssl.SSLObject, not {type(ssl_object).__name__}")
    binding = ssl_object.get_channel_binding("tls-unique") or b""
    return Certified(certificate_identity(ssl_object.getpeercert()), binding)


def tls_contexts(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    ca: str | os.PathLike[str],
    *,
    check_hostname: bool = False,
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Build the server and client contexts for mutual TLS inside a cluster.

    Both sides present `cert` and require the other's certificate to be signed by `ca`
    (TLS 1.2 or newer). The identity that counts is the ``dynamo-core://`` URI in the
    certificate, checked by the handshake; host names are not checked by default (node
    addresses are usually IPs); pass ``check_hostname=True`` when the certificates also name
    the hosts the peers are dialled by.

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
