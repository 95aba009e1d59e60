"""Certificate identities, and the certificate script of the docs run for real."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dynamo_core.aio.auth import Certified
from dynamo_core.aio.tls import certificate_identity, certified, identity_uri, tls_contexts

SCRIPT = Path(__file__).parent.parent.parent / "examples" / "issue_certs.sh"


def cert(*uris: str, **extra: Any) -> dict[str, Any]:
    return {"subjectAltName": tuple(("URI", u) for u in uris), **extra}


@pytest.mark.parametrize(
    ("peercert", "identity"),
    [
        (cert("dynamo-core://node/A"), ("node", "A")),
        (cert("dynamo-core://client/ops"), ("client", "ops")),
        (cert("dynamo-core://node/caf%C3%A9"), ("node", "café")),
        (cert("https://example.com", "dynamo-core://node/B"), ("node", "B")),  # others ignored
        (cert("dynamo-core://node/A", "dynamo-core://node/B"), None),  # two identities: none
        (cert("dynamo-core://admin/ops"), ("admin", "ops")),
        (cert("dynamo-core://root/A"), None),  # no such role
        (cert("dynamo-core://node/"), None),  # empty id
        (cert("dynamo-core://node/%ED%A0%80"), None),  # not UTF-8
        (cert("dynamo-core://node"), None),
        ({"subject": ((("commonName", "node-A"),),)}, None),  # a CN is not an identity
        ({}, None),
        (None, None),
    ],
)
def test_certificate_identity(peercert: dict[str, Any] | None, identity: object) -> None:
    assert certificate_identity(peercert) == identity


def test_identity_uri() -> None:
    assert identity_uri("node", "A") == "dynamo-core://node/A"
    assert identity_uri("admin", "ops") == "dynamo-core://admin/ops"
    with pytest.raises(ValueError, match="role"):
        identity_uri("root", "A")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        identity_uri("client", "")
    with pytest.raises(TypeError, match="ssl_object"):
        certified(object())


def test_the_documented_script_issues_certificates_nodes_accept(tmp_path: Path, run: Any) -> None:
    def issue(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(SCRIPT), str(tmp_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    assert issue("ca").returncode == 0
    assert issue("node", "A", "127.0.0.1").returncode == 0
    assert issue("client", "ops").returncode == 0
    refused = issue("node", "a b")
    assert refused.returncode == 2 and "letters, digits" in refused.stderr
    assert (tmp_path / "node-A.key").stat().st_mode & 0o077 == 0  # keys are owner-only
    server, _ = tls_contexts(tmp_path / "node-A.pem", tmp_path / "node-A.key", tmp_path / "ca.pem")
    _, client = tls_contexts(
        tmp_path / "client-ops.pem", tmp_path / "client-ops.key", tmp_path / "ca.pem"
    )
    seen: list[Certified] = []

    async def main() -> Certified:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(certified(writer.get_extra_info("ssl_object")))
            writer.close()

        listener = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=server)
        async with listener:
            port = listener.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            mine = certified(writer.get_extra_info("ssl_object"))
            await reader.read()
            writer.close()
            return mine

    at_client = run(main())
    assert at_client.identity == ("node", "A")
    assert seen[0].identity == ("client", "ops")
    assert at_client.binding and at_client.binding == seen[0].binding  # one TLS channel
