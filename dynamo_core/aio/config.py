"""The cluster file: one TOML file that every node and client of a cluster shares.

```toml
cluster = "carts"                 # the name bound into every handshake proof
n = 3                             # replicas, read and write quorums, ring partitions
r = 2
w = 2
partitions = 64
strict = false
members = ["A", "B", "C"]         # the first ring (default: every node below)

[nodes]                           # every node that is or may become a member: id = "host:port"
A = "10.0.0.1:7001"
B = "10.0.0.2:7001"
C = "10.0.0.3:7001"
D = "10.0.0.4:7001"               # a spare: `dynamo-core admin join D` (or `replace C D`)

[security]                        # paths are relative to this file
secret_file = "node.secret"       # nodes only
client_secret_file = "client.secret"
tls_ca = "pki/ca.pem"
tls_cert = "pki/node-{id}.pem"    # {id}: the node's own id
tls_key = "pki/node-{id}.key"
```

``dynamo-core serve --config FILE --id A`` takes its address, peers, ring, quorum and security
from it; ``put``, ``get`` and ``stats`` take the node addresses, the cluster name, the client
secret and the CA; ``admin`` the node addresses, the cluster name, the node secret and the
CA. Every node also sends a [summary][dynamo_core.aio.config.config_summary] of its
configuration in its handshake, and nodes whose summaries differ refuse each other, naming
the difference in both logs.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from dynamo_core._check import check_node_id
from dynamo_core.aio.auth import ConfigSummary

__all__ = ["ClusterFile", "config_summary", "load_cluster_file"]

_TOP: Final = frozenset(
    {"cluster", "n", "r", "w", "partitions", "strict", "members", "nodes", "security"}
)
_SECURITY: Final = frozenset({"secret_file", "client_secret_file", "tls_ca", "tls_cert", "tls_key"})


@attrs.frozen
class ClusterFile:
    """A loaded cluster file (see the module docs for the format).

    Attributes:
        cluster: The cluster name.
        nodes: ``(id, "host:port")`` for every node, sorted by id.
        n: Replicas per key.
        r: Read quorum.
        w: Write quorum.
        partitions: Ring partitions.
        strict: Strict quorum.
        secret_file: The node secret's file, or `None`.
        client_secret_file: The client secret's file, or `None`.
        tls_ca: The CA certificate, or `None`.
        tls_cert: The node certificate, ``{id}`` standing for the node's id, or `None`.
        tls_key: The node key, likewise, or `None`.
        members: The first ring's members (sorted), or `None` for every node of `nodes`.
    """

    cluster: str
    nodes: tuple[tuple[str, str], ...]
    n: int = 3
    r: int = 2
    w: int = 2
    partitions: int = 64
    strict: bool = False
    secret_file: Path | None = None
    client_secret_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    members: tuple[str, ...] | None = None

    def address(self, node: str) -> str:
        """The address of `node`.

        Raises:
            ValueError: the file does not name `node`.
        """
        for name, address in self.nodes:
            if name == node:
                return address
        raise ValueError(f"the cluster file names no node {node!r:.80}")

    def node_file(self, template: str | None, node: str) -> str | None:
        """`template` (``tls_cert`` or ``tls_key``) for `node`."""
        return None if template is None else template.replace("{id}", node)


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if type(value) is not int or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r:.40}")
    return value


def load_cluster_file(path: str | Path) -> ClusterFile:
    """Read and check a cluster file.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid TOML, has an unknown key, or a value of the wrong type
            (the message names the key).
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: not a valid TOML file: {exc}") from None
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ValueError(f"{file}: unknown keys {unknown}; allowed: {sorted(_TOP)}")
    nodes = data.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        raise ValueError(f'{file}: [nodes] must list every node as ID = "HOST:PORT"')
    for node, address in nodes.items():
        check_node_id(node, "nodes key")
        if not isinstance(address, str):
            raise ValueError(f"{file}: nodes.{node} must be a 'HOST:PORT' string")
    members = data.get("members")
    if members is not None:
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ValueError(f"{file}: members must be a list of node ids")
        strangers = sorted(set(members) - set(nodes))
        if strangers or not members:
            raise ValueError(f"{file}: members must name nodes of [nodes], not {strangers}")
    security = data.get("security", {})
    if not isinstance(security, dict) or set(security) - _SECURITY:
        raise ValueError(f"{file}: [security] keys must be among {sorted(_SECURITY)}")
    for key, value in security.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{file}: security.{key} must be a non-empty path string")
    strict = data.get("strict", False)
    if type(strict) is not bool:
        raise ValueError(f"{file}: strict must be true or false")
    base = file.parent

    def at(key: str) -> Path | None:
        return None if key not in security else base / security[key]

    def template(key: str) -> str | None:
        return None if key not in security else str(base / security[key])

    return ClusterFile(
        cluster=check_node_id(data.get("cluster", "dynamo-core"), "cluster"),
        nodes=tuple(sorted(nodes.items())),
        n=_int(data, "n", 3),
        r=_int(data, "r", 2),
        w=_int(data, "w", 2),
        partitions=_int(data, "partitions", 64),
        strict=strict,
        secret_file=at("secret_file"),
        client_secret_file=at("client_secret_file"),
        tls_ca=at("tls_ca"),
        tls_cert=template("tls_cert"),
        tls_key=template("tls_key"),
        members=None if members is None else tuple(sorted(set(members))),
    )


def config_summary(
    *,
    nodes: Iterable[str],
    n: int,
    r: int,
    w: int,
    partitions: int,
    strict: bool,
    security: str,
) -> ConfigSummary:
    """What nodes of one cluster must agree on, to send in the handshake.

    The node set goes as a short digest of the sorted ids (strangers learn no member names).

    Args:
        nodes: Every node id of the cluster, this one included.
        n: Replicas per key.
        r: Read quorum.
        w: Write quorum.
        partitions: Ring partitions.
        strict: Strict quorum.
        security: ``"none"``, ``"secret"``, ``"tls"`` or ``"secret+tls"``.
    """
    digest = hashlib.sha256("\n".join(sorted(nodes)).encode("utf-8")).hexdigest()[:16]
    items = {
        "n": str(n),
        "r": str(r),
        "w": str(w),
        "partitions": str(partitions),
        "quorum": "strict" if strict else "sloppy",
        "nodes": digest,
        "security": security,
    }
    return tuple(sorted(items.items()))
