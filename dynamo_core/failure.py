"""Failure detection: a φ-accrual detector plus Dynamo's local, request-driven suspicion.

Two signals, combined by [`is_available`][dynamo_core.failure.PhiAccrualDetector.is_available]:

* **φ accrual** (Hayashibara et al., as in Cassandra): the detector keeps the last `window`
  intervals between heartbeats from each node and models them as exponentially distributed with
  their mean. After ``t`` seconds of silence, ``φ = t / (mean · ln 10)`` — the negative base-10
  logarithm of the probability that a live node would have stayed silent that long. A node is
  convicted when ``φ > threshold`` (8 by default: about 18.4 s of silence at 1 s heartbeats).
* **Local suspicion** (Dynamo): when a request to a node times out, the caller marks it suspect;
  it stays unavailable until anything is heard from it again.

The detector is a pure state machine: time is always passed in, it never reads a clock.
"""

from __future__ import annotations

import math
from collections import deque

from dynamo_core._check import check_node_id, check_positive_float, check_positive_int, check_time

__all__ = ["PhiAccrualDetector"]

_PHI_FACTOR = 1.0 / math.log(10.0)


class _Arrivals:
    __slots__ = ("intervals", "last", "total")

    def __init__(self, window: int, now: float) -> None:
        self.intervals: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.last = now

    def record(self, interval: float) -> None:
        if len(self.intervals) == self.intervals.maxlen:
            self.total -= self.intervals[0]
        self.intervals.append(interval)
        self.total += interval


class PhiAccrualDetector:
    """A φ-accrual failure detector with Dynamo-style suspicion on request timeouts.

    Nodes never heard from are presumed available (Dynamo's optimism: a request to them will
    time out and mark them suspect if they are not).

    Args:
        threshold: Convict a node when its φ exceeds this (Cassandra: 8, sensible 5 to 16).
        window: How many recent inter-arrival intervals to keep per node (Cassandra: 1,000).
        first_interval: The mean assumed after the first heartbeat, before any interval is
            known: the expected heartbeat period, in seconds.
        max_interval: Intervals longer than this are not recorded, so that a node's downtime
            does not teach the detector to wait longer next time (Cassandra: 2 s).

    Raises:
        TypeError: an option has the wrong type.
        ValueError: an option is not positive and finite.

    Cost: `heartbeat`, `phi` and `is_available` are O(1).
    """

    __slots__ = (
        "_arrivals",
        "_suspects",
        "first_interval",
        "max_interval",
        "threshold",
        "window",
    )

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        window: int = 1000,
        first_interval: float = 1.0,
        max_interval: float = 2.0,
    ) -> None:
        self.threshold = check_positive_float(threshold, "threshold")
        self.window = check_positive_int(window, "window")
        self.first_interval = check_positive_float(first_interval, "first_interval")
        self.max_interval = check_positive_float(max_interval, "max_interval")
        self._arrivals: dict[str, _Arrivals] = {}
        self._suspects: set[str] = set()

    def heartbeat(self, node: str, now: float) -> None:
        """Record that a heartbeat (or any message) from `node` arrived at `now`.

        It also clears a suspicion raised by `suspect`.

        Raises:
            TypeError, ValueError: `node` or `now` is invalid, or `now` is earlier than the last
                heartbeat from `node`; nothing is recorded.
        """
        check_node_id(node)
        now = check_time(now)
        arrivals = self._arrivals.get(node)
        if arrivals is None:
            self._arrivals[node] = _Arrivals(self.window, now)
        else:
            if now < arrivals.last:
                raise ValueError(f"now must not go backwards: {now} < {arrivals.last} for {node!r}")
            interval = now - arrivals.last
            if interval <= self.max_interval:
                arrivals.record(interval)
            arrivals.last = now
        self._suspects.discard(node)

    def mean_interval(self, node: str) -> float | None:
        """The mean recorded heartbeat interval of `node`, or `None` if never heard from."""
        arrivals = self._arrivals.get(node)
        if arrivals is None:
            return None
        if not arrivals.intervals:
            return self.first_interval
        # Guards against a window of zero-length intervals (duplicate deliveries).
        return max(arrivals.total / len(arrivals.intervals), 1e-9)

    def phi(self, node: str, now: float) -> float:
        """Return φ for `node` at `now`; 0.0 for a node never heard from.

        Raises:
            TypeError, ValueError: `now` is invalid.
        """
        now = check_time(now)
        mean = self.mean_interval(node)
        if mean is None:
            return 0.0
        elapsed = max(0.0, now - self._arrivals[node].last)
        return _PHI_FACTOR * elapsed / mean

    def suspect(self, node: str, now: float) -> None:
        """Mark `node` unavailable because a request to it timed out (Dynamo's local signal).

        The suspicion lasts until the next `heartbeat` from `node`.
        """
        check_node_id(node)
        check_time(now)
        self._suspects.add(node)

    def is_available(self, node: str, now: float) -> bool:
        """Whether `node` is presumed up: not suspected and ``phi(node, now) <= threshold``."""
        if node in self._suspects:
            return False
        return self.phi(node, now) <= self.threshold

    def available(self, nodes: list[str] | tuple[str, ...], now: float) -> list[str]:
        """Return the nodes of `nodes` that are presumed up, in the given order."""
        return [node for node in nodes if self.is_available(node, now)]

    def forget(self, node: str) -> None:
        """Drop all state about `node` (it left the cluster)."""
        self._arrivals.pop(node, None)
        self._suspects.discard(node)

    def nodes(self) -> list[str]:
        """Every node heard from, sorted."""
        return sorted(self._arrivals)

    def _check_invariants(self) -> None:
        for node, arrivals in self._arrivals.items():
            assert len(arrivals.intervals) <= self.window, node
            assert all(0.0 <= i <= self.max_interval for i in arrivals.intervals), node
            assert math.isclose(arrivals.total, math.fsum(arrivals.intervals), abs_tol=1e-6), node
