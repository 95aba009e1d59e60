"""The generic drivers: every core runs under them, and a hostile handler is contained."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_streaming import TRANSFER, Source

from dynamo_core import (
    CoordinatorState,
    DVVSet,
    GetCoordinator,
    GetResult,
    Handoff,
    HashRing,
    HintStore,
    MerkleExchange,
    MerkleTree,
    Node,
    NodeConfig,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendStore,
    Stored,
    item_digest,
)
from dynamo_core.aio import Driver
from dynamo_core.drive import SyncDriver
from dynamo_core.errors import EffectFailed
from dynamo_core.hints import DeliveryFailed, HintsDelivered, SendHints
from dynamo_core.merkle import Done, ExchangeRole, LoadItems, Send, decode_message, encode_message
from dynamo_core.messages import GetReply, PutReply
from dynamo_core.node import Reply
from dynamo_core.node import Send as NodeSend
from dynamo_core.quorum import Complete, Fetched
from dynamo_core.streaming import RangeStream, SendPull, StoreItems, StreamFinished
from dynamo_core.testing import FakeClock

Cart = DVVSet[bytes]
POLICY = QuorumPolicy(3, 2, 2)
CANDIDATES = ["a", "b", "c", "d"]


class Replicas:
    """In-memory replicas; `silent` ones never answer, `broken` ones make the handler raise."""

    def __init__(self, *, silent: tuple[str, ...] = (), broken: tuple[str, ...] = ()) -> None:
        self.data: dict[str, dict[Any, Cart]] = {n: {} for n in CANDIDATES}
        self.silent, self.broken = set(silent), set(broken)
        self.seen: list[object] = []

    def answer(self, effect: object) -> Stored | Fetched[Cart] | None:
        self.seen.append(effect)
        if isinstance(effect, SendStore | SendFetch):
            if effect.target in self.broken:
                raise ConnectionError(f"{effect.target} is unreachable")
            if effect.target in self.silent:
                return None
            store = self.data[effect.target]
            if isinstance(effect, SendStore):
                old = store.get(effect.key)
                store[effect.key] = effect.state if old is None else old.sync(effect.state)
                return Stored()
            return Fetched(store.get(effect.key))
        return None


def put_coordinator() -> PutCoordinator[Cart]:
    state = DVVSet[bytes]().update(b"book", "a")
    return PutCoordinator(POLICY, "cart", CANDIDATES, state, timeout=1.0, replica_timeout=0.2)


def sync_driver_for(
    core: PutCoordinator[Cart] | GetCoordinator[Cart], replicas: Replicas, clock: FakeClock
) -> SyncDriver[Any]:
    def handle(effect: Any) -> None:
        reply = replicas.answer(effect)
        if reply is not None:
            target = effect.target
            driver.submit(lambda now: core.receive(target, reply, now))  # type: ignore[arg-type]

    driver: SyncDriver[Any] = SyncDriver(core, handle, clock=clock, sleep=clock.advance)
    return driver


# -- the coordinators ------------------------------------------------------------------------


def test_put_then_get_under_the_sync_driver_with_a_silent_replica() -> None:
    clock = FakeClock()
    replicas = Replicas(silent=("b",))
    put = put_coordinator()
    sync_driver_for(put, replicas, clock).run(put.start)
    assert isinstance(put.result, PutResult)
    assert put.deadline() is None  # the run ended because the core is idle
    assert put.timed_out == ("b",) and "d" in put.acked  # d stood in for the silent b
    assert clock.now() == pytest.approx(0.2)  # slept exactly to b's replica timeout

    get: GetCoordinator[Cart] = GetCoordinator(POLICY, "cart", CANDIDATES, timeout=1.0)
    sync_driver_for(get, replicas, clock).run(get.start)
    assert isinstance(get.result, GetResult)
    assert get.result.state is not None and get.result.state.values == [b"book"]


def test_until_stops_the_run_early() -> None:
    clock = FakeClock()
    put = put_coordinator()
    driver = sync_driver_for(put, Replicas(silent=("c",)), clock)
    driver.run(put.start, until=lambda: put.result is not None)
    assert isinstance(put.result, PutResult) and put.acked == ("a", "b")  # w=2 met at once
    assert put.deadline() is not None  # c may still answer: not idle, but the run returned
    assert clock.now() == 0.0


def test_a_handler_that_raises_stops_the_run_with_a_typed_error_and_the_run_resumes() -> None:
    clock = FakeClock()
    replicas = Replicas(broken=("a",))
    put = put_coordinator()
    driver = sync_driver_for(put, replicas, clock)
    with pytest.raises(EffectFailed, match=r"SendStore: ConnectionError: a is unreachable") as info:
        driver.run(put.start)
    assert isinstance(info.value.effect, SendStore) and info.value.effect.target == "a"
    assert isinstance(info.value.__cause__, ConnectionError)
    assert driver.failures == 1
    assert not put.acked and not put.timed_out  # b and c replied: queued for the next run
    assert [type(e).__name__ for e in replicas.seen] == ["SendStore"] * 3  # b and c still sent
    replicas.broken.clear()
    driver.run()  # resume: the store to a was lost; a times out and d stands in for it
    assert isinstance(put.result, PutResult)
    assert list(put.timed_out) == ["a"] and list(put.acked) == ["b", "c", "d"]
    assert put.deadline() is None


def test_on_error_treats_a_failed_effect_as_a_lost_message() -> None:
    clock = FakeClock()
    failures: list[tuple[object, Exception]] = []
    replicas = Replicas(broken=("a",))
    put = put_coordinator()

    def handle(effect: Any) -> None:
        reply = replicas.answer(effect)
        if reply is not None:
            target = effect.target
            driver.submit(lambda now: put.receive(target, reply, now))  # type: ignore[arg-type]

    driver: SyncDriver[Any] = SyncDriver(
        put,
        handle,
        clock=clock,
        sleep=clock.advance,
        on_error=lambda effect, exc: failures.append((effect, exc)),
    )
    driver.run(put.start)
    assert isinstance(put.result, PutResult)
    assert [type(e).__name__ for e, _ in failures] == ["SendStore"]
    assert list(put.timed_out) == ["a"] and list(put.acked) == ["b", "c", "d"]
    assert driver.failures == 1


def test_drivers_refuse_what_is_not_a_core_or_a_callable() -> None:
    with pytest.raises(TypeError, match="deadline"):
        SyncDriver(object(), print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler"):
        SyncDriver(put_coordinator(), "print")  # type: ignore[arg-type]
    driver: SyncDriver[Any] = SyncDriver(put_coordinator(), print)
    with pytest.raises(TypeError, match="input"):
        driver.submit("start")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        SyncDriver(put_coordinator(), print, clock=1.0)  # type: ignore[arg-type]


def test_an_input_the_core_refuses_propagates_unchanged() -> None:
    put = put_coordinator()
    driver: SyncDriver[Any] = SyncDriver(put, lambda effect: None, clock=FakeClock())
    driver.submit(put.start)
    driver.submit(lambda now: put.receive("zz", Stored(), now))  # never asked
    with pytest.raises(Exception, match="zz") as info:
        driver.run()
    assert not isinstance(info.value, EffectFailed)


# -- hinted handoff --------------------------------------------------------------------------


def test_handoff_delivers_every_hint_under_the_sync_driver() -> None:
    clock = FakeClock(100.0)
    store: HintStore[Cart] = HintStore()
    for i in range(25):
        assert store.add("b", f"k{i}", DVVSet[bytes]().update(b"v", "a"), clock.now())
    handoff: Handoff[Cart] = Handoff(store, max_batch_hints=10)
    received: dict[bytes, Cart] = {}
    delivered: list[int] = []
    attempts = [0]

    def handle(effect: Any) -> None:
        match effect:
            case SendHints(target=target, batch=batch):
                attempts[0] += 1
                if attempts[0] == 2:  # the second batch is lost: the core retries it
                    driver.submit(lambda now: handoff.on_failure(target, batch.batch_id, now))
                    return
                for hint in batch.hints:
                    received[
                        bytes(hint.key, "utf-8") if isinstance(hint.key, str) else hint.key
                    ] = hint.state
                driver.submit(lambda now: handoff.on_ack(target, batch.batch_id, now))
            case HintsDelivered(removed=removed):
                delivered.append(removed)
            case DeliveryFailed():
                pass

    driver: SyncDriver[Any] = SyncDriver(handoff, handle, clock=clock, sleep=clock.advance)
    driver.run(lambda now: handoff.target_up("b", now), until=lambda: len(store) == 0)
    assert len(received) == 25 and sum(delivered) == 25
    assert attempts[0] == 4  # three batches of at most 10, one of them sent twice


# -- Merkle exchange -------------------------------------------------------------------------


def test_a_merkle_exchange_between_two_drivers_finds_exactly_the_differences() -> None:
    ours = {f"k{i}".encode(): b"v" for i in range(300)}
    theirs = dict(ours)
    del theirs[b"k7"]
    theirs[b"k9"] = b"changed"
    theirs[b"extra"] = b"x"

    def tree(items: dict[bytes, bytes]) -> MerkleTree:
        return MerkleTree.from_items(((k, item_digest(k, v)) for k, v in items.items()), 8)

    sides = {
        ExchangeRole.INITIATOR: MerkleExchange(tree(ours)),
        ExchangeRole.RESPONDER: MerkleExchange(tree(theirs), ExchangeRole.RESPONDER),
    }
    data = {ExchangeRole.INITIATOR: ours, ExchangeRole.RESPONDER: theirs}
    drivers: dict[ExchangeRole, SyncDriver[Any]] = {}
    reports = []
    wire = [0]

    def handler(role: ExchangeRole) -> Any:
        peer = ExchangeRole.RESPONDER if role is ExchangeRole.INITIATOR else ExchangeRole.INITIATOR

        def handle(effect: Any) -> None:
            match effect:
                case Send(message=message):
                    encoded = encode_message(message)
                    wire[0] += len(encoded)
                    drivers[peer].submit(
                        lambda now: sides[peer].receive(decode_message(encoded), now)
                    )
                    if role is ExchangeRole.INITIATOR:
                        drivers[peer].run()  # the responder answers at once, in this thread
                case LoadItems():
                    items = [(k, item_digest(k, v)) for k, v in data[role].items()]
                    drivers[role].submit(lambda now: sides[role].items_loaded(items, now))
                case Done(report=report):
                    reports.append(report)

        return handle

    clock = FakeClock()
    for role, exchange in sides.items():
        drivers[role] = SyncDriver(exchange, handler(role), clock=clock, sleep=clock.advance)
    drivers[ExchangeRole.INITIATOR].run(sides[ExchangeRole.INITIATOR].start)
    report = next(r for r in reports if r.role is ExchangeRole.INITIATOR)
    assert report.missing == (b"extra",)
    assert report.remote_missing == (b"k7",)
    assert report.different == (b"k9",)
    assert report.wire_bytes == wire[0] > 0


# -- range streaming -------------------------------------------------------------------------


def test_a_range_stream_pulls_the_whole_range_under_the_sync_driver() -> None:
    keys = [f"key-{i}".encode() for i in range(400)]
    source = Source(keys)
    stream = RangeStream(TRANSFER, 0, 3, ["src"], batch_bytes=2000)
    stored: set[bytes] = set()
    finished: list[str] = []

    def handle(effect: Any) -> None:
        match effect:
            case SendPull(pull=pull):
                batch = source.answer(pull)
                driver.submit(lambda now: stream.receive("src", batch, now))
            case StoreItems(items=items):
                stored.update(k for k, _ in items)
            case StreamFinished(served_by=by):
                finished.append(by)

    clock = FakeClock()
    driver: SyncDriver[Any] = SyncDriver(stream, handle, clock=clock, sleep=clock.advance)
    driver.run(stream.start)
    assert finished == ["src"] and stream.finished
    assert stored == source.keys() and len(stored) > 50


# -- the asyncio driver ----------------------------------------------------------------------


async def async_put(replicas: Replicas, **kw: Any) -> tuple[PutCoordinator[Cart], Driver[Any]]:
    put = put_coordinator()

    async def handle(effect: Any) -> None:
        await asyncio.sleep(0.001)
        reply = replicas.answer(effect)
        if reply is not None:
            target = effect.target
            driver.submit(lambda now: put.receive(target, reply, now))  # type: ignore[arg-type]

    driver: Driver[Any] = Driver(put, handle, **kw)
    await driver.run(put.start)
    return put, driver


def test_the_async_driver_runs_a_coordinator_with_coroutine_handlers() -> None:
    put, driver = asyncio.run(async_put(Replicas(silent=("c",))))
    assert isinstance(put.result, PutResult)
    assert "d" in put.acked and put.timed_out == ("c",)
    assert driver.running == 0


def test_the_async_driver_stops_with_a_typed_error_when_a_handler_task_raises() -> None:
    with pytest.raises(EffectFailed, match="SendStore: ConnectionError: b is unreachable"):
        asyncio.run(async_put(Replicas(broken=("b",))))

    async def resumed() -> PutCoordinator[Cart]:  # the failed store was lost; a run resumes
        replicas = Replicas(broken=("b",))
        put = put_coordinator()

        async def handle(effect: Any) -> None:
            reply = replicas.answer(effect)
            if reply is not None:
                target = effect.target
                driver.submit(lambda now: put.receive(target, reply, now))  # type: ignore[arg-type]

        driver: Driver[Any] = Driver(put, handle)
        with pytest.raises(EffectFailed):
            await driver.run(put.start)
        await driver.run()
        return put

    put = asyncio.run(resumed())
    assert isinstance(put.result, PutResult) and "b" in put.timed_out
    lost: list[object] = []
    put, driver = asyncio.run(
        async_put(Replicas(broken=("b",)), on_error=lambda e, exc: lost.append(e))
    )
    assert isinstance(put.result, PutResult) and driver.failures == 1 and len(lost) == 1


def test_the_async_driver_runs_a_cluster_of_nodes() -> None:
    async def main() -> tuple[object, object]:
        ring = HashRing(3, partitions=16)
        for name in "abc":
            ring.add_node(name)
        config = NodeConfig(heartbeat_interval=0.05, request_timeout=0.5, merkle_depth=4)
        loop = asyncio.get_running_loop()
        nodes = {n: Node(n, ring, config=config, now=loop.time()) for n in "abc"}
        drivers: dict[str, Driver[Any]] = {}
        replies: dict[str, object] = {}
        stop = asyncio.Event()

        def handler(name: str) -> Any:
            def handle(effect: Any) -> None:
                match effect:
                    case NodeSend(target=target, message=message):
                        peer = nodes[target]
                        drivers[target].submit(lambda now: peer.receive(name, message, now))
                    case Reply(request_id=rid, result=result):
                        replies[rid] = result

            return handle

        for name, node in nodes.items():
            drivers[name] = Driver(node, handler(name))
        tasks = [asyncio.create_task(d.run(stop=stop)) for d in drivers.values()]
        a, b = nodes["a"], nodes["b"]
        drivers["a"].submit(lambda now: a.put("p1", "cart", b"book", None, now))
        while "p1" not in replies:
            await asyncio.sleep(0.005)
        drivers["b"].submit(lambda now: b.get("g1", "cart", now))
        while "g1" not in replies:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.gather(*tasks)
        return replies["p1"], replies["g1"]

    put, get = asyncio.run(asyncio.wait_for(main(), 10))
    assert isinstance(put, PutReply)
    assert isinstance(get, GetReply) and get.values == (b"book",)


def test_refused_replies_flow_through_the_driver() -> None:
    clock = FakeClock()
    put = put_coordinator()

    def handle(effect: Any) -> None:
        if isinstance(effect, SendStore):
            target = effect.target
            reply = Refused("disk full") if target == "a" else Stored()
            driver.submit(lambda now: put.receive(target, reply, now))

    driver: SyncDriver[Any] = SyncDriver(put, handle, clock=clock, sleep=clock.advance)
    driver.run(put.start)
    assert isinstance(put.result, PutResult) and "a" in put.refused
    assert isinstance(Complete(put.result).result, PutResult)


def test_the_async_driver_with_until_waits_for_inputs_from_outside() -> None:
    """A core fed by the network has no deadline while it waits: `until` keeps the run alive."""

    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        initiator = MerkleExchange(MerkleTree.from_items([("k", item_digest("k", b"v"))], 4))
        responder = MerkleExchange(MerkleTree(4), ExchangeRole.RESPONDER)

        def reply(data: bytes, now: float) -> list[Any]:
            return initiator.receive(decode_message(data), now)

        def deliver(data: bytes) -> None:  # the peer answers 20 ms later, from outside the run
            answer(responder.receive(decode_message(data)))

        def answer(effects: list[Any]) -> None:
            for effect in effects:
                if isinstance(effect, Send):
                    driver.submit(partial(reply, encode_message(effect.message)))
                elif isinstance(effect, LoadItems):
                    answer(responder.items_loaded([]))

        def handle(effect: Any) -> None:
            if isinstance(effect, Send):
                loop.call_later(0.02, deliver, encode_message(effect.message))
            elif isinstance(effect, LoadItems):
                items = [("k", item_digest("k", b"v"))]
                driver.submit(lambda now: initiator.items_loaded(items, now))

        driver: Driver[Any] = Driver(initiator, handle)
        started = loop.time()
        await asyncio.wait_for(driver.run(initiator.start, until=lambda: initiator.finished), 5)
        return initiator.finished, loop.time() - started

    finished, took = asyncio.run(main())
    assert finished and took >= 0.04  # at least two round trips of 20 ms were waited for


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.sampled_from(CANDIDATES), max_size=4),
    st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.15, 0.25, 0.5]), min_size=4, max_size=4),
)
def test_the_sync_driver_runs_a_put_to_its_end_on_virtual_time(
    silent: set[str], delays: list[float]
) -> None:
    """Whatever answers and however late, the run ends with the coordinator closed, by its
    deadline, with a result exactly when W replicas could ack in time."""
    clock = FakeClock()
    put = put_coordinator()  # W=2, timeout 1.0, replica timeout 0.2
    due: list[tuple[float, str]] = []  # replies in flight: (arrival, node)

    def handle(effect: Any) -> None:
        if isinstance(effect, SendStore) and effect.target not in silent:
            due.append((clock.now() + delays[CANDIDATES.index(effect.target)], effect.target))

    def idle(wait: float) -> None:  # deliver the next reply if it lands before the timer
        if put.state is CoordinatorState.CLOSED:
            due.clear()  # a closed coordinator refuses replies: the application drops them
        if due:
            due.sort()
            at, node = due[0]
            if at <= clock.now() + wait:
                due.pop(0)
                clock.set(max(at, clock.now()))
                driver.submit(partial(put.receive, node, Stored()))

    driver: SyncDriver[Any] = SyncDriver(put, handle, clock=clock, sleep=clock.advance)
    driver.run(put.start, idle=idle)
    assert put.deadline() is None and put.result is not None
    assert clock.now() <= 1.0 + 1e-9
    # A replica's ack counts when it comes within the replica timeout (0.2) of being asked; a,
    # b and c are asked at once, d (the one fallback) when the first of them fails.
    fast = {n for n in CANDIDATES if n not in silent and delays[CANDIDATES.index(n)] < 0.2}
    counted = fast & {"a", "b", "c"}
    if len(counted) < 3 and "d" in fast:
        counted.add("d")
    assert isinstance(put.result, PutResult) == (len(counted) >= 2)
    assert set(put.acked) == counted


# -- feed: an input run at once ---------------------------------------------------------------


class Alarm:
    """A minimal core: `arm(at)` sets its one timer, which fires an ``"rang"`` effect."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.fired: list[float] = []

    def arm(self, at: float, now: float) -> list[str]:
        self.at = at
        return ["armed"]

    def deadline(self) -> float | None:
        return self.at

    def on_timer(self, now: float) -> list[str]:
        self.at = None
        self.fired.append(now)
        return ["rang"]


def test_feed_runs_an_input_ahead_of_the_queue_and_handles_its_effects_before_returning() -> None:
    clock = FakeClock()
    seen: list[str] = []
    alarm = Alarm()
    driver: SyncDriver[str] = SyncDriver(alarm, seen.append, clock=clock, sleep=clock.advance)
    driver.submit(partial(alarm.arm, 5.0))  # queued, not run
    driver.feed(partial(alarm.arm, 2.0))
    assert seen == ["armed"] and alarm.at == 2.0
    with pytest.raises(TypeError, match="an input must be a callable"):
        driver.feed("arm")  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError):  # the input's own error reaches the caller
        driver.feed(lambda now: [str(1 / 0)])
    driver.run()
    assert seen == ["armed", "armed", "rang"] and alarm.fired == [5.0]  # the queued arm ran last


def test_feed_wakes_a_sleeping_async_run_when_it_brings_the_timer_forward() -> None:
    alarm = Alarm()
    seen: list[str] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        driver: Driver[str] = Driver(alarm, seen.append)  # time.monotonic, as the loop's
        stop = asyncio.Event()
        alarm.at = loop.time() + 60.0  # the run goes to sleep for a minute
        run = asyncio.create_task(driver.run(stop=stop))
        await asyncio.sleep(0.05)
        start = loop.time()
        driver.feed(partial(alarm.arm, start + 0.05))  # from a callback: the timer moves closer
        while not alarm.fired:
            await asyncio.sleep(0.01)
            assert loop.time() - start < 5.0, "the run overslept the new deadline"
        stop.set()
        await run
        return alarm.fired[0] - start

    waited = asyncio.run(main())
    assert 0.05 <= waited < 5.0
    assert seen == ["armed", "rang"]
