"""Chair-PIN lockout arithmetic, pure: no clock, no file.

Five wrong PINs in a row lock the PIN for ``base`` seconds; every further
wrong PIN (tried once the lock has run out) locks it for twice as long as the
one before. A correct PIN resets the count. ``pin.py`` stores this state in
the PIN file so a restart does not reset it.
"""

from __future__ import annotations

from dataclasses import dataclass

FREE_TRIES = 5
MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class Attempts:
    """Wrong PINs in a row, and the wall time until which the PIN is locked."""

    failures: int = 0
    locked_until: float = 0.0

    def locked_for(self, now: float) -> float:
        """Seconds left on the lock (0 if not locked)."""
        return max(0.0, self.locked_until - now)

    @property
    def tries_left(self) -> int:
        """Wrong PINs still allowed before the next lock."""
        return max(0, FREE_TRIES - self.failures)


def lock_seconds(failures: int, base: float) -> float:
    """The lock that follows the ``failures``-th wrong PIN in a row."""
    if failures < FREE_TRIES:
        return 0.0
    return float(base * 2 ** min(failures - FREE_TRIES, MAX_DOUBLINGS))


def after_failure(state: Attempts, now: float, base: float) -> Attempts:
    """The state after one more wrong PIN at ``now``."""
    failures = state.failures + 1
    lock = lock_seconds(failures, base)
    return Attempts(failures, now + lock if lock else state.locked_until)


def after_success() -> Attempts:
    return Attempts()
