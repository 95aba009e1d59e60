from __future__ import annotations

import math

import pytest

from dynamo_core import Clock
from dynamo_core.testing import FakeClock


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(10)
    assert isinstance(clock, Clock)
    assert clock.now() == 10.0
    assert clock.advance(2.5) == 12.5
    clock.set(20)
    assert clock.now() == 20.0


@pytest.mark.parametrize("bad", [-1, math.inf, math.nan])
def test_fake_clock_refuses_bad_steps(bad: float) -> None:
    clock = FakeClock(5)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(bad)
    assert clock.now() == 5.0


def test_fake_clock_never_goes_back() -> None:
    clock = FakeClock(5)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(4)
    with pytest.raises(TypeError, match="start"):
        FakeClock("0")  # type: ignore[arg-type]
    assert clock.now() == 5.0
