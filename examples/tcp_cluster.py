"""A real 5-node cluster on loopback: crash a node mid-run, lose no acknowledged write.

Starts five ``dynamo-core serve`` processes (SQLite storage in a temporary directory, N=3,
R=2, W=2, sloppy quorum) and runs a shopping-cart workload through `dynamo_core.aio.Client`:
each step reads a cart, merges its siblings (set union), adds one unique item and writes the
cart back with the context it read. Mid-run one node is killed with SIGKILL; the writes go on
(fallbacks take them with hints), the node is restarted on its data, hints are handed off and
anti-entropy runs. Then every cart is read through every node and every acknowledged add is
checked with `SetHistory` (Jepsen's set-full check). Exit status 0 only if nothing acknowledged
was lost; the last line printed is a JSON summary.

Run it: ``python examples/tcp_cluster.py`` (about 20 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dynamo_core import codec
from dynamo_core.aio import Client, ClientError
from dynamo_core.testing import SetHistory

NODES = ("A", "B", "C", "D", "E")
VICTIM = "C"
CARTS = 8
WORKERS = 4
MAX_OPS = 1500
PAUSE = 0.05  # seconds between a worker's cycles: spread the load over the crash
TIMINGS = ["--heartbeat", "0.2", "--anti-entropy", "1", "--request-timeout", "0.5"]


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (bound to port 0, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """The node processes; every one of them is killed on the way out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = dict(zip(NODES, free_ports(len(NODES)), strict=True))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def address(self, node: str) -> str:
        """The node's ``host:port``."""
        return f"127.0.0.1:{self.ports[node]}"

    def start(self, node: str) -> None:
        """Start (or restart, on the same data) one node process."""
        peers = ",".join(f"{p}={self.address(p)}" for p in NODES if p != node)
        argv = [
            sys.executable, "-m", "dynamo_core", "serve", "--id", node,
            "--listen", self.address(node), "--peers", peers,
            "--data", str(self.root / node), "--partitions", "32", "--sync", "normal",
            *TIMINGS,
        ]  # fmt: skip
        log = (self.root / f"{node}.log").open("ab")
        self.procs[node] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, node: str) -> None:
        """SIGKILL a node: no clean shutdown, its volatile state is gone."""
        proc = self.procs[node]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        """SIGTERM every node still running (a clean shutdown); SIGKILL stragglers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check_alive(self) -> None:
        """Raise if a node died that was not killed on purpose."""
        for node, proc in self.procs.items():
            if proc.poll() is not None and not (node == VICTIM and proc.returncode < 0):
                log = (self.root / f"{node}.log").read_text(errors="replace")
                raise RuntimeError(f"node {node} exited with {proc.returncode}:\n{log[-2000:]}")


async def wait_ready(cluster: Cluster, nodes: tuple[str, ...], timeout: float = 30.0) -> None:
    """Wait until each node answers and is connected to every other node."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        async with Client([cluster.address(node)], timeout=1.0) as client:
            while True:
                cluster.check_alive()
                try:
                    _, stats = await client.stats()
                    if stats["transport_peers_up"] == len(NODES) - 1:
                        break
                except ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {node} did not become ready")
                await asyncio.sleep(0.1)


def decode_cart(value: bytes) -> set[str]:
    items = codec.as_list(codec.loads(value), "cart")
    return {codec.as_str(item, "cart item") for item in items}


def encode_cart(items: set[str]) -> bytes:
    value: list[codec.JSONValue] = [*sorted(items)]
    return codec.dumps(value)


class Run:
    """What the workers share: the history, latencies and counters."""

    def __init__(self) -> None:
        self.history: SetHistory[str, str] = SetHistory()
        self.latencies: list[float] = []
        self.counts = {"ops": 0, "failed": 0}
        self.stop = asyncio.Event()


async def worker(wid: int, client: Client, state: Run) -> None:
    """Read-modify-write random carts until told to stop."""
    rng = random.Random(wid)
    seq = 0
    history, latencies, counts = state.history, state.latencies, state.counts
    while not state.stop.is_set() and counts["ops"] < MAX_OPS:
        await asyncio.sleep(PAUSE)
        counts["ops"] += 1
        cart = f"cart:{rng.randrange(CARTS)}"
        started = time.perf_counter()
        try:
            values, context = await client.get(cart)
        except ClientError:
            counts["failed"] += 1
            continue
        latencies.append(time.perf_counter() - started)
        items = set().union(*(decode_cart(v) for v in values))
        seq += 1
        item = f"w{wid}.{seq}"
        op = history.invoke(cart, item)
        started = time.perf_counter()
        try:
            await client.put(cart, encode_cart(items | {item}), context)
        except ClientError:
            counts["failed"] += 1  # unacknowledged: it may or may not survive
            continue
        latencies.append(time.perf_counter() - started)
        history.ok(op)


async def final_carts(cluster: Cluster) -> tuple[dict[str, set[str]], int]:
    """Read every cart through every node; an item counts only if every read has it."""
    final: dict[str, set[str]] = {}
    divergent = 0
    for i in range(CARTS):
        cart = f"cart:{i}"
        seen: list[set[str]] = []
        for node in NODES:
            async with Client([cluster.address(node)], timeout=5.0, retries=0) as client:
                values, _ = await client.get(cart)
            seen.append(set().union(*(decode_cart(v) for v in values)))
        divergent += sum(1 for s in seen if s != seen[0])
        final[cart] = set.intersection(*seen)
    return final, divergent


async def node_stats(cluster: Cluster) -> dict[str, dict[str, int]]:
    out = {}
    for node in NODES:
        async with Client([cluster.address(node)], timeout=5.0, retries=0) as client:
            _, out[node] = await client.stats()
    return out


async def run(cluster: Cluster) -> dict[str, object]:
    began = time.monotonic()
    for node in NODES:
        cluster.start(node)
    await wait_ready(cluster, NODES)
    print(f"5 nodes up on {', '.join(cluster.address(n) for n in NODES)}", flush=True)

    state = Run()
    counts = state.counts
    addresses = [cluster.address(n) for n in NODES]
    async with Client(addresses, timeout=2.0, seed=1) as client:
        workers = [asyncio.create_task(worker(w, client, state)) for w in range(WORKERS)]
        await asyncio.sleep(2.0)
        cluster.kill(VICTIM)
        print(f"SIGKILLed node {VICTIM} after {counts['ops']} ops; writing on", flush=True)
        await asyncio.sleep(4.0)
        cluster.start(VICTIM)
        await wait_ready(cluster, (VICTIM,))
        print(f"restarted node {VICTIM} after {counts['ops']} ops", flush=True)
        await asyncio.sleep(2.0)
        state.stop.set()
        await asyncio.gather(*workers)
    print(f"workload done: {counts['ops']} read-modify-write cycles", flush=True)

    deadline = time.monotonic() + 40
    while True:  # hinted handoff: every fallback hands its hints back
        stats = await node_stats(cluster)
        pending = sum(s["hints_pending"] for s in stats.values())
        if pending == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(3.0)  # a few anti-entropy rounds (1 s each)
    final, divergent = await final_carts(cluster)
    stats = await node_stats(cluster)
    check = state.history.check(final)
    ms = sorted(x * 1000 for x in state.latencies)
    return {
        **check.summary(),
        "ops": counts["ops"],
        "failed_requests": counts["failed"],
        "hints_stored": sum(s["hints_stored"] for s in stats.values()),
        "hints_delivered": sum(s["hints_delivered"] for s in stats.values()),
        "hints_pending": pending,
        "keys_repaired": sum(s["keys_pushed"] + s["keys_pulled"] for s in stats.values()),
        "divergent_reads": divergent,
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2) if ms else None,
        "killed": VICTIM,
        "wall_s": round(time.monotonic() - began, 1),
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dynamo-tcp-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            summary = asyncio.run(run(cluster))
        except BaseException:
            for node in NODES:
                log = Path(tmp) / f"{node}.log"
                if log.exists():
                    print(
                        f"--- {node}.log ---\n{log.read_text(errors='replace')[-1500:]}",
                        file=sys.stderr,
                    )
            raise
        finally:
            cluster.stop_all()
    ok = summary["lost"] == 0 and summary["unexpected"] == 0
    print("no acknowledged write lost" if ok else "ACKNOWLEDGED WRITES LOST", flush=True)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
