"""Gray failure (finding 5): a node paused with SIGSTOP must not take the cluster's writes down.

Three real ``dynamo-core serve`` processes, N=3 R=2 W=2. A client writes as fast as it can
for a few seconds, then one node is stopped with SIGSTOP for 10 s (it keeps its sockets
open: connections succeed, nothing answers). Coordinators need only two answers, and the client
tries a node that timed out last for a while, so after the first second or two the write rate
must stay at least half the unpaused one. The figures are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynamo_core.aio import Client, ClientError

IDS = ("A", "B", "C")
WRITERS = 4


def start_cluster(tmp_path: Path, ports: dict[str, int]) -> dict[str, subprocess.Popen[str]]:
    procs = {}
    for node in IDS:
        peers = ",".join(f"{p}=127.0.0.1:{ports[p]}" for p in IDS if p != node)
        procs[node] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynamo_core",
                "serve",
                "--id",
                node,
                "--listen",
                f"127.0.0.1:{ports[node]}",
                "--peers",
                peers,
                "--data",
                str(tmp_path / node),
                "--partitions",
                "16",
                "--heartbeat",
                "0.2",
                "--request-timeout",
                "0.5",
                "--sync",
                "normal",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for node, proc in procs.items():
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, f"{node}: {line}"
    return procs


async def write_rates(addresses: list[tuple[str, int]], pause: Callable[[], None]) -> Any:
    """Writes per second before the pause, and during it after its first two seconds."""
    acked: list[float] = []
    stop = asyncio.Event()
    async with Client(addresses, timeout=1.0, seed=7) as client:

        async def writer(w: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    await client.put(f"w{w}-{n}", b"v")
                except ClientError:
                    continue
                acked.append(time.monotonic())

        tasks = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
        await asyncio.sleep(1.0)  # connections open, detectors warm
        t0 = time.monotonic()
        await asyncio.sleep(3.0)
        t1 = time.monotonic()
        pause()
        await asyncio.sleep(10.0)
        t2 = time.monotonic()
        stop.set()
        await asyncio.gather(*tasks)
    before = sum(1 for t in acked if t0 <= t < t1) / (t1 - t0)
    during = sum(1 for t in acked if t1 + 2.0 <= t < t2) / (t2 - t1 - 2.0)
    first = sum(1 for t in acked if t1 <= t < t1 + 2.0) / 2.0
    return before, first, during


def test_a_paused_node_costs_at_most_half_the_write_rate(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    ports = {node: free_port() for node in IDS}
    procs = start_cluster(tmp_path, ports)
    try:
        addresses = [("127.0.0.1", ports[n]) for n in IDS]
        victim = procs["C"]
        before, first, during = asyncio.run(
            write_rates(addresses, lambda: victim.send_signal(signal.SIGSTOP))
        )
        victim.send_signal(signal.SIGCONT)
        print(
            f"\nN=3 W=2 writes/s: unpaused {before:.0f}; one node of 3 paused: "
            f"{first:.0f} in the first 2 s, {during:.0f} after ({during / before:.0%})"
        )
        assert before > 0
        assert during >= 0.5 * before
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.communicate(timeout=30)
