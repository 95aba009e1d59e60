"""One driver for every protocol core: the synchronous one, and the shape the cores share.

Every sans-I/O core in the library — [`PutCoordinator`][dynamo_core.quorum.PutCoordinator],
[`GetCoordinator`][dynamo_core.quorum.GetCoordinator], [`Handoff`][dynamo_core.hints.Handoff],
[`MerkleExchange`][dynamo_core.merkle.MerkleExchange],
[`RangeStream`][dynamo_core.streaming.RangeStream] and [`Node`][dynamo_core.node.Node] — has
the same shape (the [`Core`][dynamo_core.drive.Core] protocol):

* **inputs with `now`**: every method that changes the core takes the current time last and
  returns a list of effects (``coordinator.receive(sender, reply, now)``,
  ``handoff.target_up(target, now)``, ``exchange.items_loaded(items, now)``, ...);
* **effects out**: frozen values saying what to do (send this, store that, the result is in);
* **one timer channel**: ``deadline()`` (``None``: no timer), asked after every input, and
  ``on_timer(now)`` once it has passed (as aioquic's ``get_timer`` and ``handle_timer``). No
  core emits a timer effect.

A driver owns the clock and the loop. The application writes the effect *handler*: a function
that carries out one effect (a network send, a database write) and, when an answer comes back,
feeds it to the core with [`submit`][dynamo_core.drive.SyncDriver.submit] — an *input*, a
callable that takes ``now``, e.g. ``lambda now: coordinator.receive("b", Stored(), now)``.
[`SyncDriver`][dynamo_core.drive.SyncDriver] runs in the calling thread (scripts, tests, jobs);
[`dynamo_core.aio.Driver`][dynamo_core.aio.Driver] is the same loop on asyncio, with handlers
that may be coroutines.

Errors: an exception raised by an *input* (the core refusing it) propagates unchanged. An
exception raised by the *handler* stops the run with
[`EffectFailed`][dynamo_core.errors.EffectFailed], which names the effect and chains the
handler's exception, once the other effects of the same input have been carried out. The failed
effect is lost — as a dropped message would be — and the core keeps its state, so calling `run`
again resumes: its timeouts deal with the loss. Pass ``on_error`` to be told and keep running
instead. Either way a handler that wants other semantics (retry, fail the request) catches its
own errors: drivers never retry.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeAlias, TypeVar

from dynamo_core.errors import EffectFailed
from dynamo_core.interfaces import Clock

__all__ = ["Core", "Input", "SyncDriver"]

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)

Input: TypeAlias = Callable[[float], Iterable[E]]
"""One input to a core: called with the driver's ``now``, returns the core's effects."""

ErrorHook: TypeAlias = Callable[[E, Exception], None]


class Core(Protocol[E_co]):
    """What a driver needs from a protocol core: its timer. Inputs are plain callables."""

    def deadline(self) -> float | None:
        """When `on_timer` must next be called; `None` (or infinity) when no timer is set."""
        ...

    def on_timer(self, now: float) -> Iterable[E_co]:
        """Fire the timers due at `now`; return the effects."""
        ...


class _MonotonicClock:
    """`time.monotonic`, the default: timers run on monotonic time (see the clock guide)."""

    def now(self) -> float:
        return time.monotonic()


def _due(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline


class _Loop(Generic[E]):
    """The loop both drivers share: a FIFO of inputs, the timer, the handler, the error rule."""

    def __init__(
        self,
        core: Core[E],
        clock: Clock | None,
        on_error: ErrorHook[E] | None,
    ) -> None:
        if not callable(getattr(core, "deadline", None)) or not callable(
            getattr(core, "on_timer", None)
        ):
            raise TypeError(
                f"core must have deadline() and on_timer(now), not {type(core).__name__}"
            )
        if clock is not None and not callable(getattr(clock, "now", None)):
            raise TypeError(f"clock must have now(), not {type(clock).__name__}")
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable, not {type(on_error).__name__}")
        self._core = core
        self._clock: Clock = clock if clock is not None else _MonotonicClock()
        self._on_error = on_error
        self._inputs: collections.deque[Input[E]] = collections.deque()
        self._last = -math.inf
        self.failures = 0

    @property
    def core(self) -> Core[E]:
        """The core this driver runs."""
        return self._core

    def now(self) -> float:
        """The clock's time, never going backwards (cores refuse time that does)."""
        self._last = max(self._last, self._clock.now())
        return self._last

    def submit(self, call: Input[E]) -> None:
        """Queue an input for the core; it runs in order, with the driver's ``now``.

        Call it from the driver's own thread (the event loop's, for the asyncio driver; from
        another thread use ``loop.call_soon_threadsafe(driver.submit, call)``). Bind the input's
        arguments now: ``partial(core.receive, message)``, not a `lambda` over a loop variable.

        Raises:
            TypeError: `call` is not callable.
        """
        if not callable(call):
            raise TypeError(f"an input must be a callable taking now, not {type(call).__name__}")
        self._inputs.append(call)

    def feed(self, call: Input[E]) -> None:
        """Run an input at once, ahead of the queue, and hand its effects to the handler.

        For a callback that must not wait for the loop's next turn — a socket reader that
        wants its reply written before it returns. Call it from the driver's own thread, and
        not from the handler (that would nest one input inside another). An exception from
        the input propagates to the caller, as in `run`; the handler's failures follow the
        error rule.

        Raises:
            TypeError: `call` is not callable.
            EffectFailed: The handler failed (and there is no `on_error`).
        """
        if not callable(call):
            raise TypeError(f"an input must be a callable taking now, not {type(call).__name__}")
        self._dispatch(call(self.now()))

    def _handle(self, effect: E) -> None:  # pragma: no cover - each driver overrides it
        raise NotImplementedError

    def _failed(self, effect: E, exc: Exception) -> None:
        """Apply the error rule to a handler's exception."""
        self.failures += 1
        if self._on_error is None:
            raise EffectFailed(effect, exc) from exc
        self._on_error(effect, exc)

    def _dispatch(self, effects: Iterable[E]) -> None:
        """Hand every effect to the handler; after a failure, the rest of the batch still runs."""
        stopped: EffectFailed | None = None
        for effect in effects:
            try:
                self._handle(effect)
            except Exception as exc:
                try:
                    self._failed(effect, exc)
                except EffectFailed as failed:
                    stopped = stopped or failed
        if stopped is not None:
            raise stopped

    def _step(self) -> None:
        """Run every queued input, then the timer if it is due."""
        while self._inputs:
            call = self._inputs.popleft()
            self._dispatch(call(self.now()))
        now = self.now()
        if _due(self._core.deadline()) <= now:
            self._dispatch(self._core.on_timer(now))


class SyncDriver(_Loop[E]):
    """Run a core in the calling thread against a synchronous effect handler.

    The handler carries out one effect and may [`submit`][dynamo_core.drive.SyncDriver.submit]
    inputs (replies) — at once, or later from the `idle` hook. Between inputs the driver sleeps
    until the core's deadline; with a virtual clock, pass its ``advance`` as `sleep` and a whole
    run takes no real time.

    Args:
        core: The core ([`Core`][dynamo_core.drive.Core]).
        handler: Called with every effect.
        clock: Where ``now`` comes from (default `time.monotonic`).
        sleep: Waits for a number of seconds (default `time.sleep`).
        on_error: Called with ``(effect, exception)`` when the handler raises; the run goes on.
            Without it the run stops with `EffectFailed`.

    Attributes:
        failures: How many effects the handler failed on so far.

    Examples:
        ```python
        from dynamo_core import DVVSet, PutCoordinator, QuorumPolicy, SendStore, Stored
        from dynamo_core.drive import SyncDriver

        state = DVVSet().update(b"v", "a")
        put = PutCoordinator(QuorumPolicy(3, 2, 2), "k", ["a", "b", "c"], state)
        stores = {}

        def handle(effect):
            if isinstance(effect, SendStore):
                stores[effect.target] = effect.state
                driver.submit(lambda now, t=effect.target: put.receive(t, Stored(), now))

        driver = SyncDriver(put, handle)
        driver.run(put.start)
        assert put.result.ok
        ```
    """

    def __init__(
        self,
        core: Core[E],
        handler: Callable[[E], object],
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], object] | None = None,
        on_error: ErrorHook[E] | None = None,
    ) -> None:
        super().__init__(core, clock, on_error)
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be callable, not {type(sleep).__name__}")
        self._handler = handler
        self._sleep: Callable[[float], object] = sleep if sleep is not None else time.sleep

    def _handle(self, effect: E) -> None:
        self._handler(effect)

    def run(
        self,
        start: Input[E] | None = None,
        *,
        until: Callable[[], bool] | None = None,
        idle: Callable[[float], object] | None = None,
    ) -> None:
        """Run the core until `until()` holds, or until it is idle.

        Idle means no input is queued and the core has no deadline: a coordinator that has
        closed, a finished exchange, a handoff with nothing pending. An idle run returns even if
        `until()` is still false — in one thread nothing else could change that — so check your
        condition afterwards, or feed replies from `idle`. A
        [`Node`][dynamo_core.node.Node] always has a deadline, so give it `until`.

        Args:
            start: The first input, e.g. ``coordinator.start`` or ``exchange.start``.
            until: Checked after every step; the run returns once it is true.
            idle: Called with the seconds to the next deadline (``inf``: none) when nothing is
                queued, before sleeping: the place to poll sockets or deliver delayed replies.
                Inputs it submits run at once.

        Raises:
            EffectFailed: The handler raised (and there is no `on_error`).
        """
        if start is not None:
            self.submit(start)
        while True:
            self._step()
            if until is not None and until():
                return
            if self._inputs:
                continue
            wait = _due(self._core.deadline()) - self.now()
            if idle is not None:
                idle(wait)
                if self._inputs:
                    continue
            if wait == math.inf:
                return
            if wait > 0:
                self._sleep(wait)
