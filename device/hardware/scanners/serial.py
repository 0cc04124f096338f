"""A handheld scanner or document reader in serial mode (USB CDC-ACM, or a real UART).

Chosen by ``scanner = "serial"``. Opened with pyserial by port path (best a
stable ``/dev/serial/by-id/...`` name) or URL; bytes are decoded as UTF-8
and cut into scans by ``burst.BurstAssembler``, so a multi-line MRZ arrives
whole whatever suffix the reader sends. When the USB device goes away the
read fails (``SerialException`` is an ``OSError``), the state becomes
DISCONNECTED, and the port is reopened every ``retry_every`` seconds.

Tests use pyserial's ``loop://`` port. A physical scanner is not exercised here.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

import serial

from device.hardware.interfaces import ScannerState, ScanRead

from .burst import BurstAssembler
from .loop import DeviceLoop, Wait

POLL = 0.02
"""The port's read timeout, in seconds."""


class SerialScanner(DeviceLoop):
    name = "serial"

    def __init__(self, *, port: str, baudrate: int = 9600, gap: float = 0.08, monotonic: Callable[[], float],
                 retry_every: float = 2.0, wait: Wait | None = None,
                 opener: Callable[[], Any] | None = None, restart_cap: float | None = None) -> None:
        super().__init__(retry_every=retry_every, wait=wait, restart_cap=restart_cap)
        self.port, self.baudrate = port, baudrate
        self._gap, self._monotonic = gap, monotonic
        self._opener = opener or self._open_port
        self._burst = BurstAssembler(gap)
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def open_device(self) -> Any:
        self._burst, self._text = BurstAssembler(self._gap), codecs.getincrementaldecoder("utf-8")(errors="replace")
        return self._opener()

    def _open_port(self) -> Any:
        try:
            return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=POLL)
        except serial.SerialException as exc:
            if "could not open port" in str(exc) or "No such file" in str(exc):
                return None
            raise

    def pump(self, handle: Any) -> None:
        data = handle.read(max(1, handle.in_waiting))
        text = self._text.decode(data) if data else ""
        now = self._monotonic()
        done = self._burst.add(text, now) if text else self._burst.due(now)
        if done:
            self.emit(ScanRead(done, "serial", self.name))
        self.set_state(ScannerState.READING if self._burst.busy else ScannerState.CONNECTED)

    def close_device(self, handle: Any) -> None:
        try:
            handle.close()
        except OSError:
            pass  # the port went away with the device
