"""Kill a writer process with SIGKILL in the middle of its work: the core of every crash test.

A backend that claims durability must keep every write it acknowledged when the process dies.
The honest test kills a real process: a child runs a writer script that prints a line for each
operation *after* the call returned (its acknowledgement); the parent reads those lines and sends
SIGKILL at a random moment, usually inside a later operation. The test then reopens the store and
checks it against the acknowledged lines. [`kill_during`][dynamo_core.testing.kill_during] is
the parent's half; the checks are the test's own.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from dynamo_core._check import check_positive_float

__all__ = ["kill_during"]


def _always(_: str) -> bool:
    return True


def kill_during(
    script: str,
    *args: str,
    after: int,
    seed: int | str = 0,
    acknowledges: Callable[[str], bool] = _always,
    jitter: float = 0.005,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Run ``python -c script *args``, SIGKILL it after `after` acknowledgements, return its lines.

    The child must print one line per acknowledged operation and flush after each. Once `after`
    lines for which ``acknowledges(line)`` holds have been read, the parent waits a random
    ``0 .. jitter`` seconds (drawn from ``random.Random(seed)``, so a seed picks the same kill
    point again, up to scheduling) to land inside a later operation, and kills the child. Lines
    already in the pipe when it died are returned too: they were acknowledged before the kill.

    Args:
        script: Python source of the writer.
        *args: Its command-line arguments (``sys.argv[1:]``).
        after: Acknowledgements to read before the kill, ``>= 0``.
        seed: Seeds the kill delay.
        acknowledges: Which lines count towards `after` (default: every line); a writer can
            print an "about to" line before each call and an acknowledgement after it.
        jitter: The most seconds to wait after the `after`-th acknowledgement, ``> 0``.
        env: The child's environment (default: this process's).

    Returns:
        Every non-empty line the child printed, stripped, in order.

    Raises:
        TypeError, ValueError: `after` is not a non-negative int or `jitter` not a positive
            number.
        RuntimeError: The child exited on its own before `after` acknowledgements, or was not
            killed by the SIGKILL (the message carries its exit status and stderr).
    """
    if type(after) is not int:
        raise TypeError(f"after must be an int, not {type(after).__name__}")
    if after < 0:
        raise ValueError(f"after must be >= 0, got {after}")
    delay = check_positive_float(jitter, "jitter") * random.Random(seed).random()  # noqa: S311 - not crypto
    child = subprocess.Popen(  # noqa: S603 - the caller's own test script
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
    assert child.stdout is not None
    assert child.stderr is not None
    lines: list[str] = []
    try:
        seen = 0
        while seen < after:
            line = child.stdout.readline()
            if not line:
                child.wait()
                raise RuntimeError(
                    f"the writer exited with status {child.returncode} after {seen} of {after} "
                    f"acknowledgements: {child.stderr.read().strip()}"
                )
            line = line.strip()
            if line:
                lines.append(line)
                seen += acknowledges(line)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        lines += [line.strip() for line in child.stdout if line.strip()]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        stderr = child.stderr.read()
        child.stderr.close()
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(
            f"the writer was not killed by SIGKILL (status {child.returncode}): {stderr.strip()}"
        )
    return lines
