"""The checkers: each one passes a correct run and catches its negative control."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import dynamo_core.testing.checks as checks_module
from dynamo_core import QuorumPolicy
from dynamo_core.testing import (
    ReadYourWrites,
    SetHistory,
    Verdict,
    World,
    check_all,
    converge,
    converged,
    set_full,
)
from dynamo_core.testing.world import Send


def test_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(checks_module)
    assert tried > 0
    assert failures == 0


def test_set_full_passes_a_kept_history_and_catches_loss_and_resurrection() -> None:
    history: SetHistory[str, str] = SetHistory()
    history.ok(history.invoke("k", "a"))
    history.invoke("k", "b")  # never acknowledged: may or may not survive
    assert set_full(history, {"k": {"a"}}).ok
    assert set_full(history, {"k": {"a", "b"}}).ok
    lost = set_full(history, {"k": {"b"}})
    assert not lost.ok and lost.problems == ("lost: 'k' 'a'",)
    ghost = set_full(history, {"k": {"a", "zombie"}})
    assert ghost.problems == ("unexpected: 'k' 'zombie'",)


class Replica:
    """A set replica that pushes its whole state to its peers every `period` seconds."""

    def __init__(self, name: str, peers: tuple[str, ...], disk: dict[str, Any], now: float):
        self.name, self.peers, self.disk = name, peers, disk
        self.items: set[str] = set(disk.get("items", ()))
        self.next = now + 0.5
        self.merge = True

    def add(self, item: str) -> list[object]:
        self.items.add(item)
        self.disk["items"] = set(self.items)
        return []

    def receive(self, source: str, message: Any, now: float) -> list[object]:
        if self.merge:
            self.items |= message
            self.disk["items"] = set(self.items)
        return []

    def deadline(self) -> float:
        return self.next

    def on_timer(self, now: float) -> list[object]:
        self.next = now + 0.5
        return [Send(peer, frozenset(self.items)) for peer in self.peers]


NAMES = ("a", "b", "c")


def replicas(merge: bool = True) -> World:
    world = World(seed=3)
    for name in NAMES:
        peers = tuple(n for n in NAMES if n != name)

        def boot(disk: dict[str, Any], now: float, name: str = name, peers: Any = peers) -> Any:
            replica = Replica(name, peers, disk, now)
            replica.merge = merge
            return replica

        world.spawn(name, boot)
    return world


def states(world: World) -> dict[str, object]:
    return {name: world.process(name).items for name in NAMES}  # type: ignore[attr-defined]


def test_convergence_after_healing_within_the_bound() -> None:
    world = replicas()
    world.isolate("c")
    world.call("a", lambda replica, now: replica.add("x"))
    world.call("c", lambda replica, now: replica.add("y"))
    world.run(2.0)
    assert not converged(states(world)).ok
    world.heal()
    verdict = converge(world, lambda: states(world), rounds=4, round_seconds=0.5)
    assert verdict.ok, verdict
    assert states(world)["b"] == {"x", "y"}


def test_convergence_catches_replicas_that_never_merge() -> None:
    world = replicas(merge=False)  # the negative control: anti-entropy that applies nothing
    world.call("a", lambda replica, now: replica.add("x"))
    verdict = converge(world, lambda: states(world), rounds=4, round_seconds=0.5)
    assert not verdict.ok
    assert verdict.count == 2 and "b differs from a" in verdict.problems[0]
    assert "within 4 round(s)" in str(verdict)


def test_convergence_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="rounds"):
        converge(replicas(), dict, rounds=0)


def test_read_your_writes_holds_when_reads_see_the_write_or_a_later_one() -> None:
    ryw = ReadYourWrites(QuorumPolicy(3, 2, 2))
    ryw.write("alice", "k", "v1")
    ryw.read("alice", "k", ["v1"])
    ryw.write("bob", "k", "v2")
    ryw.read("alice", "k", ["v2"])  # a later write superseded alice's: fine
    ryw.read("carol", "k", [])  # carol never wrote: nothing is promised to her
    assert ryw.check().ok and ryw.reads == 3


def test_read_your_writes_catches_a_stale_read() -> None:
    ryw = ReadYourWrites(QuorumPolicy(3, 2, 2))
    ryw.write("bob", "k", "v0")
    ryw.write("alice", "k", "v1")
    ryw.read("alice", "k", ["v0"])  # the negative control: an older value only
    verdict = ryw.check()
    assert not verdict.ok
    assert verdict.problems == ("alice read 'k' without its write 'v1' (saw [\"'v0'\"])",)


def test_read_your_writes_exempts_fallbacks_and_non_overlapping_quorums() -> None:
    sloppy = ReadYourWrites(QuorumPolicy(3, 2, 2))
    sloppy.write("alice", "k", "v1", fallback=True)
    sloppy.read("alice", "k", [])
    sloppy.write("alice", "j", "v2")
    sloppy.read("alice", "j", [], fallback=True)
    assert sloppy.check().ok and sloppy.exempt == 2
    weak = ReadYourWrites(QuorumPolicy(3, 1, 1))  # r + w = n: no promise
    weak.write("alice", "k", "v1")
    weak.read("alice", "k", [])
    assert weak.check().ok and weak.exempt == 1
    with pytest.raises(TypeError, match="QuorumPolicy"):
        ReadYourWrites((3, 2, 2))  # type: ignore[arg-type]


def test_a_custom_checker_plugs_in_and_a_bad_one_is_refused() -> None:
    world = replicas()
    world.call("a", lambda replica, now: replica.add("x"))
    world.run(2.0)

    def nothing_but_x() -> Verdict:
        return Verdict.of(
            "only x",
            (f"{n} holds {s!r}" for n, s in states(world).items() if s != {"x"}),
        )

    def every_replica_has_y() -> Verdict:  # the negative control: y was never added
        return Verdict.of("has y", (n for n, s in states(world).items() if "y" not in s))  # type: ignore[operator]

    verdicts = check_all([nothing_but_x, every_replica_has_y])
    assert [v.ok for v in verdicts] == [True, False]
    assert verdicts[1].problems == NAMES
    with pytest.raises(TypeError, match="must return a Verdict"):
        check_all([lambda: True])  # type: ignore[list-item,return-value]
