"""`Driver`: run any protocol core on asyncio against an effect handler the application writes.

The same loop as [`SyncDriver`][dynamo_core.drive.SyncDriver] (see
[`dynamo_core.drive`][dynamo_core.drive] for the shape every core shares and the error rule),
with two differences: the handler may be a coroutine function, whose calls run as tasks so a slow
replica never holds up the others or the timers; and the loop sleeps on asyncio, waking as soon
as an input is submitted.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dynamo_core.drive import Core, ErrorHook, Input, _due, _Loop
from dynamo_core.errors import EffectFailed
from dynamo_core.interfaces import Clock

__all__ = ["Driver"]

E = TypeVar("E")


class Driver(_Loop[E]):
    """Run a core on asyncio: inputs in with ``now``, effects out to the handler, timers kept.

    The handler is called with every effect; the timer is the core's ``deadline()``.
    A plain function runs at once; a coroutine function's call becomes a task, and the run
    carries on. Either may [`submit`][dynamo_core.drive.SyncDriver.submit] inputs (replies);
    submitting wakes the loop.

    When the handler raises (or its task does), the run stops with
    [`EffectFailed`][dynamo_core.errors.EffectFailed] naming the effect, after cancelling the
    handler tasks still running; with `on_error`, the run goes on and the effect counts as lost.

    Args:
        core: The core ([`Core`][dynamo_core.drive.Core]).
        handler: Carries out one effect.
        clock: Where ``now`` comes from (default `time.monotonic`, the event loop's clock).
        on_error: Called with ``(effect, exception)`` when the handler fails; the run goes on.

    Attributes:
        failures: How many effects the handler failed on so far.

    Examples:
        ```python
        driver = Driver(put, handle)   # async def handle(effect): ... driver.submit(reply)
        await driver.run(put.start)    # returns once every reply is in or timed out
        put.result
        ```
    """

    def __init__(
        self,
        core: Core[E],
        handler: Callable[[E], Awaitable[object] | object],
        *,
        clock: Clock | None = None,
        on_error: ErrorHook[E] | None = None,
    ) -> None:
        super().__init__(core, clock, on_error)
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        self._handler = handler
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake: asyncio.Event | None = None
        self._fatal: EffectFailed | None = None
        self._sleeping_until = -math.inf  # when a sleeping run wakes for its next deadline
        self._recheck_due = False  # a check of the core's deadline is scheduled

    @property
    def running(self) -> int:
        """Handler tasks still running."""
        return len(self._tasks)

    def submit(self, call: Input[E]) -> None:
        """Queue an input for the core and wake the loop (see `SyncDriver.submit`)."""
        super().submit(call)
        if self._wake is not None:
            self._wake.set()

    def feed(self, call: Input[E]) -> None:
        """Run an input at once (see `SyncDriver.feed`).

        Wakes a sleeping `run` when the input brought the core's deadline forward: the deadline
        is asked once per loop turn, after every input fed in that turn (not after each).
        """
        super().feed(call)
        if self._sleeping_until > -math.inf and not self._recheck_due:
            self._recheck_due = True
            asyncio.get_running_loop().call_soon(self._recheck)

    def _recheck(self) -> None:
        """Wake a sleeping `run` if the inputs fed since it slept brought its timer forward."""
        self._recheck_due = False
        if self._wake is not None and _due(self._core.deadline()) < self._sleeping_until:
            self._wake.set()

    def _handle(self, effect: E) -> None:
        result = self._handler(effect)
        if result is not None and inspect.isawaitable(result):  # a plain handler: no check
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._finished(effect, done))

    def _finished(self, effect: E, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if self._wake is not None:
            self._wake.set()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: asyncio raises them
            return
        try:
            self._failed(effect, exc)
        except EffectFailed as failed:
            if self._fatal is None:
                self._fatal = failed

    async def run(
        self,
        start: Input[E] | None = None,
        *,
        until: Callable[[], bool] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run the core until `until()` holds or `stop` is set; without either, until idle.

        Idle means no input queued, no handler task running and no deadline: a closed
        coordinator, a finished exchange. With `until` or `stop` an idle core waits for the
        next [`submit`][dynamo_core.drive.SyncDriver.submit] — from a socket reader, say — as
        a core fed by the network must (wrap the run in `asyncio.timeout` to bound it). A
        [`Node`][dynamo_core.node.Node] always has a deadline: give it `until` or `stop`.
        Handler tasks still running when the run returns are cancelled (a reply nobody waits
        for any more).

        Args:
            start: The first input, e.g. ``coordinator.start``.
            until: Checked after every step.
            stop: Set it to end the run.

        Raises:
            EffectFailed: The handler failed (and there is no `on_error`).
        """
        self._wake = asyncio.Event()
        if start is not None:
            self.submit(start)
        try:
            while stop is None or not stop.is_set():
                self._wake.clear()
                self._step()
                if self._fatal is not None:
                    fatal, self._fatal = self._fatal, None  # a later run resumes
                    raise fatal
                if until is not None and until():
                    return
                if self._inputs:
                    continue
                due = _due(self._core.deadline())
                wait = due - self.now()
                if wait == math.inf and not self._tasks and until is None and stop is None:
                    return
                if wait > 0:
                    self._sleeping_until = due
                    await self._sleep(wait, stop)
                    self._sleeping_until = -math.inf
        finally:
            self._sleeping_until = -math.inf
            self._wake = None
            for task in list(self._tasks):
                task.cancel()

    async def _sleep(self, seconds: float, stop: asyncio.Event | None) -> None:
        """Wait for `seconds`, an input, a finished handler task or `stop`."""
        assert self._wake is not None
        waits = [asyncio.ensure_future(self._wake.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(
                waits,
                timeout=None if seconds == math.inf else seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waits:
                waiter.cancel()
