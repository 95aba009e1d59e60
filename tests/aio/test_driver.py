"""serve(): a node on a real transport, its client path, and its shutdown."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from dynamo_core import HashRing, Node, NodeConfig, QuorumPolicy, SQLiteStorage
from dynamo_core.aio import Client, ClientError, Driver, TcpTransport, serve
from dynamo_core.errors import StorageClosedError
from dynamo_core.node import Effect

Eventually = Callable[..., Coroutine[Any, Any, None]]
CONFIG = NodeConfig(heartbeat_interval=0.1, request_timeout=5.0)


def single(path: Path, cls: type[Node] = Node) -> Node:
    ring = HashRing(1, partitions=8)
    ring.add_node("A")
    storage = SQLiteStorage(path / "a.db", synchronous="NORMAL")
    return cls("A", ring, policy=QuorumPolicy(1, 1, 1), config=CONFIG, storage=storage, now=0.0)


def lonely_of_three(path: Path) -> Node:
    """A of a 3-node ring whose other nodes never answer: its puts wait for them."""
    ring = HashRing(3, partitions=8)
    ring.add_nodes(["A", "B", "C"])
    storage = SQLiteStorage(path / "a.db", synchronous="NORMAL")
    return Node("A", ring, config=CONFIG, storage=storage, now=0.0)


class OddNode(Node):
    """A node that also returns an effect no driver knows (a future informational effect)."""

    __slots__ = ()

    def on_timer(self, now: float) -> list[Effect]:
        return [*super().on_timer(now), "something new"]  # type: ignore[list-item]


async def started(transport: TcpTransport, eventually: Eventually) -> tuple[str, int]:
    def listening() -> bool:
        try:
            _ = transport.address
        except RuntimeError:
            return False
        return True

    await eventually(listening, what="listening")
    return transport.address


def test_put_get_stats_then_stop(run: Any, tmp_path: Path, eventually: Eventually) -> None:
    node = single(tmp_path)
    transport = TcpTransport("A", "127.0.0.1:0", {})

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop))
        address = await started(transport, eventually)
        async with Client([address], timeout=5.0) as client:
            assert await client.get("cart") == ((), (await client.get_reply("cart")).context)
            reply = await client.put("cart", b"apple")
            assert reply.acked == ("A",)
            values, context = await client.get("cart")
            assert values == (b"apple",)
            await client.put("cart", b"apple+pear", context)
            assert (await client.get("cart"))[0] == (b"apple+pear",)
            node_id, stats = await client.stats()
            assert node_id == "A"
            assert stats["client_puts"] == 2
            assert stats["puts_coordinated"] == 2
            assert stats["transport_client_connections"] == 1
            with pytest.raises(ClientError, match="bad request"):
                await client.put("cart", b"x", b"not a context")
            stop.set()
            await task  # a stopped serve returns
            with pytest.raises(ClientError):  # its connections are closed, it listens no more
                await client.get("cart")
        with pytest.raises(StorageClosedError):
            node.storage.get(b"x")

    run(main())


def test_cancel_cleans_up_and_propagates(run: Any, tmp_path: Path, eventually: Eventually) -> None:
    node = single(tmp_path)
    transport = TcpTransport("A", "127.0.0.1:0", {})

    async def main() -> None:
        task = asyncio.create_task(serve(node, transport))
        address = await started(transport, eventually)
        async with Client([address], timeout=5.0, retries=0) as client:
            await client.put("k", b"v")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(ClientError):
                await client.get("k")
        with pytest.raises(StorageClosedError):
            node.storage.get(b"x")
        # The data was committed: a new node on the same file has it.
        again = single(tmp_path)
        assert again.state_of("k") is not None
        again.storage.close()

    run(main())


def test_waiting_clients_are_answered_on_shutdown(
    run: Any, tmp_path: Path, eventually: Eventually
) -> None:
    node = lonely_of_three(tmp_path)
    transport = TcpTransport("A", "127.0.0.1:0", {"B": "127.0.0.1:9", "C": "127.0.0.1:9"})

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop))
        address = await started(transport, eventually)
        async with Client([address], timeout=30.0, retries=0) as client:
            put = asyncio.create_task(client.put("k", b"v"))
            await eventually(lambda: transport.stats()["client_requests"] == 1, what="the put")
            stop.set()
            with pytest.raises(ClientError, match="node shutting down"):
                await put
        await task

    run(main())


def test_unknown_effects_are_ignored_and_reported(
    run: Any, tmp_path: Path, eventually: Eventually
) -> None:
    node = single(tmp_path, OddNode)
    transport = TcpTransport("A", "127.0.0.1:0", {})
    seen: list[object] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop, on_effect=seen.append))
        address = await started(transport, eventually)
        await eventually(lambda: len(seen) >= 2, what="timer rounds")
        async with Client([address]) as client:
            _, stats = await client.stats()
        assert stats["effects_other"] >= 2
        stop.set()
        await task

    run(main())
    assert set(seen) == {"something new"}


def test_an_on_effect_hook_that_raises_costs_that_effect_only(
    run: Any, tmp_path: Path, eventually: Eventually
) -> None:
    node = single(tmp_path, OddNode)
    transport = TcpTransport("A", "127.0.0.1:0", {})

    calls: list[object] = []

    def broken(effect: object) -> None:
        calls.append(effect)
        raise RuntimeError("the application's hook is broken")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop, on_effect=broken))
        address = await started(transport, eventually)
        async with Client([address]) as client:
            await eventually(lambda: len(calls) >= 2, what="timer rounds")
            assert not task.done()
            await client.put("k", b"v")  # still serving
            assert (await client.get("k"))[0] == (b"v",)
            _, stats = await client.stats()
        assert stats["effect_errors"] >= 1
        stop.set()
        await task

    run(main())


class RecordingNode(Node):
    """Records the time of every input."""

    __slots__ = ("times",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.times: list[float] = []

    def put(
        self, request_id: str, key: str | bytes, value: bytes, context: bytes | None, now: float
    ) -> list[Effect]:
        self.times.append(now)
        return super().put(request_id, key, value, context, now)

    def on_timer(self, now: float) -> list[Effect]:
        self.times.append(now)
        return super().on_timer(now)


def test_times_given_to_the_node_never_go_backwards(
    run: Any, tmp_path: Path, eventually: Eventually
) -> None:
    class Jumpy:
        """Every other reading is 5 s in the past."""

        def __init__(self) -> None:
            self.readings: list[float] = []

        def now(self) -> float:
            t = 100.0 + len(self.readings) * 0.01 - (5.0 if len(self.readings) % 2 else 0.0)
            self.readings.append(t)
            return t

    node = single(tmp_path, RecordingNode)
    assert isinstance(node, RecordingNode)
    transport = TcpTransport("A", "127.0.0.1:0", {})
    clock = Jumpy()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop, clock=clock))
        address = await started(transport, eventually)
        async with Client([address]) as client:
            for i in range(5):
                await client.put(f"k{i}", b"v")
        stop.set()
        await task  # a LocalProtocolError from the node would surface here

    run(main())
    assert any(b < a for a, b in itertools.pairwise(clock.readings)), "the clock went back"
    assert len(node.times) >= 6
    assert node.times == sorted(node.times)


def test_serve_checks_the_node(run: Any) -> None:
    with pytest.raises(TypeError, match="node must be a Node"):
        run(serve("node", TcpTransport("A", "127.0.0.1:0", {})))  # type: ignore[arg-type]


class CountingAlarm:
    """A core with one timer that counts how often its deadline is asked."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.asked = 0

    def arm(self, at: float, now: float) -> list[str]:
        self.at = min(self.at, at)
        return []

    def deadline(self) -> float:
        self.asked += 1
        return self.at

    def on_timer(self, now: float) -> list[str]:
        self.at = math.inf
        return ["rang"]


def test_inputs_fed_in_one_turn_ask_the_deadline_once_and_still_wake_the_run(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        core = CountingAlarm(loop.time() + 60.0)
        seen: list[str] = []
        driver: Driver[str] = Driver(core, seen.append)
        stop = asyncio.Event()
        task = asyncio.create_task(driver.run(stop=stop))
        while driver._sleeping_until == -math.inf:  # until the run sleeps on its minute
            await asyncio.sleep(0.001)
        before = core.asked
        for i in range(100):  # a batch of inputs read at once; the last brings the timer close
            driver.feed(partial(core.arm, loop.time() + (60.0 if i < 99 else 0.01)))
        assert core.asked == before  # not once per input
        while not seen:
            await asyncio.sleep(0.005)
        assert seen == ["rang"]
        assert core.asked - before < 10  # the turn's check and the run's steps, not 100
        stop.set()
        await task

    run(main())
