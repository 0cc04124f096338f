"""Exponential backoff with full jitter, as a pure computation.

After the k-th consecutive failure the next attempt waits a uniformly random
time in ``[0, min(cap, base * 2**(k-1)))``. Spreading retries over the whole
interval keeps thousands of stations from retrying in step after a receiver
outage. The random number is passed in (``unit`` in ``[0, 1)``), so callers
inject their random source and tests choose it.

Used by ``device/upstream/service.py`` with ``Delays.uplink_backoff_base`` and
``Delays.uplink_backoff_cap``.
"""

from __future__ import annotations

MAX_DOUBLINGS = 62


def backoff_ceiling(failures: int, base: float, cap: float) -> float:
    """The upper end of the wait after ``failures`` consecutive failures (0 when none)."""
    if failures < 0:
        raise ValueError(f"failures must be 0 or more, got {failures}")
    if base <= 0 or cap <= 0:
        raise ValueError("backoff base and cap must be positive seconds")
    if failures == 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, MAX_DOUBLINGS))


def full_jitter(failures: int, base: float, cap: float, unit: float) -> float:
    """The wait before the next attempt: ``unit`` (in [0, 1)) times the ceiling."""
    if not 0.0 <= unit < 1.0:
        raise ValueError(f"the random unit must be in [0, 1), got {unit}")
    return unit * backoff_ceiling(failures, base, cap)


def jittered(period: float, unit: float) -> float:
    """``period`` spread uniformly over [period/2, 3*period/2) by ``unit`` in [0, 1)."""
    if not 0.0 <= unit < 1.0:
        raise ValueError(f"the random unit must be in [0, 1), got {unit}")
    return period * (0.5 + unit)
