"""`dynamo-core serve` as a process, `put` / `get` / `stats` against it, SIGTERM and restart."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aio.processes import stop
from dynamo_core.cli import main


def start(data: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynamo_core",
            "serve",
            "--id",
            "A",
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(data),
            "--n",
            "1",
            "--r",
            "1",
            "--w",
            "1",
            "--partitions",
            "8",
            "--sync",
            "normal",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the node listens (or dies)
    assert f"listening on 127.0.0.1:{port}" in line, line + proc.stdout.read()
    return proc


def test_serve_put_get_stats_and_restart(
    tmp_path: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    secret, clients = tmp_path / "secret", tmp_path / "clients"
    assert main(["secret", "--out", str(secret)]) == 0
    assert main(["secret", "--out", str(clients)]) == 0
    keys = ["--secret-file", str(secret), "--client-secret-file", str(clients)]
    data = tmp_path / "a"
    nodes = ["--nodes", f"127.0.0.1:{port}", "--secret-file", str(clients)]
    proc = start(data, port, *keys)
    try:
        assert main(["put", "cart", "apple", *nodes]) == 0
        assert "stored on A" in capsys.readouterr().out
        assert main(["get", "cart", "--json", *nodes]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["values"] == ["apple"]
        assert main(["put", "cart", "apple,pear", "--context", got["context"], *nodes]) == 0
        capsys.readouterr()
        assert main(["get", "cart", *nodes]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "apple,pear"
        assert main(["stats", *nodes]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["node"] == "A"
        assert stats["stats"]["client_puts"] == 2
        # Without the secret the node refuses the client.
        assert main(["get", "cart", "--nodes", f"127.0.0.1:{port}", "--timeout", "2"]) == 1
        assert "attempts failed" in capsys.readouterr().err
    finally:
        out = stop(proc)
    assert "node A stopped" in out
    assert (data / "incarnation").read_text().strip() == "0"
    proc = start(data, port, *keys)  # same data: a new incarnation
    try:
        assert main(["get", "cart", *nodes]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "apple,pear"
    finally:
        stop(proc)
    assert (data / "incarnation").read_text().strip() == "1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peers", "B"], "ID=HOST:PORT"),
        (["--peers", "A=127.0.0.1:1"], "must not name this node"),
        (["--tls-cert", "x.pem"], "go together"),
        (["--secret-file", "/nonexistent/secret"], "--secret-file: [Errno 2]"),
        (["--peers", "B=127.0.0.1:1", "--n", "3"], "more than the 2 nodes"),
        (["--n", "1", "--r", "1", "--w", "2"], "w must be in 1..n=1"),
        (["--n", "1", "--r", "1", "--w", "1", "--partitions", "3"], "partitions"),
    ],
)
def test_serve_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    base = ["serve", "--id", "A", "--listen", "127.0.0.1:0", "--data", str(tmp_path)]
    assert main([*base, *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_reports_a_taken_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--id", "A", "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path)]
        argv += ["--n", "1", "--r", "1", "--w", "1"]
        assert main(argv) == 1
    assert "cannot listen on" in capsys.readouterr().err


def test_client_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "k", "--nodes", ","]) == 2
    assert "at least one" in capsys.readouterr().err
    assert main(["put", "k", "v", "--nodes", "127.0.0.1:1", "--context", "%%%"]) == 2
    assert "--context" in capsys.readouterr().err
