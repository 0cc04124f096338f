"""The simulated scanner: a source you feed text to, as a handheld scanner would type it.

Chosen by ``scanner = "sim"`` in config and refused in production mode. It can
also be unplugged and re-plugged to exercise the scanner-state display.
"""

from __future__ import annotations

from collections.abc import Callable

from device.hardware.interfaces import ScannerState, ScanRead, ScanSource


class SimScanner(ScanSource):
    name = "sim"

    def __init__(self) -> None:
        self._on_read: Callable[[ScanRead], None] | None = None
        self._on_state: Callable[[ScannerState], None] | None = None
        self._state = ScannerState.DISCONNECTED

    def start(self, on_read: Callable[[ScanRead], None], on_state: Callable[[ScannerState], None]) -> None:
        self._on_read, self._on_state = on_read, on_state
        self._set(ScannerState.CONNECTED)

    def stop(self) -> None:
        self._set(ScannerState.DISCONNECTED)
        self._on_read = self._on_state = None

    def state(self) -> ScannerState:
        return self._state

    def feed(self, text: str, symbology: str = "typed") -> None:
        """Deliver one read, as if a document had been scanned."""
        if self._state is ScannerState.DISCONNECTED or self._on_read is None:
            raise RuntimeError("the simulated scanner is unplugged")
        self._on_read(ScanRead(text=text, symbology=symbology, source=self.name))

    def unplug(self) -> None:
        self._set(ScannerState.DISCONNECTED)

    def replug(self) -> None:
        self._set(ScannerState.CONNECTED)

    def _set(self, state: ScannerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)
