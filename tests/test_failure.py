"""PhiAccrualDetector: φ values, conviction time, suspicion, window and bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dynamo_core.failure import PhiAccrualDetector


def test_convicts_after_about_18_seconds_at_one_second_heartbeats() -> None:
    detector = PhiAccrualDetector()
    for second in range(101):
        detector.heartbeat("a", float(second))
    assert detector.mean_interval("a") == pytest.approx(1.0)
    cutoff = 100 + 8 * math.log(10)  # phi = t / (mean * ln 10) = 8
    assert detector.phi("a", 110.0) == pytest.approx(10 / math.log(10))
    assert detector.is_available("a", cutoff - 0.01)
    assert not detector.is_available("a", cutoff + 0.01)
    detector.heartbeat("a", cutoff + 1)
    assert detector.is_available("a", cutoff + 1)
    detector._check_invariants()


def test_unknown_nodes_are_presumed_up_and_first_interval_is_the_mean() -> None:
    detector = PhiAccrualDetector(first_interval=0.5)
    assert detector.phi("never", 100.0) == 0.0
    assert detector.is_available("never", 100.0)
    detector.heartbeat("b", 10.0)
    assert detector.mean_interval("b") == 0.5
    assert detector.phi("b", 11.0) == pytest.approx(2 / math.log(10))


def test_long_gaps_are_not_learned() -> None:
    detector = PhiAccrualDetector(max_interval=2.0)
    for t in (0.0, 1.0, 2.0, 300.0, 301.0):  # 298 s of downtime in the middle
        detector.heartbeat("a", t)
    assert detector.mean_interval("a") == pytest.approx(1.0)


def test_window_keeps_the_most_recent_intervals() -> None:
    detector = PhiAccrualDetector(window=3, max_interval=10.0)
    times = [0.0, 5.0, 10.0, 15.0, 16.0, 17.0, 18.0]
    for t in times:
        detector.heartbeat("a", t)
    assert detector.mean_interval("a") == pytest.approx(1.0)
    detector._check_invariants()


def test_suspicion_lasts_until_heard_from() -> None:
    detector = PhiAccrualDetector()
    detector.heartbeat("a", 0.0)
    detector.suspect("a", 0.5)
    detector.suspect("c", 0.5)  # never heard from, but a request timed out
    assert not detector.is_available("a", 0.6)
    assert not detector.is_available("c", 0.6)
    assert detector.available(["c", "a", "b"], 0.6) == ["b"]
    detector.heartbeat("a", 0.7)
    assert detector.available(["c", "a", "b"], 0.7) == ["a", "b"]
    detector.forget("c")
    assert detector.is_available("c", 0.8)
    assert detector.nodes() == ["a"]


def test_bad_input_changes_nothing() -> None:
    detector = PhiAccrualDetector()
    detector.heartbeat("a", 5.0)
    with pytest.raises(ValueError, match="backwards"):
        detector.heartbeat("a", 4.0)
    with pytest.raises(ValueError, match="now"):
        detector.heartbeat("a", math.nan)
    with pytest.raises(TypeError, match="node"):
        detector.heartbeat(3, 6.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node"):
        detector.heartbeat("", 6.0)
    assert detector.mean_interval("a") == 1.0  # still only the first heartbeat
    assert detector.nodes() == ["a"]
    for kwargs in (
        {"threshold": 0},
        {"window": 0},
        {"first_interval": -1.0},
        {"max_interval": math.inf},
    ):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            PhiAccrualDetector(**kwargs)
    with pytest.raises(TypeError, match="window"):
        PhiAccrualDetector(window=1.5)  # type: ignore[arg-type]


@given(
    st.lists(st.floats(0.0, 3.0), min_size=1, max_size=50),
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
)
def test_phi_grows_with_silence(intervals: list[float], a: float, b: float) -> None:
    detector = PhiAccrualDetector()
    now = 0.0
    detector.heartbeat("n", now)
    for interval in intervals:
        now += interval
        detector.heartbeat("n", now)
    early, late = sorted((now + a, now + b))
    assert 0.0 <= detector.phi("n", early) <= detector.phi("n", late)
    detector._check_invariants()


class DetectorMachine(RuleBasedStateMachine):
    """The detector beside a model that stores every interval and recomputes the mean."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = PhiAccrualDetector(window=5, max_interval=2.0, first_interval=1.0)
        self.now = 0.0
        self.last: dict[str, float] = {}
        self.intervals: dict[str, list[float]] = {}
        self.suspects: set[str] = set()

    @rule(node=st.sampled_from("abc"), step=st.floats(0.0, 3.0))
    def heartbeat(self, node: str, step: float) -> None:
        self.now += step
        self.detector.heartbeat(node, self.now)
        if node in self.last:
            interval = self.now - self.last[node]
            if interval <= 2.0:
                self.intervals.setdefault(node, []).append(interval)
        self.last[node] = self.now
        self.suspects.discard(node)

    @rule(node=st.sampled_from("abc"))
    def suspect(self, node: str) -> None:
        self.detector.suspect(node, self.now)
        self.suspects.add(node)

    @rule(step=st.floats(0.0, 30.0))
    def wait(self, step: float) -> None:
        self.now += step

    @invariant()
    def agrees_with_model(self) -> None:
        self.detector._check_invariants()
        for node in "abc":
            if node not in self.last:
                assert self.detector.phi(node, self.now) == 0.0
                expected_up = node not in self.suspects
            else:
                recent = self.intervals.get(node, [])[-5:]
                mean = max(sum(recent) / len(recent), 1e-9) if recent else 1.0
                phi = (self.now - self.last[node]) / (mean * math.log(10))
                assert self.detector.phi(node, self.now) == pytest.approx(phi, rel=1e-6, abs=1e-9)
                expected_up = node not in self.suspects and phi <= 8.0
            if not math.isclose(self.detector.phi(node, self.now), 8.0, rel_tol=1e-6):
                assert self.detector.is_available(node, self.now) == expected_up


TestDetectorMachine = DetectorMachine.TestCase
