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
        assert main(["stats", "--json", *nodes]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["node"] == "A"
        assert stats["stats"]["client_puts"] == 2
        assert main(["stats", *nodes]) == 0  # for people: a table, one counter a line
        table = capsys.readouterr().out.splitlines()
        assert table[0] == "node A"
        assert any(line.split() == ["client_puts", "2"] for line in table)
        assert len(table) == len(stats["stats"]) + 1
        # Without the secret the node refuses the client.
        assert main(["get", "cart", "--nodes", f"127.0.0.1:{port}", "--timeout", "2"]) == 1
        assert "1 attempt failed" in capsys.readouterr().err
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
        (["--listen", "localhost"], "--listen must be 'host:port', got 'localhost'"),
        (["--listen", "127.0.0.1:99999"], "--listen port must be an int in 0..65535"),
        (["--listen", "127.0.0.1:http"], "--listen must be 'host:port'"),
        (["--data", "/etc/passwd"], "--data must be a directory"),
        (["--n", "1", "--r", "1", "--w", "1", "--max-frame", "0"], "max_frame"),
        (["--n", "1", "--r", "1", "--w", "1", "--heartbeat", "0"], "heartbeat"),
        (["--n", "1", "--r", "1", "--w", "1", "--request-timeout", "-1"], "request_timeout"),
    ],
)
def test_serve_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    data = tmp_path / "node"
    base = ["serve", "--id", "A", "--listen", "127.0.0.1:0", "--data", str(data)]
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("dynamo-core serve: error: ")
    assert not data.exists()  # a failed start creates nothing


def test_a_failed_start_leaves_an_existing_data_directory_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "incarnation").write_text("7\n")
    argv = ["serve", "--id", "A", "--listen", "127.0.0.1:1", "--data", str(tmp_path)]
    assert main([*argv, "--n", "3"]) == 2  # one node cannot hold 3 replicas
    assert (tmp_path / "incarnation").read_text() == "7\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incarnation"]
    capsys.readouterr()


def test_serve_reports_a_taken_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "node"
        argv = ["serve", "--id", "A", "--listen", f"127.0.0.1:{port}", "--data", str(data)]
        argv += ["--n", "1", "--r", "1", "--w", "1"]
        assert main(argv) == 1
    assert "cannot listen on" in capsys.readouterr().err
    assert not data.exists()  # no directory, no incarnation bump


@pytest.mark.parametrize("timeout", ["0", "-1", "inf", "nan", "soon"])
def test_client_timeouts_must_be_positive_seconds(timeout: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynamo_core",
            "stats",
            "--nodes",
            "127.0.0.1:1",
            "--timeout",
            timeout,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--timeout: must be a number of seconds" in result.stderr
    assert not result.stdout


def test_client_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "k", "--nodes", ","]) == 2
    assert "at least one" in capsys.readouterr().err
    assert main(["put", "k", "v", "--nodes", "127.0.0.1:1", "--context", "%%%"]) == 2
    assert "--context" in capsys.readouterr().err
