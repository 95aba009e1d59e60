"""Failure detection: a φ-accrual detector plus Dynamo's local, request-driven suspicion.

Two signals, combined by [`is_available`][dynamo_core.failure.PhiAccrualDetector.is_available]:

* **φ accrual** (Hayashibara et al.): the detector keeps the last `window` intervals between
  heartbeats from each node. After ``t`` seconds of silence, φ is the negative base-10 logarithm
  of the probability that a live node would have stayed silent that long, under a model of the
  intervals. A node is convicted when ``φ > threshold``. Two models
  ([`PhiModel`][dynamo_core.failure.PhiModel]):

  - **exponential** (Cassandra's ``ArrivalWindow``, the default): ``P(silent >= t) =
    exp(-t / mean)``, so ``φ = t / (mean · ln 10)``
    ([`exponential_phi`][dynamo_core.failure.exponential_phi]). Linear in the silence: 8 is
    about 18.4 s of silence at 1 s heartbeats.
  - **normal** (Akka's ``PhiAccrualFailureDetector``): the intervals are normal with the
    window's mean and population standard deviation ``std``, floored at `min_std`, and
    `acceptable_pause` is added to the mean: ``y = (t - (mean + acceptable_pause)) / max(std,
    min_std)``. Akka approximates the normal CDF by a logistic function (Bowling et al.,
    2009): ``Φ(y) ≈ 1 / (1 + exp(-z))`` with ``z = y · (1.5976 + 0.070566 · y²)``, so
    ``φ = -log10(1 - Φ(y)) = log10(1 + exp(z))``
    ([`normal_phi`][dynamo_core.failure.normal_phi], computed in log space so it stays finite
    where Akka's ``exp`` underflows to φ = ∞). As in Akka, the first heartbeat seeds the
    window with ``first_interval · 3/4`` and ``first_interval · 5/4`` (mean `first_interval`,
    standard deviation a quarter of it), and an interval is learned only if the node was not
    convicted when the heartbeat arrived, so a pause does not teach the detector to wait
    longer.

  In both models an interval longer than `max_interval` is not learned (Cassandra's cap).
* **Local suspicion** (Dynamo): when a request to a node times out, the caller marks it suspect;
  it stays unavailable until anything is heard from it again.

The detector is a pure state machine: time is always passed in, it never reads a clock.
"""

from __future__ import annotations

import enum
import math
from collections import deque

from dynamo_core._check import check_node_id, check_positive_float, check_positive_int, check_time

__all__ = ["PhiAccrualDetector", "PhiModel", "exponential_phi", "normal_phi"]

_PHI_FACTOR = 1.0 / math.log(10.0)


class PhiModel(enum.Enum):
    """The distribution a [`PhiAccrualDetector`][dynamo_core.failure.PhiAccrualDetector] fits.

    The values are the names, so ``PhiModel("normal")`` reads a model from configuration.
    """

    EXPONENTIAL = "exponential"
    """Cassandra's: the mean only; φ grows linearly with the silence."""
    NORMAL = "normal"
    """Akka's: mean and standard deviation, with `acceptable_pause` and `min_std`."""

    @classmethod
    def parse(cls, value: object, name: str = "model") -> PhiModel:
        """Return `value` as a model: a `PhiModel` or its value (``"exponential"``, ``"normal"``).

        Raises:
            TypeError: `value` is neither a `PhiModel` nor a `str`.
            ValueError: `value` names no model.
        """
        if isinstance(value, PhiModel):
            return value
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a PhiModel or str, not {type(value).__name__}")
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def exponential_phi(elapsed: float, mean: float) -> float:
    """φ after `elapsed` seconds of silence when intervals are exponential with `mean`.

    ``-log10(exp(-elapsed / mean)) = elapsed / (mean · ln 10)`` (Cassandra).
    """
    return _PHI_FACTOR * elapsed / mean


def normal_phi(elapsed: float, mean: float, std: float) -> float:
    """φ after `elapsed` seconds of silence when intervals are normal with `mean` and `std`.

    Akka's formula: ``y = (elapsed - mean) / std``, ``z = y · (1.5976 + 0.070566 · y²)`` (a
    logistic approximation of the normal CDF, within 1.4e-4 of it), and
    ``φ = -log10(1 - 1 / (1 + exp(-z))) = log10(1 + exp(z))``, evaluated without overflow:
    ``(z + log1p(exp(-z))) / ln 10`` for ``z > 0``. `mean` here already includes any
    acceptable pause; `std` must be positive.

    Examples:
        >>> round(normal_phi(1.0, 1.0, 0.1), 3)  # silent exactly the mean: 1 - CDF = 1/2
        0.301
        >>> round(normal_phi(1.6, 1.0, 0.1), 1)  # six standard deviations late
        10.8
    """
    y = (elapsed - mean) / std
    z = y * (1.5976 + 0.070566 * y * y)
    if z > 0.0:
        return _PHI_FACTOR * (z + math.log1p(math.exp(-z)))
    return _PHI_FACTOR * math.log1p(math.exp(z))


class _Arrivals:
    __slots__ = ("intervals", "last", "squares", "total")

    def __init__(self, window: int, now: float) -> None:
        self.intervals: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.squares = 0.0
        self.last = now

    def record(self, interval: float) -> None:
        if len(self.intervals) == self.intervals.maxlen:
            old = self.intervals[0]
            self.total -= old
            self.squares -= old * old
        self.intervals.append(interval)
        self.total += interval
        self.squares += interval * interval


class PhiAccrualDetector:
    """A φ-accrual failure detector with Dynamo-style suspicion on request timeouts.

    Nodes never heard from are presumed available (Dynamo's optimism: a request to them will
    time out and mark them suspect if they are not).

    Examples:
        >>> akka = PhiAccrualDetector(model="normal", acceptable_pause=3.0, min_std=0.1)
        >>> for t in (0.0, 1.0, 2.0, 3.0):
        ...     akka.heartbeat("b", t)
        >>> akka.is_available("b", 7.0), akka.is_available("b", 8.0)  # 4 s, then 5 s silent
        (True, False)

    Args:
        threshold: Convict a node when its φ exceeds this (Cassandra and Akka: 8; sensible 5
            to 16).
        window: How many recent inter-arrival intervals to keep per node (Cassandra's window
            and Akka's ``max-sample-size``: 1,000).
        first_interval: The expected heartbeat period, in seconds: the mean assumed after the
            first heartbeat, before any interval is known (Akka takes its
            ``heartbeat-interval``).
        max_interval: Intervals longer than this are not recorded, so that a node's downtime
            does not teach the detector to wait longer next time (Cassandra: 2 s).
        model: The interval model: [`PhiModel`][dynamo_core.failure.PhiModel] or its value
            (``"exponential"``, the default, or ``"normal"``).
        acceptable_pause: Normal model only: seconds of silence added to the mean before φ
            rises (Akka's ``acceptable-heartbeat-pause``; default 0). Leave it `None` for the
            exponential model.
        min_std: Normal model only: the floor of the standard deviation, in seconds, so a
            very regular network does not convict at the first late heartbeat (Akka's
            ``min-std-deviation``; default 0.1). Leave it `None` for the exponential model.

    Raises:
        TypeError: an option has the wrong type.
        ValueError: an option is out of range (not positive and finite; `acceptable_pause`
            negative), `model` names no model, or `acceptable_pause` or `min_std` is given
            for the exponential model.

    Cost: `heartbeat`, `phi` and `is_available` are O(1).
    """

    __slots__ = (
        "_arrivals",
        "_suspects",
        "acceptable_pause",
        "first_interval",
        "max_interval",
        "min_std",
        "model",
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
        model: PhiModel | str = PhiModel.EXPONENTIAL,
        acceptable_pause: float | None = None,
        min_std: float | None = None,
    ) -> None:
        self.threshold = check_positive_float(threshold, "threshold")
        self.window = check_positive_int(window, "window")
        self.first_interval = check_positive_float(first_interval, "first_interval")
        self.max_interval = check_positive_float(max_interval, "max_interval")
        self.model = PhiModel.parse(model, "model")
        if self.model is PhiModel.EXPONENTIAL:
            for name, value in (("acceptable_pause", acceptable_pause), ("min_std", min_std)):
                if value is not None:
                    raise ValueError(
                        f"{name} is a parameter of the normal model (Akka), not of the "
                        f"exponential one (Cassandra): pass model='normal' or leave it out"
                    )
        self.acceptable_pause = (
            0.0 if acceptable_pause is None else check_time(acceptable_pause, "acceptable_pause")
        )
        self.min_std = 0.1 if min_std is None else check_positive_float(min_std, "min_std")
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
            arrivals = self._arrivals[node] = _Arrivals(self.window, now)
            if self.model is PhiModel.NORMAL:  # Akka's seed: mean first_interval, sd a quarter
                arrivals.record(self.first_interval * 0.75)
                arrivals.record(self.first_interval * 1.25)
        else:
            if now < arrivals.last:
                raise ValueError(f"now must not go backwards: {now} < {arrivals.last} for {node!r}")
            interval = now - arrivals.last
            if interval <= self.max_interval and (
                self.model is PhiModel.EXPONENTIAL or self._phi(arrivals, now) <= self.threshold
            ):
                arrivals.record(interval)
            arrivals.last = now
        self._suspects.discard(node)

    def mean_interval(self, node: str) -> float | None:
        """The mean recorded heartbeat interval of `node`, or `None` if never heard from."""
        arrivals = self._arrivals.get(node)
        if arrivals is None:
            return None
        return self._mean(arrivals)

    def interval_std(self, node: str) -> float | None:
        """The population standard deviation of `node`'s recorded intervals, or `None`.

        It is before the `min_std` floor; `None` if never heard from, 0.0 while no interval is
        recorded.
        """
        arrivals = self._arrivals.get(node)
        if arrivals is None:
            return None
        return self._std(arrivals)

    def phi(self, node: str, now: float) -> float:
        """Return φ for `node` at `now`; 0.0 for a node never heard from.

        Raises:
            TypeError, ValueError: `now` is invalid.
        """
        now = check_time(now)
        arrivals = self._arrivals.get(node)
        if arrivals is None:
            return 0.0
        return self._phi(arrivals, now)

    def _mean(self, arrivals: _Arrivals) -> float:
        if not arrivals.intervals:
            return self.first_interval
        # Guards against a window of zero-length intervals (duplicate deliveries).
        return max(arrivals.total / len(arrivals.intervals), 1e-9)

    @staticmethod
    def _std(arrivals: _Arrivals) -> float:
        count = len(arrivals.intervals)
        if not count:
            return 0.0
        mean = arrivals.total / count
        return math.sqrt(max(arrivals.squares / count - mean * mean, 0.0))  # rounding: >= 0

    def _phi(self, arrivals: _Arrivals, now: float) -> float:
        elapsed = max(0.0, now - arrivals.last)
        if self.model is PhiModel.EXPONENTIAL:
            return exponential_phi(elapsed, self._mean(arrivals))
        std = max(self._std(arrivals), self.min_std)
        return normal_phi(elapsed, self._mean(arrivals) + self.acceptable_pause, std)

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
        longest = max(self.max_interval, 1.25 * self.first_interval)  # the normal model's seed
        for node, arrivals in self._arrivals.items():
            assert len(arrivals.intervals) <= self.window, node
            assert all(0.0 <= i <= longest for i in arrivals.intervals), node
            assert math.isclose(arrivals.total, math.fsum(arrivals.intervals), abs_tol=1e-6), node
            squares = math.fsum(i * i for i in arrivals.intervals)
            assert math.isclose(arrivals.squares, squares, rel_tol=1e-9, abs_tol=1e-6), node
