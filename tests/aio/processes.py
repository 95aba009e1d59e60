"""Helpers for tests that run ``dynamo-core serve`` as a process."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM a serve process; check it stopped cleanly (exit 0); return its output."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


N1 = ("--n", "1", "--r", "1", "--w", "1")


def serve(
    data: Path,
    port: int,
    *extra: str,
    max_files: int | None = None,
    node: str = "A",
    peers: str = "B=127.0.0.1:1",
    placement: tuple[str, ...] = N1,
) -> subprocess.Popen[str]:
    """Start `node` (default: A, N=1, peer B never up) with `extra` options, once listening."""

    def limit() -> None:  # pragma: no cover - runs in the child
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    argv = [sys.executable, "-m", "dynamo_core", "serve", "--id", node, "--data", str(data)]
    argv += ["--listen", f"127.0.0.1:{port}", "--peers", peers, "--sync", "normal"]
    argv += [*placement, "--partitions", "8", "--heartbeat", "0.2", *extra]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit,  # noqa: PLW1509 - setrlimit only, before any thread runs in the child
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in line, line + proc.stdout.read()
    return proc
