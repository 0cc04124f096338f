"""The reconnecting device loop shared by every physical scan source.

``DeviceLoop`` implements ``ScanSource``: ``start`` runs ``run`` on its own
thread. ``run`` opens the device (``open_device`` returns None while it is
absent), reports CONNECTED, calls ``pump`` until the device is lost (``pump``
raises ``OSError``), closes it, reports DISCONNECTED and tries again every
``retry_every`` seconds: unplugging and re-plugging needs no restart.
Waiting goes through the injected ``wait(seconds) -> stop requested`` so tests
drive the loop without sleeping; ``run`` can be called directly in a test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from device.hardware.interfaces import ScannerState, ScanRead

log = logging.getLogger("pollbox.scanner")

Wait = Callable[[float], bool]


class DeviceLoop:
    """Base of the camera, keyboard and serial sources. Subclasses override
    ``open_device``, ``pump`` and ``close_device``."""

    name = "device"

    def __init__(self, *, retry_every: float = 2.0, wait: Wait | None = None) -> None:
        self.retry_every = retry_every
        self._stop = threading.Event()
        self._wait: Wait = wait or self._stop.wait
        self._state = ScannerState.DISCONNECTED
        self._announced = False
        self._on_read: Callable[[ScanRead], None] | None = None
        self._on_state: Callable[[ScannerState], None] | None = None
        self._thread: threading.Thread | None = None

    # ScanSource -----------------------------------------------------------------

    def start(self, on_read: Callable[[ScanRead], None], on_state: Callable[[ScannerState], None]) -> None:
        self.attach(on_read, on_state)
        self._thread = threading.Thread(target=self.run, name=f"pollbox-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def state(self) -> ScannerState:
        return self._state

    # The loop -----------------------------------------------------------------

    def attach(self, on_read: Callable[[ScanRead], None], on_state: Callable[[ScannerState], None]) -> None:
        self._on_read, self._on_state = on_read, on_state
        self._stop.clear()

    def run(self) -> None:
        """Open, pump, reopen, until ``stop``; returns when stopped."""
        while not self._stop.is_set():
            handle = self._try_open()
            if handle is None:
                self.set_state(ScannerState.DISCONNECTED)
                if self._wait(self.retry_every):
                    return
                continue
            self.set_state(ScannerState.CONNECTED)
            self._serve(handle)
            self.set_state(ScannerState.DISCONNECTED)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _try_open(self) -> Any:
        try:
            return self.open_device()
        except OSError as exc:
            log.info("%s: cannot open the device yet (%s)", self.name, exc.strerror or exc)
            return None

    def _serve(self, handle: Any) -> None:
        try:
            while not self._stop.is_set():
                self.pump(handle)
        except OSError as exc:
            log.warning("%s: device lost (%s)", self.name, exc.strerror or type(exc).__name__)
        finally:
            self.close_device(handle)

    def set_state(self, state: ScannerState) -> None:
        if state is self._state and self._announced:
            return
        self._state, self._announced = state, True
        if self._on_state is not None:
            self._on_state(state)

    def emit(self, read: ScanRead) -> None:
        if self._on_read is not None:
            self._on_read(read)

    # Overridden by each source ----------------------------------------------------

    def open_device(self) -> Any:
        """The opened device, or None while it is absent; may raise OSError."""
        raise NotImplementedError

    def pump(self, handle: Any) -> None:
        """Read once (with a short timeout) and emit what is complete; OSError when the device is lost."""
        raise NotImplementedError

    def close_device(self, handle: Any) -> None:
        """Release the device; must not raise."""
        raise NotImplementedError
