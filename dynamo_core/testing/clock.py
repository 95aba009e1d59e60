"""`FakeClock`: a clock for tests that moves only when told to."""

from __future__ import annotations

from dynamo_core._check import check_time

__all__ = ["FakeClock"]


class FakeClock:
    """A [`Clock`][dynamo_core.interfaces.Clock] whose time changes only by `advance` or `set`.

    Examples:
        >>> clock = FakeClock()
        >>> clock.advance(1.5)
        1.5
        >>> clock.now()
        1.5
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_time(start, "start")

    def now(self) -> float:
        """Return the current fake time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` and return the new time.

        Raises:
            TypeError: `seconds` is not a number.
            ValueError: `seconds` is negative or not finite.
        """
        self._now += check_time(seconds, "seconds")
        return self._now

    def set(self, now: float) -> None:
        """Set the time to `now`, which may not be earlier than the current time.

        Raises:
            ValueError: `now` is earlier than the current time, negative or not finite.
        """
        value = check_time(now, "now")
        if value < self._now:
            raise ValueError(f"now must not go backwards: {value} < {self._now}")
        self._now = value
