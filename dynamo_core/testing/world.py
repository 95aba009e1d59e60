"""A deterministic world for any sans-I/O protocol: processes, a seeded network, virtual time.

[`World`][dynamo_core.testing.World] hosts processes of *your* protocol, each a core of the
library's shape (see [`dynamo_core.drive`][dynamo_core.drive]): it takes inputs with ``now``,
returns effects, and says when its timer is next due with ``deadline()``. A process receives
messages with ``receive(source, message, now)``; an effect with ``target`` and ``message``
attributes (the node's [`Send`][dynamo_core.node.Send], or this module's
[`Send`][dynamo_core.testing.world.Send]) is a message for the network, every other effect goes
to the observers you register. Everything runs in one thread on an event heap ordered by
``(time, sequence number)``; nothing depends on the wall clock, `hash()` or set order, so the
same seed and the same calls give the same trace, byte for byte:
[`trace_hash`][dynamo_core.testing.World.trace_hash] is its SHA-256 and
[`log`][dynamo_core.testing.World.log] its last lines, for a failing run.

The faults: the network ([`NetworkConfig`][dynamo_core.testing.NetworkConfig]) delays, drops,
duplicates and reorders; partitions take any shape (groups, an isolated process, a one-way
[`block`][dynamo_core.testing.World.block]); a process crashes (its volatile state gone, its
*disk* kept — or, with a ``survive`` hook, only what the hook keeps, e.g. the synced part),
loses its disk too (amnesia), restarts on what survived, pauses (it holds what arrives and
fires no timer until resumed: a gray failure) and runs on a skewed clock (an offset jump and a
rate, the time it sees never going backwards).
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterable
from typing import Any, Final, Generic, Protocol, TypeVar

import attrs

from dynamo_core._check import check_node_id, check_positive_float, check_time
from dynamo_core.errors import DynamoError

__all__ = ["NetworkConfig", "Process", "Send", "World"]

_DELIVER: Final = 0
_TIMER: Final = 1
_CALL: Final = 2
_EPSILON: Final = 1e-6
_LOG_LINES: Final = 200
_HASH_BATCH: Final = 512  # trace lines hashed at once: one update, not two per line

D = TypeVar("D")
M = TypeVar("M")


def _probability(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if type(value) is not float and type(value) is not int:
        raise TypeError(f"{attribute.name} must be a number, not {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _seconds(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_time(value, attribute.name)


def _delay_range(_: object, attribute: attrs.Attribute[tuple[float, float]], value: object) -> None:
    if type(value) is not tuple or len(value) != 2:
        raise TypeError(f"{attribute.name} must be a (low, high) pair of seconds")
    low, high = (check_time(v, attribute.name) for v in value)
    if low > high:
        raise ValueError(f"{attribute.name} must have low <= high, got {value!r}")


@attrs.frozen
class NetworkConfig:
    """How the simulated network treats each message.

    A message's one-way delay is ``latency + Exponential(mean=jitter)``; with probability `slow`
    it is delayed by a further uniform draw from `slow_delay` (a congested link, a GC pause).
    It is lost with probability `drop` and delivered twice with probability `duplicate`.
    Without `reorder`, messages between two nodes arrive in the order sent (FIFO links, as TCP
    gives); with it, each message keeps its own delay, so later messages overtake earlier ones.

    Attributes:
        latency: The minimum one-way delay, in seconds.
        jitter: The mean of the exponential part of the delay, in seconds.
        drop: The probability that a message is lost.
        duplicate: The probability that a message is delivered twice.
        slow: The probability that a message is delayed by `slow_delay`.
        slow_delay: The extra delay range, in seconds.
        reorder: Whether messages on one link may overtake each other.
    """

    latency: float = attrs.field(default=0.001, validator=_seconds)
    jitter: float = attrs.field(default=0.002, validator=_seconds)
    drop: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    slow: float = attrs.field(default=0.0, validator=_probability)
    slow_delay: tuple[float, float] = attrs.field(default=(0.02, 0.4), validator=_delay_range)
    reorder: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


class Process(Protocol):
    """What the world needs from a process: the core shape plus ``receive``."""

    def receive(self, source: str, message: Any, now: float) -> Iterable[object]:
        """Handle a message from process `source`; return the effects."""
        ...

    def deadline(self) -> float | None:
        """When `on_timer` must next be called (`None` or infinity: no timer)."""
        ...

    def on_timer(self, now: float) -> Iterable[object]:
        """Fire the timers due at `now`; return the effects."""
        ...


@attrs.frozen
class Send(Generic[M]):
    """An effect asking the world to send `message` to process `target`."""

    target: str
    message: M


Boot = Callable[[Any, float], Process]
"""Builds a process from its disk and the (local) time: called at spawn and at each restart."""


class _Clock:
    """A process's local clock: ``anchor_local + rate * (t - anchor_world)``, never backwards."""

    __slots__ = ("anchor_local", "anchor_world", "last", "rate")

    def __init__(self, now: float) -> None:
        self.anchor_world = now
        self.anchor_local = now
        self.rate = 1.0
        self.last = now

    def local(self, t: float) -> float:
        self.last = max(self.last, self.anchor_local + self.rate * (t - self.anchor_world))
        return self.last

    def world(self, deadline: float) -> float:
        """The first world time at which this clock reads `deadline` or later."""
        t = self.anchor_world + (deadline - self.anchor_local) / self.rate
        # Rounding can land one ulp early; a timer fired there finds nothing due, asks again
        # for the same instant and spins the loop without time moving.
        while self.anchor_local + self.rate * (t - self.anchor_world) < deadline:
            t = math.nextafter(t, math.inf)
        return t


class _Slot:
    """Everything the world keeps about one process name."""

    __slots__ = (
        "boot",
        "clock",
        "disk",
        "held",
        "incarnation",
        "make_disk",
        "process",
        "scheduled",
        "survive",
    )

    def __init__(
        self,
        boot: Boot,
        make_disk: Callable[[], Any],
        survive: Callable[[Any], Any] | None,
        now: float,
    ) -> None:
        self.boot = boot
        self.make_disk = make_disk
        self.survive = survive
        self.disk: Any = make_disk()
        self.process: Process | None = None
        self.incarnation = 0
        self.scheduled: float | None = None
        self.held: list[Callable[[], None]] | None = None  # not None while paused
        self.clock = _Clock(now)


def _describe(message: object) -> str:
    text = repr(message)
    return text if len(text) <= 160 else text[:157] + "..."


class World:
    """Processes of any protocol, a seeded network and virtual time, in one thread.

    Args:
        seed: Seeds every random choice of the network.
        network: The network's behaviour (default: 1 ms + jitter, no faults).
        start: The virtual time at which the world starts.
        record_trace: Keep every trace line in `trace_lines` (the hash and the last lines for
            [`log`][dynamo_core.testing.World.log] are always kept).
        describe: Turns a message into its trace text (default: its `repr`, cut at 160
            characters). It must be deterministic: no `id()`, no set order.

    Raises:
        TypeError, ValueError: An argument is invalid.

    Examples:
        >>> world = World(seed=1)
        >>> class Echo:
        ...     def receive(self, source, message, now):
        ...         return [Send(source, message + 1)] if message < 3 else []
        ...     def deadline(self): return None
        ...     def on_timer(self, now): return []
        >>> for name in ("a", "b"):
        ...     _ = world.spawn(name, lambda disk, now: Echo())
        >>> world.call("a", lambda proc, now: [Send("b", 0)])
        True
        >>> world.run(1.0)
        >>> world.counts()["delivered"]  # 0 to b, 1 to a, 2 to b, 3 to a
        4
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        network: NetworkConfig | None = None,
        start: float = 0.0,
        record_trace: bool = False,
        describe: Callable[[object], str] | None = None,
    ) -> None:
        if type(seed) is not int:
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self.network = network if network is not None else NetworkConfig()
        if describe is not None and not callable(describe):
            raise TypeError(f"describe must be callable, not {type(describe).__name__}")
        self._describe = describe if describe is not None else _describe
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._now = check_time(start, "start")
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._slots: dict[str, _Slot] = {}
        self._groups: list[list[str]] = []
        self._isolated: list[str] = []
        self._cuts: set[tuple[str, str]] = set()
        self._blocked: set[tuple[str, str]] = set()
        self._link_last: dict[tuple[str, str], float] = {}
        self._observers: list[Callable[[float, str, object], None]] = []
        self._hash = hashlib.sha256()
        self._unhashed: list[str] = []  # trace lines not yet fed to the hash, each with "\n"
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_LINES)
        self.trace_lines: list[str] | None = [] if record_trace else None
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "delivered",
                "dropped",
                "duplicated",
                "slowed",
                "reordered",
                "partitioned",
                "to_down_process",
                "held",
            ),
            0,
        )

    # -- views -------------------------------------------------------------------------------

    @property
    def network(self) -> NetworkConfig:
        """The network's current behaviour (assign a new one to change it mid-run)."""
        return self._network

    @network.setter
    def network(self, value: NetworkConfig) -> None:
        if not isinstance(value, NetworkConfig):
            raise TypeError(f"network must be a NetworkConfig, not {type(value).__name__}")
        self._network = value

    @property
    def now(self) -> float:
        """The world's virtual time, in seconds."""
        return self._now

    @property
    def names(self) -> tuple[str, ...]:
        """Every process name, in the order spawned."""
        return tuple(self._slots)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The same as `names` (so a [`FaultPlan`][dynamo_core.testing.FaultPlan] applies)."""
        return self.names

    @property
    def trace_hash(self) -> str:
        """SHA-256 (hex) of the trace so far: equal for equal seeds and calls."""
        self._flush_hash()
        return self._hash.hexdigest()

    def log(self, last: int = 50) -> str:
        """The last `last` trace lines (at most 200 are kept), one event a line."""
        lines = list(self._tail)
        return "\n".join(lines[-last:] if last > 0 else [])

    def counts(self) -> dict[str, int]:
        """Message counters, by name.

        ``sent``, ``delivered``, ``dropped``, ``duplicated``, ``slowed``, ``reordered``,
        ``partitioned``, ``to_down_process`` and ``held`` (for a paused process).
        """
        return dict(self._counts)

    def process(self, name: str) -> Process:
        """The running process `name` (to inspect it; drive it through the world).

        Raises:
            KeyError: `name` is not a process of the world.
            dynamo_core.errors.DynamoError: it is down.
        """
        process = self._slot(name).process
        if process is None:
            raise DynamoError(f"process {name} is down")
        return process

    def disk(self, name: str) -> Any:
        """The disk of process `name`: what its boot function was given, kept across crashes."""
        return self._slot(name).disk

    def is_up(self, name: str) -> bool:
        """Whether process `name` is running (a paused process is running)."""
        return self._slot(name).process is not None

    def is_paused(self, name: str) -> bool:
        """Whether process `name` is paused."""
        return self._slot(name).held is not None

    def local_time(self, name: str) -> float:
        """The time process `name` sees now (its skewed clock)."""
        return self._slot(name).clock.local(self._now)

    def can_talk(self, a: str, b: str) -> bool:
        """Whether a message from `a` to `b` would pass the current partitions."""
        return (a, b) not in self._blocked

    def observe(self, callback: Callable[[float, str, object], None]) -> None:
        """Call ``callback(now, name, effect)`` for every effect a process returns."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._observers.append(callback)

    def record(self, line: str) -> None:
        """Add a line of your own (a workload event) to the trace."""
        self._trace(line)

    def _trace(self, line: str) -> None:
        text = f"{self._now:.9f} {line}"
        unhashed = self._unhashed
        unhashed.append(text)
        if len(unhashed) >= _HASH_BATCH:
            self._flush_hash()
        self._tail.append(text)
        if self.trace_lines is not None:
            self.trace_lines.append(text)

    def _flush_hash(self) -> None:
        # The hash of the lines joined is the hash of the lines fed one by one.
        unhashed = self._unhashed
        if unhashed:
            unhashed.append("")
            self._hash.update("\n".join(unhashed).encode("utf-8"))
            unhashed.clear()

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise KeyError(name)
        return slot

    # -- processes ---------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        boot: Boot,
        *,
        disk: Callable[[], Any] = dict,
        survive: Callable[[Any], Any] | None = None,
    ) -> Process:
        """Start a process: ``boot(disk, now)`` builds it on a fresh disk.

        Args:
            name: The process's name (its address).
            boot: Builds the process from its disk and the time; called again on restart.
            disk: Makes an empty disk (default `dict`): at spawn, and after amnesia.
            survive: Called with the disk when the process crashes; what it returns is the disk
                the restart sees (default: all of it). Model unsynced writes with it.

        Returns:
            The new process.

        Raises:
            TypeError, ValueError: `name` is not a valid name or already taken, or an argument
                is not callable.
        """
        check_node_id(name, "name")
        if name in self._slots:
            raise ValueError(f"{name!r} is already a process of the world")
        for arg, value in (("boot", boot), ("disk", disk)):
            if not callable(value):
                raise TypeError(f"{arg} must be callable, not {type(value).__name__}")
        if survive is not None and not callable(survive):
            raise TypeError(f"survive must be callable, not {type(survive).__name__}")
        slot = _Slot(boot, disk, survive, self._now)
        self._slots[name] = slot
        self._refresh_links()  # an isolated process is cut off from newcomers too
        self._trace(f"spawn {name}")
        return self._boot(name, slot)

    def _boot(self, name: str, slot: _Slot) -> Process:
        slot.incarnation += 1
        process = slot.boot(slot.disk, slot.clock.local(self._now))
        for method in ("receive", "deadline", "on_timer"):
            if not callable(getattr(process, method, None)):
                raise TypeError(
                    f"boot must return a process with receive, deadline and on_timer; "
                    f"{type(process).__name__} has no {method}"
                )
        slot.process = process
        slot.scheduled = None
        self._schedule(name, slot)
        return process

    def crash(self, name: str, *, wipe: bool = False) -> None:
        """Stop process `name`: its volatile state is gone, its disk is what `survive` keeps.

        With `wipe` (amnesia) the disk is lost too: the restart gets a new, empty one. What it
        held while paused is lost, and messages to it are lost until it restarts.

        Raises:
            KeyError: `name` is not a process of the world.
            dynamo_core.errors.DynamoError: it is already down.
        """
        slot = self._slot(name)
        if slot.process is None:
            raise DynamoError(f"process {name} is already down")
        slot.process = None
        slot.scheduled = None
        slot.held = None
        if wipe:
            slot.disk = slot.make_disk()
        elif slot.survive is not None:
            slot.disk = slot.survive(slot.disk)
        self._trace(f"crash {name}{' wipe' if wipe else ''}")

    def restart(self, name: str) -> Process:
        """Boot process `name` again on what survived of its disk.

        Raises:
            KeyError: `name` is not a process of the world.
            dynamo_core.errors.DynamoError: it is running.
        """
        slot = self._slot(name)
        if slot.process is not None:
            raise DynamoError(f"process {name} is running")
        self._trace(f"restart {name}")
        return self._boot(name, slot)

    def pause(self, name: str) -> None:
        """Pause process `name` (SIGSTOP): what reaches it waits, in order; no timer fires.

        Raises:
            KeyError: `name` is not a process of the world.
            dynamo_core.errors.DynamoError: it is down or already paused.
        """
        slot = self._slot(name)
        if slot.process is None or slot.held is not None:
            raise DynamoError(f"process {name} is {'down' if slot.process is None else 'paused'}")
        slot.held = []
        self._trace(f"pause {name}")

    def resume(self, name: str) -> None:
        """Let a paused process go on: it handles what it held, then its timers run again.

        Raises:
            KeyError: `name` is not a process of the world.
            dynamo_core.errors.DynamoError: it is not paused.
        """
        slot = self._slot(name)
        held = slot.held
        if held is None:
            raise DynamoError(f"process {name} is not paused")
        slot.held = None
        self._trace(f"resume {name} ({len(held)} held)")
        for run in held:
            run()
        slot.scheduled = None
        self._schedule(name, slot)

    def skew(self, name: str, offset: float = 0.0, *, rate: float = 1.0) -> None:
        """Skew the clock of process `name`: jump it by `offset` seconds, then run at `rate`.

        A negative jump does not take the process's time backwards: its clock stands still
        until the world catches up (cores refuse time that goes back).

        Raises:
            KeyError: `name` is not a process of the world.
            TypeError, ValueError: `offset` is not a finite number or `rate` is not positive.
        """
        slot = self._slot(name)
        if type(offset) not in (int, float) or not math.isfinite(offset):
            raise ValueError(f"offset must be a finite number of seconds, got {offset!r}")
        rate = check_positive_float(rate, "rate")
        clock = slot.clock
        clock.anchor_local = clock.local(self._now) + offset
        clock.anchor_world = self._now
        clock.rate = rate
        self._trace(f"skew {name} {offset:+.6f} x{rate:.6f}")
        slot.scheduled = None
        self._schedule(name, slot)

    # -- partitions --------------------------------------------------------------------------

    def _check_names(self, names: Iterable[str], what: str) -> list[str]:
        out = list(names)
        for name in out:
            if name not in self._slots:
                raise ValueError(f"unknown process {name!r} in {what}")
        return out

    def _refresh_links(self) -> None:
        blocked: set[tuple[str, str]] = set(self._cuts)
        for i, group in enumerate(self._groups):
            for other in self._groups[i + 1 :]:
                blocked.update((a, b) for a in group for b in other)
                blocked.update((b, a) for a in group for b in other)
        for name in self._isolated:
            blocked.update((name, peer) for peer in self._slots if peer != name)
            blocked.update((peer, name) for peer in self._slots if peer != name)
        self._blocked = blocked

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the world: no message passes between processes of different groups.

        Processes named in no group form one more group together. Replaces any earlier
        `partition` (isolations and blocks stay).

        Raises:
            ValueError: A name is unknown or appears in two groups.
        """
        named = [list(group) for group in groups]
        seen: list[str] = []
        for name in (name for group in named for name in group):
            if name not in self._slots or name in seen:
                raise ValueError(f"unknown or repeated process {name!r} in partition groups")
            seen.append(name)
        rest = [name for name in self._slots if name not in seen]
        self._groups = [group for group in (*named, rest) if group]
        self._refresh_links()
        self._trace("partition " + " | ".join(",".join(group) for group in self._groups))

    def isolate(self, name: str) -> None:
        """Cut process `name` off from every other (it keeps running)."""
        self._check_names([name], "isolate")
        if name not in self._isolated:
            self._isolated.append(name)
        self._refresh_links()
        self._trace(f"isolate {name}")

    def rejoin(self, name: str) -> None:
        """Undo `isolate(name)`."""
        self._check_names([name], "rejoin")
        if name in self._isolated:
            self._isolated.remove(name)
        self._refresh_links()
        self._trace(f"rejoin {name}")

    def block(self, source: str, target: str) -> None:
        """Drop every message from `source` to `target` (one way: replies still pass)."""
        self._check_names([source, target], "block")
        self._cuts.add((source, target))
        self._refresh_links()
        self._trace(f"block {source}>{target}")

    def heal(self) -> None:
        """Remove every partition, isolation and block."""
        self._groups, self._isolated, self._cuts = [], [], set()
        self._refresh_links()
        self._trace("heal")

    # -- inputs ------------------------------------------------------------------------------

    def call(
        self,
        name: str,
        call: Callable[[Any, float], Iterable[object]],
        label: str | None = "input",
    ) -> bool:
        """Give process `name` an input now: ``call(process, now)`` returns its effects.

        A paused process gets it when it resumes. `label` goes to the trace (`None`: nothing
        does, when the caller traced the input itself).

        Returns:
            `False` if the process is down (nothing happened), else `True`.

        Raises:
            KeyError: `name` is not a process of the world.
        """
        slot = self._slot(name)
        if label is not None:
            self._trace(f"{label} {name}{'' if slot.process is not None else ' (down)'}")
        if slot.process is None:
            return False
        if slot.held is not None:
            slot.held.append(lambda: self._input(name, slot, call))
        else:
            self._input(name, slot, call)
        return True

    def _input(
        self, name: str, slot: _Slot, call: Callable[[Any, float], Iterable[object]]
    ) -> None:
        process = slot.process
        if process is None:
            return  # it crashed while paused: the input is lost
        self._apply(name, call(process, slot.clock.local(self._now)))
        self._schedule(name, slot)

    def emit(self, name: str, effects: Iterable[object]) -> None:
        """Carry out `effects` as if process `name` had just returned them.

        For a driver that calls a process's method itself (an operator's command, a check), so
        that what the method returned still reaches the network and the observers.

        Raises:
            KeyError: `name` is not a process of the world.
        """
        slot = self._slot(name)
        self._apply(name, effects)
        self._schedule(name, slot)

    def call_at(self, at: float, callback: Callable[[], None], label: str | None = "call") -> None:
        """Run `callback()` at virtual time `at` (not before now).

        `label` goes to the trace when the callback runs (`None`: nothing does).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._push(max(check_time(at, "at"), self._now), _CALL, (callback, label))

    # -- the event loop ----------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, payload))

    def _schedule(self, name: str, slot: _Slot) -> None:
        process = slot.process
        if process is None:
            return
        deadline = process.deadline()
        if deadline is None or deadline == math.inf:
            slot.scheduled = None
            return
        at = max(slot.clock.world(deadline), self._now)
        if slot.scheduled != at:
            slot.scheduled = at
            self._push(at, _TIMER, (name, slot.incarnation))

    def step(self) -> bool:
        """Process the next event. Returns `False` when there is none."""
        if not self._heap:
            return False
        at, _, kind, payload = heapq.heappop(self._heap)
        self._now = max(self._now, at)
        if kind == _DELIVER:
            self._deliver(*payload)
        elif kind == _TIMER:
            name, incarnation = payload
            self._fire(name, incarnation, at)
        else:
            callback, label = payload
            if label is not None:
                self._trace(label)
            callback()
        return True

    def _fire(self, name: str, incarnation: int, at: float) -> None:
        slot = self._slots[name]
        process = slot.process
        if process is None or incarnation != slot.incarnation or slot.held is not None:
            return
        if slot.scheduled != at:
            return  # superseded by a newer deadline
        slot.scheduled = None
        local = slot.clock.local(self._now)
        self._apply(name, process.on_timer(local))
        if slot.process is not process:
            return  # an observer crashed it
        deadline = process.deadline()
        if deadline is not None and deadline <= local:
            # A core that keeps asking for "now" must not spin the loop.
            slot.scheduled = self._now + _EPSILON
            self._push(slot.scheduled, _TIMER, (name, incarnation))
        else:
            self._schedule(name, slot)

    def run_until(self, t: float) -> None:
        """Process every event due at or before virtual time `t`, then set the time to `t`."""
        t = check_time(t, "t")
        while self._heap and self._heap[0][0] <= t:
            self.step()
        self._now = max(self._now, t)

    def run(self, seconds: float) -> None:
        """Advance virtual time by `seconds`, processing every event due meanwhile."""
        self.run_until(self._now + check_time(seconds, "seconds"))

    def run_while(self, condition: Callable[[], bool], *, limit: float) -> bool:
        """Process events while `condition()` holds, for at most `limit` virtual seconds.

        Returns:
            `True` if `condition()` became false, `False` if the time limit came first.
        """
        deadline = self._now + check_positive_float(limit, "limit")
        while condition():
            if not self._heap or self._heap[0][0] > deadline:
                self._now = max(self._now, deadline)
                return not condition()
            self.step()
        return True

    # -- the network -------------------------------------------------------------------------

    def _apply(self, name: str, effects: Iterable[object]) -> None:
        observers = self._observers
        for effect in effects:
            target = getattr(effect, "target", None)
            if isinstance(target, str) and hasattr(effect, "message"):
                self._send(name, target, effect.message)
            elif not observers:
                self._trace(f"effect {name} {type(effect).__name__}")
            for observer in observers:
                observer(self._now, name, effect)

    def _send(self, source: str, target: str, message: object) -> None:
        net = self._network
        rng = self._rng
        counts = self._counts
        counts["sent"] += 1
        if net.drop and rng.random() < net.drop:
            counts["dropped"] += 1
            self._trace(f"drop {source}>{target} {self._describe(message)}")
            return
        copies = 2 if net.duplicate and rng.random() < net.duplicate else 1
        if copies == 2:
            counts["duplicated"] += 1
        link = (source, target)
        payload = (source, target, message)
        link_last, jitter, slow = self._link_last, net.jitter, net.slow
        for _ in range(copies):
            delay = net.latency + (rng.expovariate(1.0 / jitter) if jitter else 0.0)
            if slow and rng.random() < slow:
                counts["slowed"] += 1
                delay += rng.uniform(*net.slow_delay)
            at = self._now + delay
            last = link_last.get(link, 0.0)
            if at <= last:
                if net.reorder:
                    counts["reordered"] += 1
                else:
                    at = last + _EPSILON
            link_last[link] = at if at > last else last
            heapq.heappush(self._heap, (at, next(self._seq), _DELIVER, payload))

    def _deliver(self, source: str, target: str, message: object) -> None:
        text = self._describe(message)
        if self._blocked and (source, target) in self._blocked:
            self._counts["partitioned"] += 1
            self._trace(f"cut {source}>{target} {text}")
            return
        slot = self._slots.get(target)
        if slot is None or slot.process is None:
            self._counts["to_down_process"] += 1
            self._trace(f"lost {source}>{target} {text}")
            return
        if slot.held is not None:
            self._counts["held"] += 1
            slot.held.append(lambda: self._deliver(source, target, message))
            return
        self._counts["delivered"] += 1
        self._trace(f"recv {source}>{target} {text}")
        self._apply(target, slot.process.receive(source, message, slot.clock.local(self._now)))
        self._schedule(target, slot)
