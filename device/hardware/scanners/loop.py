"""The reconnecting device loop shared by every physical scan source.

``DeviceLoop`` implements ``ScanSource``: ``start`` runs ``supervise`` on its
own thread. ``run`` opens the device (``open_device`` returns None while it
is absent), reports CONNECTED, calls ``pump`` until the device is lost
(``pump`` raises ``OSError``), closes it, reports DISCONNECTED and tries
again every ``retry_every`` seconds: unplugging and re-plugging needs no
restart.

``supervise`` keeps the reading alive whatever happens inside it: a decoder
or a read callback that raises anything else would otherwise end the thread
while the state still said CONNECTED, and no later document would be read.
Such a fault is logged (its type and place, never its message, which may
quote a payload), reported as DISCONNECTED (the appliance raises the
scanner-lost alarm while polls are open), and ``run`` starts again after a
backoff: ``retry_every``, doubling with each fault in a row up to
``restart_cap`` (``Delays.scanner_restart_cap``); a read delivered without a
fault ends the row. CONNECTED is reported again once the device is reopened.

Waiting goes through the injected ``wait(seconds) -> stop requested`` so tests
drive the loop without sleeping; ``run`` and ``supervise`` can be called
directly in a test.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.core.backoff import backoff_ceiling
from device.core.delays import DEFAULT_DELAYS
from device.hardware.interfaces import ScannerState, ScanRead

log = logging.getLogger("pollbox.scanner")

Wait = Callable[[float], bool]


class DeviceLoop:
    """Base of the camera, keyboard and serial sources. Subclasses override
    ``open_device``, ``pump`` and ``close_device``."""

    name = "device"

    def __init__(self, *, retry_every: float = 2.0, wait: Wait | None = None,
                 restart_cap: float | None = None) -> None:
        self.retry_every = retry_every
        self.restart_cap = DEFAULT_DELAYS.scanner_restart_cap if restart_cap is None else restart_cap
        self.faults = 0
        """Faults of the reading loop since the source was made (each one restarted it)."""
        self._faults_in_row = 0
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
        self._thread = threading.Thread(target=self.supervise, name=f"pollbox-{self.name}", daemon=True)
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

    def supervise(self) -> None:
        """``run`` until ``stop``, restarting it after a backoff whenever a fault escapes it."""
        while not self._stop.is_set():
            try:
                self.run()
            except Exception as exc:  # anything else would end the thread with the state still CONNECTED
                if self._restart_after(exc):
                    return
            else:
                return

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

    def _restart_after(self, exc: Exception) -> bool:
        """Log and report the fault, then wait the backoff; True if stop was requested meanwhile."""
        self.faults += 1
        self._faults_in_row += 1
        delay = backoff_ceiling(self._faults_in_row, self.retry_every, self.restart_cap)
        log.error("%s: the reading loop failed (%s at %s); restarting it in %g s (fault %d in a row)",
                  self.name, type(exc).__name__, _place(exc), delay, self._faults_in_row)
        try:
            self.set_state(ScannerState.DISCONNECTED)
        except Exception as report:  # the listener failed too: the restart must still happen
            log.error("%s: reporting the failure failed too (%s at %s)", self.name, type(report).__name__,
                      _place(report))
        return self._stop.is_set() or self._wait(delay)

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
        self._faults_in_row = 0

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


def _place(exc: BaseException) -> str:
    """Where ``exc`` was raised, as ``file:line in function`` (no message: it may quote a payload)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"
