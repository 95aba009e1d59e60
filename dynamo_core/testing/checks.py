"""Checkers for runs of your own protocol: set-full, convergence, read-your-writes, your own.

Each checker returns a [`Verdict`][dynamo_core.testing.Verdict] — a name, whether it held, and
the problems it found, readable as they are — so that checks compose:
[`check_all`][dynamo_core.testing.check_all] runs any callables that return a verdict, the
library's and yours alike.

* [`set_full`][dynamo_core.testing.set_full] — Jepsen's set-full check over a
  [`SetHistory`][dynamo_core.testing.SetHistory]: no acknowledged add lost, nothing from nowhere.
* [`converged`][dynamo_core.testing.converged] — every replica holds an equal state;
  [`converge`][dynamo_core.testing.converge] runs a [`World`][dynamo_core.testing.World] round
  by round after healing until they do, within a bound.
* [`ReadYourWrites`][dynamo_core.testing.ReadYourWrites] — a session reads what it wrote, when
  the quorums overlap (``r + w > n``) and no fallback (sloppy-quorum stand-in) answered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import attrs

from dynamo_core._check import check_positive_float, check_positive_int
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.testing.history import SetHistory
from dynamo_core.testing.world import World

__all__ = [
    "ReadYourWrites",
    "Verdict",
    "check_all",
    "converge",
    "converged",
    "set_full",
]

_SHOWN = 20  # problems a verdict lists; the count says how many there were


@attrs.frozen
class Verdict:
    """What one checker found.

    Attributes:
        name: The checker's name.
        ok: Whether the property held.
        problems: What broke it, one readable line each (the first 20).
        count: How many problems there were.
    """

    name: str
    ok: bool
    problems: tuple[str, ...] = ()
    count: int = 0

    @classmethod
    def of(cls, name: str, problems: Iterable[str]) -> Verdict:
        """A verdict that holds exactly when `problems` is empty."""
        found = list(problems)
        return cls(name, not found, tuple(found[:_SHOWN]), len(found))

    def __str__(self) -> str:
        head = f"{self.name}: {'ok' if self.ok else f'{self.count} problem(s)'}"
        return "\n  - ".join([head, *self.problems])


def check_all(checks: Iterable[Callable[[], Verdict]]) -> tuple[Verdict, ...]:
    """Run every check (any callable returning a `Verdict`: yours plug in here).

    Raises:
        TypeError: a check did not return a `Verdict`.
    """
    verdicts = []
    for check in checks:
        verdict = check()
        if not isinstance(verdict, Verdict):
            raise TypeError(f"a check must return a Verdict, not {type(verdict).__name__}")
        verdicts.append(verdict)
    return tuple(verdicts)


def set_full(history: SetHistory[Any, Any], final: Mapping[Any, Iterable[Any]]) -> Verdict:
    """Jepsen's set-full check: no acknowledged add lost, nothing that was never attempted.

    Examples:
        >>> history = SetHistory()
        >>> history.ok(history.invoke("cart", "apple"))
        >>> set_full(history, {"cart": set()}).problems
        ("lost: 'cart' 'apple'",)
    """
    verdict = history.check(final)
    return Verdict.of(
        "set-full",
        [f"lost: {key!r} {item!r}" for key, item in verdict.lost]
        + [f"unexpected: {key!r} {item!r}" for key, item in verdict.unexpected],
    )


def converged(states: Mapping[str, object]) -> Verdict:
    """Whether every replica's state equals the first one's (``==``).

    Args:
        states: Each replica's state, by name (a down replica: leave it out, or give `None`).

    Examples:
        >>> converged({"a": {1, 2}, "b": {1, 2}}).ok
        True
        >>> converged({"a": {1, 2}, "b": {1}}).problems
        ('b differs from a: {1} != {1, 2}',)
    """
    items = list(states.items())
    if not items:
        return Verdict.of("convergence", [])
    first, reference = items[0]
    return Verdict.of(
        "convergence",
        (
            f"{name} differs from {first}: {state!r} != {reference!r}"
            for name, state in items[1:]
            if state != reference
        ),
    )


def converge(
    world: World,
    states: Callable[[], Mapping[str, object]],
    *,
    rounds: int = 10,
    round_seconds: float = 1.0,
) -> Verdict:
    """Run `world` round by round until `states()` have converged, for at most `rounds` rounds.

    Heal the world and restart its processes first: this only lets time pass (anti-entropy,
    hinted handoff, gossip) and checks after every round. The verdict names the rounds used.

    Args:
        world: The world, healed.
        states: Returns every replica's state, by name.
        rounds: The bound: how many rounds convergence may take.
        round_seconds: Virtual seconds per round (your anti-entropy period, say).

    Raises:
        TypeError, ValueError: `rounds` or `round_seconds` is not positive.
    """
    check_positive_int(rounds, "rounds", maximum=1_000_000)
    check_positive_float(round_seconds, "round_seconds")
    verdict = converged(states())
    used = 0
    while not verdict.ok and used < rounds:
        world.run(round_seconds)
        used += 1
        verdict = converged(states())
    name = f"convergence within {rounds} round(s)"
    if verdict.ok:
        return Verdict(f"{name}: took {used}", True)
    return Verdict(name, False, verdict.problems, verdict.count)


class ReadYourWrites:
    """Read-your-writes per session, where the quorum makes it a promise.

    With ``r + w > n`` every read quorum meets every write quorum, so a session that wrote a
    value and then reads the key must see that value — or one written after it — unless a
    fallback (a stand-in of the sloppy quorum) took part in the write or the read: then the
    quorums need not meet, and the read is *exempt*. Record acknowledged writes and completed
    reads in the order they happened.

    Args:
        policy: The quorum policy the store ran with.

    Examples:
        >>> from dynamo_core import QuorumPolicy
        >>> ryw = ReadYourWrites(QuorumPolicy(3, 2, 2))
        >>> ryw.write("alice", "cart", "v1")
        >>> ryw.read("alice", "cart", [])
        >>> ryw.check().problems
        ("alice read 'cart' without its write 'v1' (saw [])",)
    """

    def __init__(self, policy: QuorumPolicy) -> None:
        if not isinstance(policy, QuorumPolicy):
            raise TypeError(f"policy must be a QuorumPolicy, not {type(policy).__name__}")
        self._applies = policy.r + policy.w > policy.n
        self._writes: dict[Hashable, list[tuple[Hashable, Hashable, bool]]] = {}
        self._last: dict[tuple[Hashable, Hashable], tuple[int, bool]] = {}
        self._problems: list[str] = []
        self.reads = 0
        self.exempt = 0

    def write(
        self, session: Hashable, key: Hashable, value: Hashable, *, fallback: bool = False
    ) -> None:
        """Record that `session`'s write of `value` to `key` was acknowledged.

        Args:
            session: Who wrote (a client, a connection).
            key: The key written.
            value: What was written (unique per write, so a read shows which writes it saw).
            fallback: Whether a fallback stored it (a hinted write).
        """
        log = self._writes.setdefault(key, [])
        self._last[(session, key)] = (len(log), fallback)
        log.append((session, value, fallback))

    def read(
        self,
        session: Hashable,
        key: Hashable,
        values: Iterable[Hashable],
        *,
        fallback: bool = False,
    ) -> None:
        """Record that `session` read `values` (every sibling) from `key`.

        Args:
            session: Who read.
            key: The key read.
            values: Every value the read returned.
            fallback: Whether a fallback answered the read.
        """
        self.reads += 1
        last = self._last.get((session, key))
        if last is None:
            return
        index, wrote_via_fallback = last
        if not self._applies or fallback or wrote_via_fallback:
            self.exempt += 1
            return
        seen = list(values)
        log = self._writes[key]
        allowed = {value for _, value, _ in log[index + 1 :]}
        mine = log[index][1]
        if mine not in seen and not allowed.intersection(seen):
            self._problems.append(
                f"{session} read {key!r} without its write {mine!r} (saw {sorted(map(repr, seen))})"
            )

    def check(self) -> Verdict:
        """The verdict: every non-exempt read saw its session's last write or a later one."""
        return Verdict.of("read-your-writes", self._problems)
