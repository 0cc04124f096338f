"""How many rejections the receiver writes down: a rate per source and overall, so nobody can fill its disk.

Every rejection is answered. It is written to the debug log and to
the ``rejections`` table unless its source (``http:<address>``, ``import:...``)
has used up its allowance (``PER_SOURCE`` at once, then one per
``SOURCE_REFILL_SECONDS``) or all sources together have (``OVERALL``, refilled
``OVERALL_PER_SECOND``). What is not written is counted (the debug log says
once when a source goes over), and the next row written for that source says
how many were left out. The table itself keeps at most ``MAX_ROWS`` rows,
oldest dropped first (``store/ingest.py``).

Pure: the clock comes in as an argument, so tests move time by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

PER_SOURCE = 60
SOURCE_REFILL_SECONDS = 1.0
OVERALL = 600
OVERALL_PER_SECOND = 20.0
MAX_SOURCES = 10_000
MAX_ROWS = 100_000


@dataclass
class Bucket:
    """A token bucket: ``tokens`` left as of ``at``."""

    capacity: float
    per_second: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.at)
        self.tokens, self.at = min(self.capacity, self.tokens + elapsed * self.per_second), now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RejectionLimiter:
    """Decides which rejections are written down; one per receiver process."""

    def __init__(self, per_source: int = PER_SOURCE, source_refill_seconds: float = SOURCE_REFILL_SECONDS,
                 overall: int = OVERALL, overall_per_second: float = OVERALL_PER_SECOND,
                 max_sources: int = MAX_SOURCES) -> None:
        self._per_source, self._refill = per_source, 1 / source_refill_seconds
        self._overall = Bucket(overall, overall_per_second, overall, float("-inf"))
        self._sources: OrderedDict[str, Bucket] = OrderedDict()
        self._left_out: dict[str, int] = {}
        self._max_sources = max_sources

    def admit(self, source: str, now: float) -> int | None:
        """None when this rejection is not to be written; else how many of ``source``'s were left out before it."""
        bucket = self._bucket(source, now)
        if bucket.take(now) and self._overall.take(now):
            return self._left_out.pop(source, 0)
        self._left_out[source] = self._left_out.get(source, 0) + 1
        return None

    def left_out(self, source: str) -> int:
        return self._left_out.get(source, 0)

    def _bucket(self, source: str, now: float) -> Bucket:
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = self._sources[source] = Bucket(self._per_source, self._refill, self._per_source, now)
            while len(self._sources) > self._max_sources:
                forgotten, _ = self._sources.popitem(last=False)
                self._left_out.pop(forgotten, None)
        self._sources.move_to_end(source)
        return bucket
