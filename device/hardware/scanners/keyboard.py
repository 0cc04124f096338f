"""A handheld scanner in keyboard (HID) mode, read with evdev and grabbed.

Chosen by ``scanner = "keyboard"``. The device is found by its path
(``/dev/input/by-id/...-event-kbd``) or by a part of its name, opened and
*grabbed*: its key presses reach pollbox only, never the kiosk browser or a
console. Events are turned into text by ``keys.KeyDecoder`` with the layout
the scanner is set to, and cut into scans by ``burst.BurstAssembler``.
When the scanner is unplugged the read fails, the state becomes
DISCONNECTED, and the loop looks for it again every ``retry_every`` seconds.

Tests replace ``open_device`` with a fake device (``KeyDevice``). On a real
scanner: exercised with the kernel's input layer only through evdev's API;
the wiring to a physical scanner is not exercised here.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable
from typing import Any, Protocol

import evdev

from device.hardware.interfaces import ScannerState, ScanRead

from .burst import BurstAssembler
from .keymaps import keymap
from .keys import KeyDecoder
from .loop import DeviceLoop, Wait

POLL = 0.02
"""How long one read waits for key events, in seconds."""

log = logging.getLogger("pollbox.scanner")


class KeyDevice(Protocol):
    """An opened, grabbed keyboard device."""

    def read_keys(self, timeout: float) -> list[tuple[int, int]]:
        """(code, value) key events that arrived within ``timeout``; OSError if unplugged."""
        ...

    def close(self) -> None: ...


class KeyboardScanner(DeviceLoop):
    name = "keyboard"

    def __init__(self, *, device: str, layout: str = "us", gap: float = 0.08, monotonic: Callable[[], float],
                 retry_every: float = 2.0, wait: Wait | None = None,
                 opener: Callable[[], KeyDevice | None] | None = None, restart_cap: float | None = None) -> None:
        super().__init__(retry_every=retry_every, wait=wait, restart_cap=restart_cap)
        self.device, self.layout = device, keymap(layout)
        self._gap, self._monotonic = gap, monotonic
        self._opener = opener or (lambda: open_evdev(device))
        self._keys = KeyDecoder(self.layout)
        self._burst = BurstAssembler(gap)

    def open_device(self) -> KeyDevice | None:
        self._keys, self._burst = KeyDecoder(self.layout), BurstAssembler(self._gap)
        return self._opener()

    def pump(self, handle: Any) -> None:
        events = handle.read_keys(POLL)
        text = "".join(self._keys.feed(code, value) for code, value in events)
        self._deliver(self._burst.add(text, self._monotonic()) if text else self._burst.due(self._monotonic()))
        if self.state() is not ScannerState.DISCONNECTED:
            self.set_state(ScannerState.READING if self._burst.busy else ScannerState.CONNECTED)

    def close_device(self, handle: Any) -> None:
        handle.close()

    def _deliver(self, text: str | None) -> None:
        if text:
            self.emit(ScanRead(text, "keyboard", self.name))


class EvdevKeyDevice:
    """An evdev ``InputDevice``, grabbed for as long as it is open."""

    def __init__(self, device: Any) -> None:
        self._device = device
        self._name = getattr(device, "path", "?")
        device.grab()

    def read_keys(self, timeout: float) -> list[tuple[int, int]]:
        ready, _, _ = select.select([self._device.fd], [], [], timeout)
        if not ready:
            return []
        events = list(self._device.read())
        if any(e.type == evdev.ecodes.EV_SYN and e.code == evdev.ecodes.SYN_DROPPED for e in events):
            # The kernel's buffer for this reader overflowed (pollbox did not read for a while): the scan
            # being typed lost key presses, so it reaches the station incomplete and is refused there.
            log.warning("keyboard scanner %s: the kernel dropped key events (SYN_DROPPED); the scan being "
                        "typed is incomplete and will be refused: scan the document again", self._name)
        return [(e.code, e.value) for e in events if e.type == evdev.ecodes.EV_KEY]

    def close(self) -> None:
        try:
            self._device.ungrab()
        except OSError:
            pass  # already gone with the unplugged device
        self._device.close()


def open_evdev(spec: str) -> EvdevKeyDevice | None:
    """The device at path ``spec``, or the first whose name contains ``spec``; None if absent."""
    if spec.startswith("/dev/"):
        try:
            return EvdevKeyDevice(evdev.InputDevice(spec))
        except FileNotFoundError:
            return None
    for path in evdev.list_devices():
        device = evdev.InputDevice(path)
        if spec.lower() in device.name.lower():
            return EvdevKeyDevice(device)
        device.close()
    return None
