"""The generic world: determinism, every fault observable, and a stateful model of its rules."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import dynamo_core.testing.world as world_module
from dynamo_core.errors import DynamoError
from dynamo_core.testing import NetworkConfig, World
from dynamo_core.testing.world import Send

NAMES = ("a", "b", "c")


class Gossip:
    """A tiny protocol: every `period` seconds, tell every peer how many ticks it has seen."""

    def __init__(self, name: str, disk: dict[str, Any], now: float, period: float = 0.1) -> None:
        self.name = name
        self.disk = disk
        self.period = period
        self.next = now + period
        self.received: list[tuple[str, object, float]] = []
        self.timers: list[float] = []

    def receive(self, source: str, message: object, now: float) -> list[object]:
        self.received.append((source, message, now))
        self.disk["seen"] = self.disk.get("seen", 0) + 1
        return []

    def deadline(self) -> float | None:
        return self.next

    def on_timer(self, now: float) -> list[object]:
        self.timers.append(now)
        self.next = now + self.period
        tick = len(self.timers)
        return [Send(peer, (self.name, tick)) for peer in NAMES if peer != self.name]


class Sink:
    """Records what it receives; no timer."""

    def __init__(self, disk: dict[str, Any]) -> None:
        self.disk = disk
        self.received: list[tuple[str, object]] = []

    def receive(self, source: str, message: object, now: float) -> list[object]:
        self.received.append((source, message))
        self.disk["n"] = self.disk.get("n", 0) + 1
        return []

    def deadline(self) -> float | None:
        return None

    def on_timer(self, now: float) -> list[object]:
        return []


def gossip_world(seed: int, network: NetworkConfig | None = None, **kw: Any) -> World:
    world = World(seed=seed, network=network, **kw)
    for name in NAMES:
        world.spawn(name, partial(boot_gossip, name))
    return world


def boot_gossip(name: str, disk: dict[str, Any], now: float) -> Gossip:
    return Gossip(name, disk, now)


def sinks(network: NetworkConfig | None = None, seed: int = 0) -> World:
    world = World(seed=seed, network=network)
    for name in NAMES:
        world.spawn(name, lambda disk, now: Sink(disk))
    return world


def send(world: World, source: str, target: str, message: object) -> None:
    world.call(source, lambda proc, now: [Send(target, message)], "send")


def received(world: World, name: str) -> list[tuple[str, object]]:
    process = world.process(name)
    assert isinstance(process, Sink)
    return process.received


ROUGH = NetworkConfig(drop=0.1, duplicate=0.1, slow=0.1, reorder=True)


def chaos(seed: int) -> str:
    """Every fault in one run; returns the trace hash."""
    world = gossip_world(seed, ROUGH)
    world.run(0.5)
    world.partition(["a"], ["b", "c"])
    world.run(0.3)
    world.crash("b")
    world.pause("c")
    world.skew("a", 0.25, rate=1.5)
    world.run(0.3)
    world.resume("c")
    world.restart("b")
    world.block("c", "a")
    world.heal()
    world.crash("c", wipe=True)
    world.restart("c")
    world.run(0.5)
    return world.trace_hash


def test_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(world_module)
    assert tried > 0
    assert failures == 0


def test_same_seed_same_trace_and_different_seeds_differ() -> None:
    assert chaos(1) == chaos(1)
    assert len({chaos(seed) for seed in range(5)}) == 5


def test_the_trace_does_not_depend_on_the_hash_seed() -> None:
    code = "import test_testing_world as t; print(t.chaos(3))"
    tests = os.path.dirname(__file__)
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": tests},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in (1, 2)
    }
    assert hashes == {chaos(3)}


def test_the_log_reads_the_last_events_in_order() -> None:
    world = sinks()
    send(world, "a", "b", "hello")
    world.crash("c")
    send(world, "a", "c", "anyone?")
    world.run(1.0)
    lines = [line.split(" ", 1)[1] for line in world.log().splitlines()]
    assert lines.index("crash c") < lines.index("lost a>c 'anyone?'")
    assert "recv a>b 'hello'" in lines
    assert world.log(last=1).endswith(lines[-1])
    assert world.log(last=0) == ""


def test_the_full_trace_is_kept_on_request_and_matches_the_hash() -> None:
    import hashlib

    world = gossip_world(4, ROUGH, record_trace=True)
    world.run(1.0)
    assert world.trace_lines is not None
    text = "".join(line + "\n" for line in world.trace_lines)
    assert hashlib.sha256(text.encode()).hexdigest() == world.trace_hash


def test_the_hash_read_at_any_point_covers_every_line_so_far() -> None:
    # Lines are hashed in batches: reading the hash between batches must still see them all.
    import hashlib

    world = gossip_world(5, ROUGH, record_trace=True)
    lines = world.trace_lines
    assert lines is not None
    for step in range(1, 60):
        world.run(0.05 * step)
        text = "".join(line + "\n" for line in lines)
        assert hashlib.sha256(text.encode()).hexdigest() == world.trace_hash
    assert len(lines) > 2_000  # several batches were hashed


def test_delay_is_latency_plus_jitter() -> None:
    world = World(network=NetworkConfig(latency=0.05, jitter=0.0))
    world.spawn("a", lambda disk, now: Sink(disk))
    world.spawn("b", lambda disk, now: Sink(disk))
    send(world, "a", "b", 1)
    world.run(0.049)
    assert received(world, "b") == []
    world.run(0.002)
    assert received(world, "b") == [("a", 1)]


def test_drop_loses_messages() -> None:
    world = sinks(NetworkConfig(drop=0.5))
    for i in range(200):
        send(world, "a", "b", i)
    world.run(1.0)
    got = len(received(world, "b"))
    assert world.counts()["dropped"] == 200 - got
    assert 60 < got < 140


def test_duplicate_delivers_twice() -> None:
    world = sinks(NetworkConfig(duplicate=1.0))
    send(world, "a", "b", "x")
    world.run(1.0)
    assert received(world, "b") == [("a", "x"), ("a", "x")]
    assert world.counts()["duplicated"] == 1


def test_links_are_fifo_unless_reorder_is_on() -> None:
    for reorder in (False, True):
        world = sinks(NetworkConfig(jitter=0.01, reorder=reorder), seed=2)
        for i in range(100):
            send(world, "a", "b", i)
        world.run(2.0)
        order = [message for _, message in received(world, "b")]
        assert sorted(order) == list(range(100))  # type: ignore[type-var]
        assert (order == list(range(100))) is not reorder
        assert (world.counts()["reordered"] > 0) is reorder


def test_partitions_of_any_shape() -> None:
    world = sinks()
    world.partition(["a"], ["b"])  # c is in a third group of its own
    assert not world.can_talk("a", "b") and not world.can_talk("b", "c")
    world.heal()
    world.block("a", "b")  # one way only
    send(world, "a", "b", "there")
    send(world, "b", "a", "back")
    world.run(1.0)
    assert received(world, "b") == []
    assert received(world, "a") == [("b", "back")]
    assert world.counts()["partitioned"] == 1
    world.heal()
    world.isolate("c")
    assert not world.can_talk("a", "c") and not world.can_talk("c", "b")
    world.rejoin("c")
    assert world.can_talk("a", "c")
    with pytest.raises(ValueError, match="repeated process 'b'"):
        world.partition(["a", "b"], ["b"])
    with pytest.raises(ValueError, match="unknown process 'z'"):
        world.isolate("z")


def test_a_partition_drops_messages_in_flight() -> None:
    world = World(network=NetworkConfig(latency=0.1, jitter=0.0))
    for name in NAMES:
        world.spawn(name, lambda disk, now: Sink(disk))
    send(world, "a", "b", "late")
    world.run(0.05)
    world.isolate("b")
    world.run(1.0)
    assert received(world, "b") == []


def test_crash_keeps_the_disk_and_a_wipe_loses_it() -> None:
    world = sinks()
    send(world, "a", "b", 1)
    world.run(1.0)
    world.crash("b")
    send(world, "a", "b", 2)
    world.run(1.0)
    assert world.counts()["to_down_process"] == 1
    assert not world.call("b", lambda proc, now: [])
    world.restart("b")
    assert received(world, "b") == []  # volatile state is gone
    assert world.disk("b") == {"n": 1}  # the disk survived
    world.crash("b", wipe=True)
    world.restart("b")
    assert world.disk("b") == {}
    with pytest.raises(DynamoError, match="running"):
        world.restart("b")
    world.crash("b")
    with pytest.raises(DynamoError, match="already down"):
        world.crash("b")
    with pytest.raises(DynamoError, match="down"):
        world.process("b")


def test_the_survive_hook_decides_what_a_crash_keeps() -> None:
    world = World()
    world.spawn("a", lambda disk, now: Sink(disk))
    world.spawn("b", lambda disk, now: Sink(disk), survive=lambda disk: {"synced": True})
    send(world, "a", "b", 1)
    world.run(1.0)
    world.crash("b")
    world.restart("b")
    assert world.disk("b") == {"synced": True}


def test_a_paused_process_holds_messages_inputs_and_timers_until_resumed() -> None:
    world = gossip_world(0, NetworkConfig(jitter=0.0))
    world.pause("b")
    world.run(1.0)
    gossip = world.process("b")
    assert isinstance(gossip, Gossip)
    assert gossip.received == [] and gossip.timers == []
    assert world.counts()["held"] > 0 and world.is_paused("b")
    world.call("b", lambda proc, now: [Send("a", "after")], "late input")
    world.resume("b")
    assert [m for _, m, _ in gossip.received[:3]] == [("a", 1), ("c", 1), ("a", 2)]
    world.run(0.2)
    assert gossip.timers  # its timer runs again
    with pytest.raises(DynamoError, match="not paused"):
        world.resume("b")


def test_a_crash_while_paused_loses_what_it_held() -> None:
    world = sinks()
    world.pause("b")
    send(world, "a", "b", 1)
    world.run(1.0)
    world.crash("b")
    world.restart("b")
    world.run(1.0)
    assert received(world, "b") == [] and world.disk("b") == {}


def test_clock_skew_shifts_what_the_process_sees_and_when_its_timer_fires() -> None:
    world = gossip_world(0)
    world.skew("a", 10.0)
    assert world.local_time("a") == pytest.approx(10.0)
    world.run(0.3)
    gossip = world.process("a")
    assert isinstance(gossip, Gossip)
    # Its deadline (0.1, its own clock) is long past on the skewed clock: it fires at once.
    assert gossip.timers[0] == pytest.approx(10.0)
    world.skew("b", -5.0)  # backwards: b's clock stands still instead
    assert world.local_time("b") == pytest.approx(0.3)
    world.skew("c", 0.0, rate=2.0)
    world.run(1.0)
    assert world.local_time("c") == pytest.approx(0.3 + 2.0)
    c = world.process("c")
    assert isinstance(c, Gossip)
    # At rate 2 its 0.1 s period passes every 0.05 world seconds.
    assert 19 <= sum(1 for t in c.timers if t > 0.3) <= 21
    with pytest.raises(ValueError, match="rate"):
        world.skew("c", rate=0.0)
    with pytest.raises(ValueError, match="offset"):
        world.skew("c", float("nan"))


@given(
    st.floats(0, 1e6),
    st.floats(-1e3, 1e3),
    st.floats(0.01, 100.0),
    st.floats(0, 1e6),
)
def test_a_skewed_timer_is_due_when_its_clock_reaches_the_deadline_not_an_ulp_before(
    now: float, offset: float, rate: float, ahead: float
) -> None:
    clock = world_module._Clock(now)
    clock.anchor_local, clock.rate = now + offset, rate
    deadline = clock.anchor_local + ahead
    at = clock.world(deadline)
    # Firing earlier would find nothing due and ask for the same instant again, forever.
    assert clock.anchor_local + clock.rate * (at - clock.anchor_world) >= deadline
    assert at == pytest.approx(now + ahead / rate, rel=1e-12, abs=1e-9)


class Strict:
    """Acts only once its own clock has reached its deadline, as the node does."""

    def __init__(self, now: float) -> None:
        self.next = now + 0.1
        self.fired = 0

    def receive(self, source: str, message: object, now: float) -> list[object]:
        return []

    def deadline(self) -> float | None:
        return self.next

    def on_timer(self, now: float) -> list[object]:
        if now >= self.next:
            self.fired += 1
            self.next = now + 0.1
        return []


@settings(max_examples=25, deadline=None)
@given(st.floats(-5.0, 5.0), st.floats(0.1, 10.0))
def test_a_strict_process_under_any_skew_never_stalls_virtual_time(
    offset: float, rate: float
) -> None:
    world = World(seed=0)
    world.spawn("a", lambda disk, now: Strict(now))
    world.run(0.01)
    world.skew("a", offset, rate=rate)
    steps = 0
    while world.step() and world.now < 2.0:
        steps += 1
        assert steps < 1_000, "the loop spins without time moving"
    strict = world.process("a")
    assert isinstance(strict, Strict) and strict.fired >= 1


def test_bad_arguments_are_refused() -> None:
    world = World()
    with pytest.raises(TypeError, match="seed"):
        World(seed="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="network"):
        World(network={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="boot must return a process"):
        world.spawn("a", lambda disk, now: object())  # type: ignore[arg-type,return-value]
    world.spawn("b", lambda disk, now: Sink(disk))
    with pytest.raises(ValueError, match="already a process"):
        world.spawn("b", lambda disk, now: Sink(disk))
    with pytest.raises(KeyError):
        world.crash("nobody")
    with pytest.raises(ValueError, match="drop"):
        NetworkConfig(drop=1.5)


def test_effects_other_than_sends_go_to_observers() -> None:
    world = World()
    seen: list[tuple[str, object]] = []
    world.observe(lambda now, name, effect: seen.append((name, effect)))
    world.spawn("a", lambda disk, now: Sink(disk))
    world.call("a", lambda proc, now: ["done"])
    assert seen == [("a", "done")]


@given(
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=40),
    st.integers(0, 2**32),
)
@settings(max_examples=50)
def test_without_faults_every_message_arrives_once_in_link_order(
    sends: list[tuple[str, str]], seed: int
) -> None:
    world = sinks(NetworkConfig(jitter=0.005), seed=seed)
    for i, (source, target) in enumerate(sends):
        send(world, source, target, i)
    world.run(5.0)
    for target in NAMES:
        got = received(world, target)
        for source in NAMES:
            expected = [i for i, (s, t) in enumerate(sends) if (s, t) == (source, target)]
            assert [m for s, m in got if s == source] == expected


class WorldMachine(RuleBasedStateMachine):
    """The world's process rules against a model: up, paused, held messages, the disk count."""

    def __init__(self) -> None:
        super().__init__()
        self.world = sinks(NetworkConfig(jitter=0.0))
        self.world.spawn("src", lambda disk, now: Sink(disk))  # never faulted: sends at once
        self.up = dict.fromkeys(NAMES, True)
        self.paused = dict.fromkeys(NAMES, False)
        self.disk = dict.fromkeys(NAMES, 0)
        self.pending: list[str] = []  # in flight, by target
        self.held: dict[str, int] = dict.fromkeys(NAMES, 0)

    @rule(to=st.sampled_from(NAMES))
    def send(self, to: str) -> None:
        send(self.world, "src", to, "m")
        self.pending.append(to)

    @rule()
    def run(self) -> None:
        self.world.run(1.0)
        for target in self.pending:
            if self.paused[target]:
                self.held[target] += 1
            elif self.up[target]:
                self.disk[target] += 1
        self.pending = []

    @precondition(lambda self: any(self.up.values()))
    @rule(name=st.sampled_from(NAMES), wipe=st.booleans())
    def crash(self, name: str, wipe: bool) -> None:
        if not self.up[name]:
            with pytest.raises(DynamoError):
                self.world.crash(name, wipe=wipe)
            return
        self.world.crash(name, wipe=wipe)
        self.up[name] = self.paused[name] = False
        self.held[name] = 0
        if wipe:
            self.disk[name] = 0

    @rule(name=st.sampled_from(NAMES))
    def restart(self, name: str) -> None:
        if self.up[name]:
            with pytest.raises(DynamoError):
                self.world.restart(name)
            return
        self.world.restart(name)
        self.up[name] = True

    @rule(name=st.sampled_from(NAMES))
    def pause_or_resume(self, name: str) -> None:
        if not self.up[name]:
            return
        if self.paused[name]:
            self.world.resume(name)
            self.disk[name] += self.held[name]
            self.held[name] = 0
        else:
            self.world.pause(name)
        self.paused[name] = not self.paused[name]

    @invariant()
    def matches_the_model(self) -> None:
        for name in NAMES:
            assert self.world.is_up(name) == self.up[name]
            assert self.world.disk(name).get("n", 0) == self.disk[name]
            if self.up[name]:
                assert self.world.is_paused(name) == self.paused[name]


TestWorldMachine = WorldMachine.TestCase
TestWorldMachine.settings = settings(max_examples=60, stateful_step_count=30)
