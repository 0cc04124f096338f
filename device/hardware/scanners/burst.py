"""Cutting a stream of typed or received characters into scans.

A handheld scanner sends a whole payload in one burst (a few milliseconds
between characters), often with line breaks inside it (an MRZ, an AAMVA
licence) and a suffix (Enter, CR LF). A scan therefore ends when no
character has arrived for ``gap`` seconds, not at the first line break.
Surrounding line breaks are dropped. Time is passed in (monotonic seconds).
"""

from __future__ import annotations

MAX_CHARS = 8192
"""A burst longer than this is cut and delivered (the parser refuses it as too long)."""


class BurstAssembler:
    def __init__(self, gap: float = 0.08) -> None:
        if gap <= 0:
            raise ValueError("the burst gap must be a positive number of seconds")
        self.gap = gap
        self._chars: list[str] = []
        self._last = 0.0

    @property
    def busy(self) -> bool:
        """True while a scan is arriving."""
        return bool(self._chars)

    def add(self, text: str, now: float) -> str | None:
        """Add what arrived at ``now``; returns a finished scan if the previous burst had ended."""
        done = self.due(now)
        if text:
            self._chars.append(text)
            self._last = now
        if sum(len(c) for c in self._chars) >= MAX_CHARS:
            return done or self._take()
        return done

    def due(self, now: float) -> str | None:
        """The finished scan if ``gap`` has passed since the last character, else None."""
        if self._chars and now - self._last >= self.gap:
            return self._take()
        return None

    def _take(self) -> str | None:
        text, self._chars = "".join(self._chars).strip("\r\n"), []
        return text or None
