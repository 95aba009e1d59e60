"""Shared helpers for the asyncio runtime tests: every socket is on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
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


def free_port() -> int:
    """A port that was free a moment ago (bound to port 0 on 127.0.0.1, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
