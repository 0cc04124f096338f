"""Clocks: the system clock for the appliance, a fake clock for tests and demos.

Both implement ``device.hardware.interfaces.Clock``. The fake clock moves only
when told (``advance``, ``jump_wall``), so tests advance it by exactly a named
delay and never sleep.
"""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall time from ``time.time``, timers from ``time.monotonic``."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that stands still until advanced. Thread-safe."""

    def __init__(self, wall: float = 1_800_000_000.0, monotonic: float = 1_000.0) -> None:
        self._wall, self._mono = wall, monotonic
        self._lock = threading.Lock()

    def wall(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._wall += seconds
            self._mono += seconds

    def jump_wall(self, seconds: float) -> None:
        """Step only the wall clock (an NTP correction or a wrong RTC), either way."""
        with self._lock:
            self._wall += seconds
