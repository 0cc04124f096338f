"""On a real Raspberry Pi with loopback wiring: the GPIO backend against real pins.

Skips everywhere else. Wiring (see docs/ballot-box.md, "Loopback test"):
jumper lock BCM 17 -> beam BCM 27 through 1 kOhm, green BCM 23 -> lid BCM 22
through 1 kOhm, and present BCM 5 to ground. Run on the Pi as root (or in the
``gpio`` group) with ``POLLBOX_PI_LOOPBACK=1``:

    POLLBOX_PI_LOOPBACK=1 python -m pytest tests/box/test_on_pi.py -m pi -v
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from device.core.delays import Delays
from device.hardware.boxes.pins import DEFAULT_PINS
from device.hardware.interfaces import BoxSignal

pytestmark = pytest.mark.pi

_MODEL = Path("/proc/device-tree/model")
_ON_PI = _MODEL.is_file() and "Raspberry Pi" in _MODEL.read_text(errors="replace")
if not (_ON_PI and os.environ.get("POLLBOX_PI_LOOPBACK") == "1"):
    pytest.skip("needs a Raspberry Pi with the loopback wiring and POLLBOX_PI_LOOPBACK=1",
                allow_module_level=True)


class _Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


def _wait_for(box: object, signals: list, wanted: BoxSignal, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if wanted in [s for s, _ in signals]:
            return True
        box.heartbeat()  # type: ignore[attr-defined]
        time.sleep(0.01)
    return False


def test_lock_output_loops_back_to_the_beam_input() -> None:
    from device.hardware.boxes.gpio import GpioBallotBox
    signals: list = []
    box = GpioBallotBox(clock=_Clock(), delays=Delays(), pins=DEFAULT_PINS)
    inputs = box.start(lambda s, t: signals.append((s, t)))
    try:
        assert not inputs.beam_blocked
        box.arm()
        assert _wait_for(box, signals, BoxSignal.BEAM_BLOCKED)
        assert _wait_for(box, signals, BoxSignal.BEAM_CLEARED), "a drop must lock the slot by itself"
    finally:
        box.stop()


def test_green_lamp_loops_back_to_the_lid_input() -> None:
    from device.hardware.boxes.gpio import GpioBallotBox
    signals: list = []
    box = GpioBallotBox(clock=_Clock(), delays=Delays(), pins=DEFAULT_PINS)
    box.start(lambda s, t: signals.append((s, t)))
    try:
        box.set_output("green", True)
        assert _wait_for(box, signals, BoxSignal.LID_OPENED)
        box.set_output("green", False)
        assert _wait_for(box, signals, BoxSignal.LID_CLOSED)
    finally:
        box.stop()
