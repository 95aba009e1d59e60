"""Shared helpers for the asyncio runtime tests: every socket is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

CERTS = Path(__file__).parent / "certs"


def _run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture
def run() -> Callable[..., Any]:
    """Run a coroutine to completion in a fresh event loop, with a generous timeout."""
    return _run


@pytest.fixture
def certs() -> Path:
    """The throwaway test certificates: one per node A, B, C, ``client-ops``, and a rogue CA's
    ``rogue/node-A`` (see certs/gen.sh)."""
    return CERTS


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Ports below the kernel's ephemeral range: port 0 would hand out a port from that range, where
# any outgoing connection on the machine may take it as its local port before the test's
# server binds it ("Address already in use"). Each xdist worker gets its own band, starting at
# a random offset so that two test runs at once rarely meet.
_BAND = 1000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_FIRST = 10_000 + _WORKER % max(1, (_ephemeral_low() - 10_000) // _BAND) * _BAND
_tried = itertools.count(random.randrange(_BAND))


def free_port() -> int:
    """A port below the ephemeral range that was free a moment ago on 127.0.0.1."""
    for _ in range(_BAND):
        port = _FIRST + next(_tried) % _BAND
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_FIRST}..{_FIRST + _BAND - 1}")


async def eventually(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Wait until `predicate()` holds (polled every 10 ms), or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(name="free_port")
def _free_port_fixture() -> Callable[[], int]:
    """See `free_port`."""
    return free_port


@pytest.fixture(name="eventually")
def _eventually_fixture() -> Callable[..., Coroutine[Any, Any, None]]:
    """See `eventually`."""
    return eventually
