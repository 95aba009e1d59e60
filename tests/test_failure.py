"""PhiAccrualDetector: φ values, conviction time, suspicion, window and bounds."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dynamo_core.failure import PhiAccrualDetector, PhiModel, normal_phi


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


# -- the normal model (Akka) -------------------------------------------------------------------
#
# The values below are those of Akka's AccrualFailureDetectorSpec (akka-remote), which asserts
# them for PhiAccrualFailureDetector.phi(timeDiff, mean, stdDeviation) and for detectors driven
# by a fake clock (times in milliseconds there; `normal_phi` is unit-free, and the detectors
# below use seconds). Akka records every interval while the node is available; its detector has
# no cap, so the scenarios pass a `max_interval` no interval reaches.

AKKA = {"max_interval": 1e6, "model": "normal", "min_std": 0.1}  # min-std-deviation 100 ms


def cdf(phi: float) -> float:
    return 1.0 - math.pow(10.0, -phi)


# (timeDiff, mean, stdDeviation, expected CDF, tolerance): "use good enough cumulative
# distribution function".
AKKA_CDF = [
    (0, 0.0, 10, 0.5, 0.001),
    (6, 0.0, 10, 0.7257, 0.001),
    (15, 0.0, 10, 0.9332, 0.001),
    (20, 0.0, 10, 0.97725, 0.001),
    (25, 0.0, 10, 0.99379, 0.001),
    (35, 0.0, 10, 0.99977, 0.001),
    (40, 0.0, 10, 0.99997, 0.0001),
    (22, 20.0, 3, 0.7475, 0.001),
]


@pytest.mark.parametrize(("elapsed", "mean", "std", "expected", "tolerance"), AKKA_CDF)
def test_akka_cdf_values(
    elapsed: float, mean: float, std: float, expected: float, tolerance: float
) -> None:
    assert cdf(normal_phi(elapsed, mean, std)) == pytest.approx(expected, abs=tolerance)


def test_akka_phi_increases_with_the_silence() -> None:
    phis = [normal_phi(x, 0.0, 10.0) for x in range(41)]
    assert all(a < b for a, b in itertools.pairwise(phis))


# "return realistic phi values": mean 1000 ms, standard deviation 100 ms, within 0.1.
AKKA_REALISTIC = [(0, 0.0), (500, 0.1), (1000, 0.3), (1200, 1.6), (1400, 4.7), (1600, 10.8),
                  (1700, 15.3)]  # fmt: skip


@pytest.mark.parametrize(("elapsed", "expected"), AKKA_REALISTIC)
def test_akka_realistic_phi_values(elapsed: float, expected: float) -> None:
    assert normal_phi(elapsed, 1000.0, 100.0) == pytest.approx(expected, abs=0.1)
    # the same in seconds: the formula is unit-free
    assert normal_phi(elapsed / 1000, 1.0, 0.1) == pytest.approx(expected, abs=0.1)


def test_akka_outliers_keep_precision() -> None:
    assert normal_phi(10.0, 0.0, 1.0) == pytest.approx(38.0, abs=1.0)
    assert normal_phi(-25.0, 0.0, 1.0) == 0.0
    # Where Akka's exp underflows and its phi becomes infinite, this one stays finite and exact.
    far = normal_phi(40.0, 0.0, 1.0)
    assert math.isfinite(far)
    assert far == pytest.approx(40.0 * (1.5976 + 0.070566 * 1600) / math.log(10), rel=1e-12)
    # a larger standard deviation gives a lower phi
    assert normal_phi(1100.0, 1000.0, 500.0) < normal_phi(1100.0, 1000.0, 100.0)


def test_the_logistic_approximation_is_close_to_the_normal_cdf() -> None:
    worst = 0.0
    for i in range(-800, 801):
        y = i / 100
        exact = 0.5 * (1.0 + math.erf(y / math.sqrt(2.0)))
        approx = 1.0 - 10.0 ** (-normal_phi(y, 0.0, 1.0))
        worst = max(worst, abs(exact - approx))
    assert worst < 1.5e-4  # Bowling et al. (2009) report 1.4e-4


def at(detector: PhiAccrualDetector, *times: float) -> None:
    for t in times:
        detector.heartbeat("a", t)


def test_akka_phi_based_on_the_guess_after_one_heartbeat() -> None:
    detector = PhiAccrualDetector(first_interval=1.0, **AKKA)  # type: ignore[arg-type]
    detector.heartbeat("a", 0.0)
    assert detector.mean_interval("a") == pytest.approx(1.0)
    assert detector.interval_std("a") == pytest.approx(0.25)
    assert detector.phi("a", 1.0) == pytest.approx(0.3, abs=0.2)
    assert detector.phi("a", 2.0) == pytest.approx(4.5, abs=0.3)
    assert detector.phi("a", 3.0) > 15.0


def test_akka_marks_a_node_dead_when_heartbeats_are_missed() -> None:
    detector = PhiAccrualDetector(threshold=3.0, **AKKA)  # type: ignore[arg-type]
    at(detector, 0.0, 1.0, 1.1)
    assert detector.is_available("a", 1.2)
    assert not detector.is_available("a", 8.2)


def test_akka_available_again_after_a_pause_which_is_not_learned() -> None:
    options = {**AKKA, "acceptable_pause": 3.0}
    detector = PhiAccrualDetector(threshold=8.0, **options)  # type: ignore[arg-type]
    at(detector, *(float(s) for s in range(1000)))  # 1,000 regular heartbeats, the last at 999
    assert not detector.is_available("a", 999.0 + 300.0)  # after a five-minute pause
    detector.heartbeat("a", 1299.1)
    assert detector.mean_interval("a") == pytest.approx(1.0, abs=1e-3), "the pause not learned"
    assert detector.is_available("a", 1300.0)
    detector.heartbeat("a", 1300.1)
    assert not detector.is_available("a", 1307.1)  # after a seven-second pause
    detector.heartbeat("a", 1307.2)
    assert detector.is_available("a", 1308.1)
    detector.heartbeat("a", 1308.2)
    assert detector.is_available("a", 1309.1)
    detector._check_invariants()


def test_akka_accepts_the_configured_missing_heartbeats() -> None:
    detector = PhiAccrualDetector(acceptable_pause=3.0, **AKKA)  # type: ignore[arg-type]
    at(detector, 0.0, 1.0, 2.0, 3.0)
    assert detector.is_available("a", 7.0)  # four seconds of silence: three missed beats
    detector.heartbeat("a", 8.0)
    assert detector.is_available("a", 9.0)


def test_akka_fails_after_the_configured_missing_heartbeats() -> None:
    detector = PhiAccrualDetector(acceptable_pause=3.0, **AKKA)  # type: ignore[arg-type]
    at(detector, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert detector.is_available("a", 5.5)
    detector.heartbeat("a", 6.0)
    assert not detector.is_available("a", 11.0)


def test_akka_uses_the_last_window_of_heartbeats() -> None:
    detector = PhiAccrualDetector(window=3, **AKKA)  # type: ignore[arg-type]
    at(detector, 0.0, 0.1, 0.2, 0.3)
    phi1 = detector.phi("a", 0.4)
    at(detector, 1.0, 1.5, 2.0, 2.5)  # 500 ms intervals replace the 100 ms ones
    phi2 = detector.phi("a", 3.0)
    assert phi2 == pytest.approx(phi1, abs=0.001)


# "Statistics for heartbeats": population mean and variance of the window.
@pytest.mark.parametrize(
    ("window", "samples", "mean", "variance"),
    [
        (20, [100, 200, 125, 340, 130], 179.0, 7584.0),
        (600, [1000], 1000.0, 0.0),
        (3, [100, 110, 90], 100.0, 66.6666667),
        (3, [100, 110, 90, 140], 113.333333, 422.222222),
        (3, [100, 110, 90, 140, 80], 103.333333, 688.88888889),
    ],
)
def test_akka_window_statistics(
    window: int, samples: list[int], mean: float, variance: float
) -> None:
    detector = PhiAccrualDetector(window=window, max_interval=1e6)  # no seed in this model
    at(detector, 0.0, *itertools.accumulate(float(s) for s in samples))
    assert detector.mean_interval("a") == pytest.approx(mean, abs=1e-5)
    std = detector.interval_std("a")
    assert std is not None
    assert std * std == pytest.approx(variance, abs=1e-5)


def test_model_options_are_checked() -> None:
    with pytest.raises(ValueError, match="model must be one of 'exponential', 'normal'"):
        PhiAccrualDetector(model="gaussian")
    with pytest.raises(TypeError, match="model must be a PhiModel or str, not int"):
        PhiAccrualDetector(model=1)  # type: ignore[arg-type]
    for name in ("acceptable_pause", "min_std"):
        with pytest.raises(ValueError, match=f"{name} is a parameter of the normal model"):
            PhiAccrualDetector(**{name: 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="acceptable_pause must be a finite number >= 0"):
        PhiAccrualDetector(model="normal", acceptable_pause=-1.0)
    with pytest.raises(ValueError, match="min_std must be a finite number > 0"):
        PhiAccrualDetector(model=PhiModel.NORMAL, min_std=0.0)
    detector = PhiAccrualDetector(model="normal")
    assert (detector.model, detector.acceptable_pause, detector.min_std) == (
        PhiModel.NORMAL,
        0.0,
        0.1,
    )


@given(
    st.lists(st.floats(0.0, 3.0), min_size=0, max_size=30),
    st.floats(0.0, 60.0),
    st.floats(0.0, 60.0),
    st.floats(0.0, 5.0),
)
def test_normal_phi_grows_with_silence_and_falls_with_the_pause(
    intervals: list[float], a: float, b: float, pause: float
) -> None:
    strict = PhiAccrualDetector(model="normal")
    lenient = PhiAccrualDetector(model="normal", acceptable_pause=pause)
    now = 0.0
    for detector in (strict, lenient):
        detector.heartbeat("n", 0.0)
    for interval in intervals:
        now += interval
        for detector in (strict, lenient):
            detector.heartbeat("n", now)
    early, late = sorted((now + a, now + b))
    assert 0.0 <= lenient.phi("n", early) <= lenient.phi("n", late)
    assert math.isfinite(lenient.phi("n", late))
    if strict.mean_interval("n") == lenient.mean_interval("n"):  # the same intervals learned
        assert lenient.phi("n", late) <= strict.phi("n", late)
    strict._check_invariants()
    lenient._check_invariants()


def test_the_node_config_chooses_the_model() -> None:
    from dynamo_core import HashRing, Node, NodeConfig

    ring = HashRing(3, partitions=16)
    ring.add_nodes(["a", "b", "c"])
    config = NodeConfig(phi_model="normal", phi_acceptable_pause=3.0, phi_min_std=0.2)
    assert config.phi_model is PhiModel.NORMAL
    detector = Node("a", ring, config=config).detector
    assert (detector.model, detector.acceptable_pause, detector.min_std) == (
        PhiModel.NORMAL,
        3.0,
        0.2,
    )
    assert Node("a", ring).detector.model is PhiModel.EXPONENTIAL
    with pytest.raises(ValueError, match="phi_acceptable_pause applies to phi_model='normal'"):
        NodeConfig(phi_acceptable_pause=3.0)
    with pytest.raises(ValueError, match="phi_model must be one of"):
        NodeConfig(phi_model="weibull")
    with pytest.raises(ValueError, match="phi_min_std must be a finite number > 0"):
        NodeConfig(phi_model="normal", phi_min_std=-1.0)
