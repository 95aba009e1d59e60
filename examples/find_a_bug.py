"""Find a real bug in a replicated store of your own: hypothesis draws the faults, World runs them.

A "user" builds a small replicated set on two of the library's primitives: every key's state is
a `DVVSet`, and the coordinator of a put keeps, in a `HintStore`, one hint per peer until that
peer confirms it holds the write; a timer resends what is still hinted. Three replicas, every
put to all of them, acknowledged once two hold it (W = 2).

The bug is one line: ``HintStore()`` keeps its hints in memory (a fresh `MemoryStorage`), not on
the process's disk, so a coordinator that crashes forgets which peers still miss a write. No
example-based test meets it: it needs a peer cut off, a put, and the coordinator crashing before
the peer is back. Hypothesis draws schedules (faults, clock skews, puts) with
`dynamo_core.strategies.schedules`, runs each in a seeded `World`, checks convergence and
set-full, finds the bug and shrinks the schedule to a handful of events; the fixed store (hints
on disk) then passes hundreds of schedules.

Run it: ``python examples/find_a_bug.py`` (needs hypothesis: the ``hypothesis`` extra). It is
deterministic (derandomized hypothesis, a seeded world). Its last line is JSON: ``found``,
``shrunk_events`` (fault events in the shrunk schedule) and ``fixed_examples``.

# requires: hypothesis (pip)
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import find, given, settings

from dynamo_core import DVVSet, HintStore, MemoryStorage
from dynamo_core.strategies import schedules
from dynamo_core.testing import (
    Operation,
    Schedule,
    SetHistory,
    Verdict,
    World,
    check_all,
    converge,
    set_full,
)
from dynamo_core.testing.world import Send

# --8<-- [start:store]
REPLICAS = ("a", "b", "c")
RETRY = 0.5  # seconds between resends of what is still hinted


@dataclass(frozen=True)
class Store:
    """Coordinator to peer: hold this state of `key`."""

    key: str | bytes
    state: DVVSet[bytes]


@dataclass(frozen=True)
class Stored:
    """Peer to coordinator: I now hold `state` for `key`."""

    key: str | bytes
    state: DVVSet[bytes]


@dataclass(frozen=True)
class Acked:
    """Coordinator to client: your put of `value` is on two replicas."""

    value: bytes


class Replica:
    """One replica of every key, and the coordinator of the puts it is given."""

    def __init__(self, name: str, disk: dict[str, Any], now: float, fixed: bool) -> None:
        self.name = name
        self.data: dict[str | bytes, DVVSet[bytes]] = disk.setdefault("data", {})
        # The bug: HintStore() keeps its hints in memory, and a crash forgets them.
        # The fix: keep them on the process's disk, beside the data.
        storage = disk.setdefault("hints", MemoryStorage()) if fixed else MemoryStorage()
        self.hints = HintStore(storage)
        self.waiting: list[tuple[str | bytes, bytes]] = []  # puts not yet acknowledged
        self.next_retry = now + RETRY

    def put(self, key: str, value: bytes, now: float) -> list[object]:
        """A client's put: store it, hint it for each peer, send it to each peer."""
        state = self.data.get(key, DVVSet()).update(value, self.name)
        self.data[key] = state
        self.waiting.append((key, value))
        peers = [peer for peer in REPLICAS if peer != self.name]
        for peer in peers:
            self.hints.add(peer, key, state, now)  # until `peer` says it holds the write
        return [Send(peer, Store(key, state)) for peer in peers]

    def receive(self, source: str, message: Store | Stored, now: float) -> list[object]:
        """A peer's write (merge it, confirm it), or a confirmation (drop the hint, ack)."""
        if isinstance(message, Store):
            merged = self.data.get(message.key, DVVSet()).sync(message.state)
            self.data[message.key] = merged
            return [Send(source, Stored(message.key, merged))]
        hint = self.hints.get(source, message.key)
        if hint is not None and message.state.descends(hint.state):
            self.hints.remove(hint)
        held = set(message.state.values)
        done = [(k, v) for k, v in self.waiting if k == message.key and v in held]
        self.waiting = [put for put in self.waiting if put not in done]
        return [Acked(value) for _, value in done]

    def deadline(self) -> float:
        """When the next resend is due."""
        return self.next_retry

    def on_timer(self, now: float) -> list[object]:
        """Resend every hinted state to its peer."""
        self.next_retry = now + RETRY
        return [
            Send(target, Store(hint.key, hint.state))
            for target in self.hints.targets()
            for hint in self.hints.pending(target)
        ]


def boot(name: str, disk: dict[str, Any], now: float, *, fixed: bool) -> Replica:
    """Start (or restart) replica `name` on what its disk holds."""
    return Replica(name, disk, now, fixed)


# --8<-- [end:store]


# --8<-- [start:run]
def run(schedule: Schedule, *, fixed: bool) -> tuple[tuple[Verdict, ...], World]:
    """One run: the schedule, then heal and restart everything, then check."""
    world = World(seed=0, start=10.0)  # start at 10 s: a clock skewed back stays positive
    for name in REPLICAS:
        world.spawn(name, functools.partial(boot, name, fixed=fixed))
    history: SetHistory[str, bytes] = SetHistory()
    ops: dict[bytes, int] = {}

    def on_effect(now: float, name: str, effect: object) -> None:
        if isinstance(effect, Acked):
            history.ok(ops[effect.value])

    world.observe(on_effect)

    def put(op: Operation) -> None:
        value = f"v{op.value}".encode()
        if world.is_up(op.process):
            ops[value] = history.invoke(op.key, value)
        label = f"put {op.key}={op.value} via"
        world.call(op.process, lambda replica, now: replica.put(op.key, value, now), label)

    schedule.apply(world, put)
    world.run(schedule.end + 1.0)
    world.heal()
    for name in REPLICAS:
        if not world.is_up(name):
            world.restart(name)
        elif world.is_paused(name):
            world.resume(name)

    def states() -> dict[str, object]:
        return {name: world.disk(name)["data"] for name in REPLICAS}

    def on_every_replica() -> dict[str, set[bytes]]:
        keys = {key for name in REPLICAS for key in world.disk(name)["data"]}
        return {
            key: set.intersection(
                *(set(world.disk(n)["data"].get(key, DVVSet()).values) for n in REPLICAS)
            )
            for key in keys
        }

    verdicts = check_all(
        [
            lambda: converge(world, states, rounds=10),
            lambda: set_full(history, on_every_replica()),
        ]
    )
    return verdicts, world


# --8<-- [end:run]

# --8<-- [start:search]
# Three replicas, up to six faults (two out at once), two clock skews and six puts in 5 s.
SCHEDULES = schedules(REPLICAS, max_faults=6, max_down=2, max_skews=2, max_operations=6, duration=5)
DETERMINISTIC = settings(database=None, derandomize=True, deadline=None)


def broken(schedule: Schedule) -> bool:
    verdicts, _ = run(schedule, fixed=False)
    return not all(verdict.ok for verdict in verdicts)


shrunk = find(SCHEDULES, broken, settings=settings(DETERMINISTIC, max_examples=1000))
verdicts, world = run(shrunk, fixed=False)
print(f"Hypothesis found a failing schedule and shrank it to:\n{shrunk}\n")
for verdict in verdicts:
    print(verdict)
print("\nThe failing run's last events:")
print(world.log(12))
# --8<-- [end:search]

# --8<-- [start:fixed]
passed = 0


@settings(DETERMINISTIC, max_examples=300)
@given(SCHEDULES)
def test_the_fixed_store_keeps_every_put(schedule: Schedule) -> None:
    global passed  # noqa: PLW0603 - the count the summary reports
    verdicts, world = run(schedule, fixed=True)
    assert all(verdict.ok for verdict in verdicts), world.log()
    passed += 1


test_the_fixed_store_keeps_every_put()
print(f"\nWith the hints on disk, {passed} schedules pass, the shrunk one among them: ", end="")
print(all(verdict.ok for verdict in run(shrunk, fixed=True)[0]))
# --8<-- [end:fixed]

print(
    json.dumps(
        {
            "found": not all(verdict.ok for verdict in verdicts),
            "shrunk_events": shrunk.fault_events,
            "shrunk_schedule": str(shrunk).splitlines(),
            "fixed_examples": passed,
        }
    )
)
