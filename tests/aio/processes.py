"""Helpers for tests that run ``dynamo-core serve`` as a process."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM a serve process; check it stopped cleanly (exit 0); return its output."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out
