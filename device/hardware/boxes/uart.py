"""The serial link to the smart box: pyserial is imported here and nowhere else.

``open_uart(port, baudrate)`` returns a ``Link`` (non-blocking ``read``,
``write``, ``close``). On a Raspberry Pi the smart box is on the header UART
(``/dev/serial0``: GPIO 14 TX, GPIO 15 RX) or a USB serial adapter.
"""

from __future__ import annotations

from typing import Protocol

import serial

from .errors import BoxError


class Link(Protocol):
    """A byte link: ``read`` returns what has arrived (possibly nothing) without blocking."""

    def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial port in non-blocking mode."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port

    def read(self) -> bytes:
        waiting = self._port.in_waiting
        return bytes(self._port.read(waiting)) if waiting else b""

    def write(self, data: bytes) -> None:
        self._port.write(data)

    def close(self) -> None:
        self._port.close()


def open_uart(port: str, baudrate: int) -> SerialLink:
    """Open ``port`` at ``baudrate`` 8N1; BoxError names the port when it cannot be opened."""
    try:
        return SerialLink(serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=0.5))
    except (serial.SerialException, ValueError) as exc:
        raise BoxError(f"cannot open the smart box serial port {port!r} at {baudrate} baud: {exc}") from exc
