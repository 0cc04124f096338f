"""Debouncing of one digital input: a raw edge counts only once its level has held.

``Debouncer`` is fed the raw level whenever it is seen (an edge interrupt or a
poll) and asked to ``settle`` as time passes; it reports a change only when a
new level has held for ``hold``. A bounce (a pulse shorter than ``hold``) never
changes the debounced level. ``changed_at`` is when the new level began, so a
signal carries the time of the real edge, not the time it was confirmed.

Time units are the caller's: seconds (floats) on the Raspberry Pi, milliseconds
(ints) on the smart box. This module is written in the Python subset that both
CPython and MicroPython run, because the smart box firmware uses it too: it is
copied to the RP2040 as ``debounce.py`` (see ``device/firmware/__init__.py``).
No imports, no dataclasses, no ``__future__``.

Wiring: the GPIO backend keeps one per input; the firmware's ``BoxLogic`` too.
"""


class Debouncer:
    """One input. ``level`` is the debounced level; it starts at the level read at start-up."""

    def __init__(self, level: bool, hold: float) -> None:
        if hold < 0:
            raise ValueError("debounce hold must not be negative")
        self.level = level
        self.hold = hold
        self.changed_at: float | None = None
        self._raw = level
        self._since: float = 0

    @property
    def pending(self) -> bool:
        """True while a raw level differs from the debounced level and has not yet held."""
        return self._raw != self.level

    def due(self) -> float | None:
        """The time at which ``settle`` will confirm the pending level, if one is pending."""
        return self._since + self.hold if self.pending else None

    def feed(self, raw: bool, now: float) -> bool:
        """Record the raw level seen at ``now``; True if the debounced level changed.

        A pending level that had already held long enough is confirmed first, so
        an edge reported late (a missed poll) is still counted once.
        """
        changed = self.settle(now)
        if raw != self._raw:
            self._raw = raw
            self._since = now
        return changed

    def settle(self, now: float) -> bool:
        """Confirm the pending level if it has held for ``hold``; True if the level changed."""
        if self._raw == self.level or now - self._since < self.hold:
            return False
        self.level = self._raw
        self.changed_at = self._since
        return True
