"""The image's touch poller pointed at the kernel's ``i2c-stub`` playing the 7-inch panel's controller.

A test copy of the image has no panel, so ``pollbox-touch.service`` found none at boot and stopped.
``poll_the_stub`` loads ``i2c-stub`` with a chip at ``address`` (``touch_guest.py bus``), points the
image's own unit at that bus with a runtime drop-in (its hardening and device rules unchanged), and
waits until the poller says it polls (``run_with`` restarts the unit with any arguments). ``tap`` puts
a finger on the stub's glass and lifts it as soon as the poller's touchscreen reports it (a short
tap, not a long press).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from device.hardware.touchpanel.poller import UinputTouch

from .scanner_rig import TEST_DIR
from .vm import wait_for

HELPER = Path(__file__).with_name("touch_guest.py")
GUEST_HELPER = f"{TEST_DIR}/touch_guest.py"
ADDRESS = 0x38
"""Where the panel's touch controller answers on its bus (and where the poller reads by default)."""
DROP_IN = "/run/systemd/system/pollbox-touch.service.d"
START_LIMIT_BURST = 5
"""The starts in 5 minutes after which the image's unit gives up (``StartLimitBurst`` in pollbox-touch.service)."""


def said(guest: Any) -> str:
    """What the touch poller wrote to the journal in this boot."""
    return str(guest.check("journalctl -b -u pollbox-touch.service --no-pager -o cat"))


def poll_the_stub(guest: Any, follows: float, address: int = ADDRESS) -> int:
    """The stub's bus number, once the image's poller, restarted on that bus, polls it."""
    guest.check(f"mkdir -p {TEST_DIR}")
    guest.push(HELPER, GUEST_HELPER)
    bus = int(guest.check(f"python3 {GUEST_HELPER} bus {address:#x}", timeout=120))
    run_with(guest, f"--bus {bus}")
    wait_for(lambda: "polling the touch panel on" in said(guest), "the touch poller polling the stub", follows)
    return bus


def run_with(guest: Any, arguments: str, extra: str = "") -> None:
    """Restart the image's own unit with the poller given ``arguments``: a runtime drop-in on its ExecStart,
    plus ``extra`` drop-in lines (sections included); its start-rate count is reset first."""
    drop_in = f"[Service]\\nExecStart=\\nExecStart=/opt/pollbox/bin/python -m device.hardware.touchpanel {arguments}\\n"
    guest.check(f"mkdir -p {DROP_IN} && printf '{drop_in}{extra}' > {DROP_IN}/test.conf && systemctl daemon-reload"
                " && (systemctl reset-failed pollbox-touch.service || true) && systemctl restart pollbox-touch.service")


def unit_state(guest: Any) -> dict[str, str]:
    """systemd's view of the unit: ``ActiveState``, ``Result``, ``NRestarts`` and ``ExecMainStatus``."""
    shown = guest.check("systemctl show -p ActiveState,Result,NRestarts,ExecMainStatus pollbox-touch.service")
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def tap(guest: Any, bus: int, x: int, y: int, follows: float, address: int = ADDRESS) -> dict[str, Any]:
    """A finger at (x, y) on the stub, lifted once the touchscreen reported it; ``touch_guest.py tap``'s answer."""
    answer = guest.check(f"python3 {GUEST_HELPER} tap {bus} {address:#x} '{UinputTouch.NAME}' {x} {y} {follows}",
                         timeout=2 * follows + 60)
    return dict(json.loads(answer))
