"""Node: a whole put and get through three Node cores, and simulation throughput.

A *round* is one client request on a 3-node cluster (N=3, R=2, W=2) with every message
delivered in process, in order, until the request and its replication are finished: the
coordinator's local write, two StoreRequests and their replies (put), or two FetchRequests,
their replies and the merge (get). The floor is the irreducible work of the same request
inlined: one `DVVSet.update`, one encoding, the replicas' decode, `sync`, re-encode and Merkle
digest, with dicts for storage. There is no Python peer: no package offers a Dynamo node.

`report` runs the randomized simulation (every fault on) and gives its throughput in simulated
client operations per second of real time, and seeds per minute.
"""

from __future__ import annotations

import itertools
import time
from collections import deque

from benchmarks.harness import Case, Group
from dynamo_core import DVVSet, HashRing, Node, NodeConfig, codec, item_digest
from dynamo_core.messages import Message
from dynamo_core.node import Effect, Reply, Send
from dynamo_core.testing import SimulationConfig, run_simulations

CONFIG = NodeConfig(request_timeout=5.0, merkle_depth=8, anti_entropy_interval=1e6)


class Direct:
    """Three nodes and an in-order queue: no faults, no timers, no virtual time."""

    def __init__(self) -> None:
        ring = HashRing(3, partitions=64)
        for name in ("a", "b", "c"):
            ring.add_node(name)
        self.nodes = {
            name: Node(name, ring, config=CONFIG, first_epoch=0) for name in ("a", "b", "c")
        }
        self.queue: deque[tuple[str, str, Message]] = deque()
        self.reply: object = None
        self.now = 0.0
        for node in self.nodes.values():  # the first heartbeats, out of the way
            node.on_timer(0.0)

    def apply(self, name: str, effects: list[Effect]) -> None:
        for effect in effects:
            if type(effect) is Send:
                self.queue.append((name, effect.target, effect.message))
            elif type(effect) is Reply:
                self.reply = effect.result

    def drain(self) -> None:
        nodes, queue = self.nodes, self.queue
        while queue:
            source, target, message = queue.popleft()
            self.apply(target, nodes[target].receive(source, message, self.now))


def _groups(n: int) -> list[Group]:
    direct = Direct()
    a = direct.nodes["a"]
    owned = (key for i in itertools.count() if a.replicas(key := f"cart:{i}")[0] == "a")
    value = b"x" * 100

    def put_round() -> None:  # a fresh key each time: states do not grow between samples
        direct.apply("a", a.put("r", next(owned), value, None, direct.now))
        direct.drain()

    keys = [next(owned) for _ in range(n)]
    for key in keys:  # written once, so gets find a state
        direct.apply("a", a.put("r", key, value, None, direct.now))
        direct.drain()
    cycle = itertools.cycle(keys).__next__

    def get_round() -> None:
        direct.apply("a", a.get("r", cycle(), direct.now))
        direct.drain()

    floor_stores: list[dict[str, bytes]] = [{}, {}, {}]
    fresh = (f"floor:{i}" for i in itertools.count())

    def put_floor() -> None:
        key = next(fresh)
        state = DVVSet[bytes]().update(value, "a#1")
        wire = codec.dumps(state.to_dict())
        for store in floor_stores:
            received = DVVSet.from_dict(codec.loads(wire))
            old = store.get(key)
            merged = received if old is None else DVVSet.from_dict(codec.loads(old)).sync(received)
            raw = codec.dumps(merged.to_dict())
            store[key] = raw
            item_digest(key, raw)

    written = [f"floor:{i}" for i in range(n)]
    for _ in range(n):
        put_floor()
    floor_cycle = itertools.cycle(written).__next__

    def get_floor() -> None:
        key = floor_cycle()
        first = DVVSet.from_dict(codec.loads(floor_stores[0][key]))
        second = DVVSet.from_dict(codec.loads(floor_stores[1][key]))
        merged = first.sync(second)
        codec.dumps(merged.context.to_dict())
        first.descends(merged)
        second.descends(merged)

    return [
        Group(
            f"put round: 3 nodes, N=3 W=2, {n:,} keys, 100-byte values",
            [Case("Node", put_round), Case("floor: DVVSet + codec + dicts", put_floor)],
            compare=("floor: DVVSet + codec + dicts",),
        ),
        Group(
            f"get round: 3 nodes, N=3 R=2, {n:,} keys",
            [Case("Node", get_round), Case("floor: DVVSet + codec + dicts", get_floor)],
            compare=("floor: DVVSet + codec + dicts",),
        ),
    ]


def groups(quick: bool) -> list[Group]:
    return _groups(1_000 if quick else 10_000)


def report(quick: bool) -> str:
    runs = [(5, 300), (5, 100)] if quick else [(20, 2000), (40, 500), (100, 100)]
    lines = [
        "### Simulation throughput (every fault on, 5 nodes, N=3 R=2 W=2, sloppy)",
        "",
        "| seeds | ops per seed | wall time | simulated ops / s | seeds / minute | messages / s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for seeds, ops in runs:
        started = time.perf_counter()
        summary = run_simulations(range(seeds), SimulationConfig(ops=ops))
        wall = time.perf_counter() - started
        assert summary.ok, summary.failed_seeds
        messages = sum(r.messages for r in summary.results)
        lines.append(
            f"| {seeds} | {ops:,} | {wall:.1f} s | {summary.operations / wall:,.0f} "
            f"| {60 * seeds / wall:,.1f} | {messages / wall:,.0f} |"
        )
    return "\n".join(lines)
