"""The asyncio runtime: put and get through `Client` on a 3-node TCP cluster, against a floor.

Everything runs on loopback in one process and one event loop: three `Node`s served by `serve`
on `TcpTransport`s (N=3, R=2, W=2, `MemoryStorage`), and one `Client`. Each node is a primary
of every key (3 nodes, N=3), so there is no forwarding: a put is the client's round trip to a
coordinator plus the coordinator's round trips to two replicas, of which it waits for one
(W=2 counts its own write); a get likewise with R=2.

The floor does the same message pattern with no node logic: three asyncio servers speaking the
same length-prefixed frames; a "coordinator" receives the client's frame, sends a frame of the
size of a replica request to each of the two others, waits for the first W-1 (or R-1) replies
and answers the client. Its latency is what the round trips alone cost on this machine.

Latencies are measured one request at a time (p50/p99/p99.9); throughput with 32 requests in
flight. Node and floor blocks alternate (round-robin) so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from benchmarks.harness import Group
from dynamo_core import HashRing, MemoryStorage, Node, NodeConfig, QuorumPolicy
from dynamo_core.aio import Client, TcpTransport, serve
from dynamo_core.aio.framing import FrameDecoder, encode_frame

IDS = ("A", "B", "C")
VALUE = b"x" * 100
CONFIG = NodeConfig(request_timeout=5.0, anti_entropy_interval=3600.0)
# Frame sizes of the floor, close to the real encodings of a put with a 100-byte value.
CLIENT_FRAME = 220
REPLICA_FRAME = 420
ACK_FRAME = 90
REPLY_FRAME = 120


def groups(quick: bool) -> list[Group]:
    return []  # everything is in `report`: latencies are distributions, not medians of a loop


# -- the cluster -----------------------------------------------------------------------------


async def start_cluster() -> tuple[list[tuple[str, int]], Callable[[], Awaitable[None]]]:
    ring = HashRing(3, partitions=64)
    ring.add_nodes(IDS)
    transports = {
        i: TcpTransport(i, ("127.0.0.1", 0), {p: ("127.0.0.1", 1) for p in IDS if p != i})
        for i in IDS
    }
    # Ports are known once listening: start listeners first, then point peers at them.
    for t in transports.values():
        await t.start()
    addresses = {i: t.address for i, t in transports.items()}
    for t in transports.values():
        await t.close()
    stops = {i: asyncio.Event() for i in IDS}
    tasks = []
    final = {}
    for i in IDS:
        peers = {p: addresses[p] for p in IDS if p != i}
        final[i] = TcpTransport(i, addresses[i], peers, seed=1)
        node = Node(i, ring, policy=QuorumPolicy(3, 2, 2), config=CONFIG, storage=MemoryStorage())
        tasks.append(asyncio.create_task(serve(node, final[i], stop=stops[i])))
    for _ in range(1000):
        await asyncio.sleep(0.01)
        ready = [_started(t) and t.stats()["peers_up"] == 2 for t in final.values()]
        if all(ready):
            break

    async def stop() -> None:
        for event in stops.values():
            event.set()
        await asyncio.gather(*tasks)

    return [addresses[i] for i in IDS], stop


def _started(t: TcpTransport) -> bool:
    try:
        _ = t.address
    except RuntimeError:
        return False
    return True


# -- the floor -------------------------------------------------------------------------------


class FloorNode:
    """Frames in, frames out: a coordinator fans out and counts acks; a replica acknowledges.

    Callbacks only (no task per request): the least work the message pattern allows.
    """

    def __init__(self) -> None:
        self.peers: list[asyncio.StreamWriter] = []
        self.waiting: dict[int, list[object]] = {}  # op -> [acks needed, client writer, rid]
        self.ids = itertools.count()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def connect(self, addresses: list[tuple[str, int]]) -> None:
        for address in addresses:
            for _ in range(500):  # the other floor nodes may not listen yet
                try:
                    reader, writer = await asyncio.open_connection(*address)
                    break
                except OSError:
                    await asyncio.sleep(0.01)
            else:
                raise RuntimeError(f"cannot reach floor node {address}")
            self.peers.append(writer)
            self.tasks.add(asyncio.create_task(self.read_acks(reader)))

    async def close(self) -> None:
        for writer in self.peers:
            writer.close()
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def read_acks(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                op = int.from_bytes(frame[1:9], "big")
                entry = self.waiting.get(op)
                if entry is None:
                    continue
                entry[0] = int(entry[0]) - 1  # type: ignore[call-overload]
                if entry[0] == 0:
                    del self.waiting[op]
                    client, rid = entry[1], entry[2]
                    assert isinstance(client, asyncio.StreamWriter)
                    assert isinstance(rid, bytes)
                    client.write(encode_frame(rid + bytes(REPLY_FRAME - 8)))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if frame[:1] == b"R":  # a replica request: store (nothing), acknowledge
                        writer.write(encode_frame(b"A" + frame[1:9] + bytes(ACK_FRAME - 9)))
                    else:  # a client request: fan out, wait for W-1 = R-1 = 1 reply
                        op = next(self.ids)
                        self.waiting[op] = [1, writer, frame[1:9]]
                        request = encode_frame(
                            b"R" + op.to_bytes(8, "big") + bytes(REPLICA_FRAME - 9)
                        )
                        for peer in self.peers:
                            peer.write(request)
        writer.close()


class FloorClient:
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.rids = itertools.count()
        self.task: asyncio.Task[None] | None = None

    async def connect(self, address: tuple[str, int]) -> None:
        reader, self.writer = await asyncio.open_connection(*address)
        self.task = asyncio.create_task(self.read(reader))

    async def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                future = self.waiting.pop(int.from_bytes(frame[:8], "big"), None)
                if future is not None:
                    future.set_result(None)

    async def call(self) -> None:
        rid = next(self.rids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = future
        self.writer.write(encode_frame(b"C" + rid.to_bytes(8, "big") + bytes(CLIENT_FRAME - 9)))
        await future


# -- the multi-process layout: each node (or floor node) in its own process ----------------


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def _child(kind: str, me: int, ports: list[int]) -> None:
    """Run one node (kind "node") or floor node (kind "floor") until stdin closes."""
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    if kind == "floor":
        floor = FloorNode()
        floor.server = await asyncio.start_server(floor.handle, "127.0.0.1", ports[me])
        print("ready", flush=True)
        await floor.connect([("127.0.0.1", p) for i, p in enumerate(ports) if i != me])
        await stdin_closed
        await floor.close()
        return
    ring = HashRing(3, partitions=64)
    ring.add_nodes(IDS)
    node_id = IDS[me]
    peers = {IDS[i]: ("127.0.0.1", p) for i, p in enumerate(ports) if i != me}
    transport = TcpTransport(node_id, ("127.0.0.1", ports[me]), peers, seed=me)
    node = Node(node_id, ring, config=CONFIG, storage=MemoryStorage(), now=time.monotonic())
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(node, transport, stop=stop, started=lambda: print("ready", flush=True))
    )
    await stdin_closed
    stop.set()
    await task


def _spawn(kind: str, ports: list[int]) -> list[subprocess.Popen[str]]:
    procs = []
    for me in range(len(ports)):
        argv = [sys.executable, "-m", "benchmarks.bench_aio", kind, str(me), *map(str, ports)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a benchmark {kind} process did not start: {line!r}")
    return procs


def _reap(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- measuring -------------------------------------------------------------------------------


async def latencies(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def throughput(call: Callable[[], Awaitable[object]], n: int, inflight: int = 32) -> float:
    remaining = itertools.count()

    async def worker() -> None:
        while next(remaining) < n:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return n / (time.perf_counter() - started)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


async def measure(quick: bool, *, processes: bool) -> dict[str, dict[str, float]]:
    rounds, per_round, flood = (3, 200, 600) if quick else (5, 1000, 3000)
    children: list[subprocess.Popen[str]] = []
    floor_nodes: list[FloorNode] = []
    stop: Callable[[], Awaitable[None]]
    if processes:
        node_ports, floor_ports = _free_ports(3), _free_ports(3)
        children = _spawn("node", node_ports) + _spawn("floor", floor_ports)
        addresses = [("127.0.0.1", p) for p in node_ports]
        floor_addresses = [("127.0.0.1", p) for p in floor_ports]

        async def reap() -> None:
            _reap(children)

        stop = reap

        await asyncio.sleep(1.0)  # the nodes connect to each other
    else:
        addresses, stop = await start_cluster()
        floor_nodes = [FloorNode() for _ in IDS]
        floor_addresses = [await f.start() for f in floor_nodes]
        for i, f in enumerate(floor_nodes):
            await f.connect([a for j, a in enumerate(floor_addresses) if j != i])
    floor = FloorClient()
    await floor.connect(floor_addresses[0])
    keys = (f"bench:{i}" for i in itertools.count())
    results: dict[str, dict[str, list[float]]] = {
        name: {"lat": [], "tput": []} for name in ("put", "get", "floor")
    }
    # Always coordinate at the first node, as the floor does: no client-side round robin.
    async with Client(addresses[:1], timeout=10.0, seed=0) as client:
        written = [f"read:{i}" for i in range(100)]
        for key in written:
            await client.put(key, VALUE)
        cycle = itertools.cycle(written)

        async def put() -> object:
            return await client.put(next(keys), VALUE)

        async def get() -> object:
            return await client.get(next(cycle))

        for _ in range(3):  # warm up every connection and code path
            await put()
            await get()
            await floor.call()
        for _ in range(rounds):
            for name, call in (("put", put), ("floor", floor.call), ("get", get)):
                results[name]["lat"].extend(await latencies(call, per_round))
                results[name]["tput"].append(await throughput(call, flood))
    await stop()
    await floor.close()
    for f in floor_nodes:
        await f.close()
    summary = {}
    for name, r in results.items():
        summary[name] = {
            "p50": pct(r["lat"], 0.5),
            "p99": pct(r["lat"], 0.99),
            "p999": pct(r["lat"], 0.999),
            "mean": statistics.fmean(r["lat"]) * 1e6,
            "ops": statistics.median(r["tput"]),
            "samples": len(r["lat"]),
        }
    return summary


def report(quick: bool) -> str:
    return "\n\n".join(
        _table(asyncio.run(measure(quick, processes=processes)), title)
        for processes, title in (
            (False, "one process, one event loop (3 nodes, client and floor together)"),
            (True, "one process per node (the client in the benchmark's process)"),
        )
    )


def _table(s: dict[str, dict[str, float]], title: str) -> str:
    floor = s["floor"]
    lines = [
        f"### Client put / get, 3 nodes on loopback (N=3, R=2, W=2): {title}",
        "",
        "| case | p50 | p99 | p99.9 | throughput (32 in flight) | p50 / floor p50 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "put": "put (Client -> Node, W=2)",
        "get": "get (Client -> Node, R=2)",
        "floor": "floor: same round trips, same framing, no node",
    }
    for name in ("put", "get", "floor"):
        r = s[name]
        lines.append(
            f"| {names[name]} | {r['p50']:,.0f} µs | {r['p99']:,.0f} µs | {r['p999']:,.0f} µs "
            f"| {r['ops']:,.0f} ops/s | {r['p50'] / floor['p50']:.2f}x |"
        )
    lines.append("")
    lines.append(
        f"{s['put']['samples']:,} latency samples per case; put p99 / floor p99: "
        f"{s['put']['p99'] / floor['p99']:.2f}x; put throughput / floor: "
        f"{s['put']['ops'] / floor['ops']:.2f}x."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("node", "floor"):
        asyncio.run(_child(sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]))
    else:
        print(report(quick="--quick" in sys.argv))
