"""Exponential backoff with full jitter: bounds, growth, cap, and refusal of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.core.backoff import backoff_ceiling, full_jitter, jittered

units = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
failures = st.integers(min_value=0, max_value=10_000)
seconds = st.floats(min_value=0.001, max_value=10_000.0)


@given(failures, seconds, seconds, units)
def test_wait_lies_between_zero_and_the_ceiling(k: int, base: float, cap: float, unit: float) -> None:
    ceiling = backoff_ceiling(k, base, cap)
    wait = full_jitter(k, base, cap, unit)
    assert 0.0 <= wait <= ceiling <= cap


@given(st.integers(min_value=1, max_value=200), seconds, seconds)
def test_ceiling_doubles_until_the_cap(k: int, base: float, cap: float) -> None:
    assert backoff_ceiling(k + 1, base, cap) == min(cap, base * 2.0 ** min(k, 62))
    assert backoff_ceiling(k + 1, base, cap) >= backoff_ceiling(k, base, cap)


def test_first_failure_waits_up_to_base_and_no_failure_waits_nothing() -> None:
    assert backoff_ceiling(0, 1.0, 300.0) == 0.0
    assert backoff_ceiling(1, 1.0, 300.0) == 1.0
    assert backoff_ceiling(4, 1.0, 300.0) == 8.0
    assert backoff_ceiling(40, 1.0, 300.0) == 300.0
    assert full_jitter(3, 1.0, 300.0, 0.25) == 1.0


@given(seconds, units)
def test_jittered_period_stays_within_half_and_one_and_a_half(period: float, unit: float) -> None:
    assert 0.5 * period <= jittered(period, unit) < 1.5 * period + 1e-9


@pytest.mark.parametrize("args", [(-1, 1.0, 1.0), (1, 0.0, 1.0), (1, 1.0, -5.0)])
def test_bad_arguments_are_refused(args: tuple[int, float, float]) -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(*args)


@pytest.mark.parametrize("unit", [-0.1, 1.0, 2.0])
def test_random_unit_outside_zero_one_is_refused(unit: float) -> None:
    with pytest.raises(ValueError, match="random unit"):
        full_jitter(1, 1.0, 10.0, unit)
