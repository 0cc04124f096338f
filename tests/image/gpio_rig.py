"""The gpio ballot box on the kernel's ``gpio-sim`` in a booted test copy, seen from the test.

Shared by ``test_kernel_gpio`` (the long series) and ``test_kernel_quick`` (one check in ``make test``).
The kernel's ``gpio-sim`` (built for the image's kernel by ``kernel_modules``, Debian leaves it out)
gives a 28-line chip whose line offsets are BCM numbers, as on the Pi; ``gpiosim_guest.py`` in the
guest drives its inputs (the simulated pulls: real edges for the process holding the line) and reads
its outputs at line level. The appliance runs the ``gpio`` box on ``rpi-lgpio`` (the ``RPi.GPIO``
module over ``/dev/gpiochipN``).

Set for the test only: ``RPI_LGPIO_REVISION`` (rpi-lgpio refuses to run where the device tree names
no Pi; a Pi 4B revision is given), longer delays (``DEBOUNCE`` and the others below: emulation is
slow), and systemd's ``TimeoutStopSec`` (``STOP_POST``).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins

from .guest import Guest, GuestError, restart_appliance_with_parts
from .kernel_modules import NoModule, gpio_sim_module
from .vm import build_image, wait_for

GPIOSIM = Path(__file__).with_name("gpiosim_guest.py")
TEST_DIR = "/run/pollbox-test"
STATION = "/var/lib/pollbox/station"
PI4B_REVISION = "c03114"
"""A Raspberry Pi 4 Model B revision code, for rpi-lgpio's board check."""
LOCK, BEAM, LID, GREEN, RED, BUZZER, PRESENT, KEEPALIVE = 17, 27, 22, 23, 24, 25, 5, 12
"""The default pin map (device.hardware.boxes.pins.DEFAULT_PINS), BCM numbers."""
LINE_REACTS = 5.0
"""How long an output line may take to follow what the appliance decided (an emulated, shared CPU)."""
UDEV_APPLIES = 60.0
"""How long udev may take to give a new chip's device node its group and mode (the image's rule)."""
SERVICE_STARTS = 180.0
"""How long pollbox.service may take to (re)start in software emulation."""
STATUS_FOLLOWS = 30.0
"""How long the journal's counters may take to show what happened on the lines."""
STOP_POST = 120
"""``TimeoutStopSec`` of pollbox.service in the guest (20 s in the image): Python's start-up alone takes
~13 s in software emulation, ``pollbox box lock`` (ExecStopPost) ~21 s, so systemd would cut it short."""
DEBOUNCE = 1.0
"""The drop sensor's debounce time in the guest (``[delays] debounce``; 20 ms by default). In software
emulation on a shared host even two back-to-back writes to gpio-sim's ``pull`` lie up to ~90 ms apart
(measured), and the appliance's threads stall for tens of ms now and then. The box counts a level it
has seen and has not seen gone within the debounce time (integrity first: a drop reported late still
counts), so with 20 ms a "glitch" could really be longer than the debounce here. A second keeps the
test about debouncing through the kernel, not about the emulator's timing."""
JAM_AFTER = 6.0
"""``[delays] jam_after`` in the guest (3 s by default): longer than the test's drop pulses."""
SECOND_BALLOT_WINDOW = 300.0
"""``[delays] double_drop_window`` in the guest (10 s by default): a drop after a counted one within it
is a second ballot on one identification; in emulation the test's own steps take longer than 10 s."""
DROP = 2 * DEBOUNCE
"""How long a test ballot blocks the beam."""


class GpioRig:
    """The guest's gpio-sim chip and the appliance running on it, seen from the test."""

    def __init__(self, guest: Guest, chip: int) -> None:
        self.guest, self.chip = guest, chip
        self.voters = iter(demo_pins(50)[10:])

    def sim(self, *args: object) -> Any:
        """Run one ``gpiosim_guest`` command in the guest; its JSON answer."""
        return json.loads(self.guest.check(f"python3 {TEST_DIR}/gpiosim.py {' '.join(map(str, args))}"))

    def lines(self, *lines: int) -> dict[int, int]:
        return {int(k): v for k, v in self.sim("values", *lines).items()}

    def until(self, line: int, level: int, seconds: float = LINE_REACTS) -> float:
        """Seconds until ``line`` reads ``level`` (measured in the guest); fails after ``seconds``."""
        after = self.sim("until", line, level, seconds)["after"]
        assert after is not None, f"BCM {line} did not read {level} within {seconds} s: {self.lines(line)}"
        return float(after)

    def pollbox(self, *args: str, timeout: float = 120.0) -> tuple[int, str]:
        """``pollbox`` in the guest as the appliance's user, on the station's config; (status, output)."""
        cmd = (f"cd / && runuser -u pollbox -- env RPI_LGPIO_REVISION={PI4B_REVISION} /opt/pollbox/bin/pollbox "
               f"--config {STATION}/station.toml {' '.join(shlex.quote(a) for a in args)} 2>&1")
        return self.guest.run(cmd, timeout)

    def status(self) -> dict[str, Any]:
        return self.guest.control({"cmd": "status"})

    def ballots(self) -> int:
        return int(self.status()["counters"]["ballots"])

    def alarms(self, kind: str) -> int:
        return sum(1 for a in self.status()["alarms"] if a["kind"] == kind)

    def second_drop_alarms(self, second: int) -> None:
        """A second ballot dropped on the identification whose drop was just counted: it raises the
        second-ballot alarm (``second`` of them before) and the lock line stays locked."""
        # the first drop's clear must hold for the debounce time first: a shorter gap is a bounce, and the two
        # pulses would be one long block (one ballot, no second)
        wait_for(lambda: not self.status()["box"]["beam_blocked"], "the box saw the first drop's beam clear",
                 STATUS_FOLLOWS)
        self.sim("pulse", BEAM, 1, DROP)
        wait_for(lambda: self.alarms("second_ballot") == second + 1, "the second drop raised a second-ballot alarm",
                 STATUS_FOLLOWS)
        assert self.lines(LOCK)[LOCK] == 0

    def identify(self, how: str = "scan") -> None:
        """A voter admitted: through the simulated scanner (``scan``), or typed by the clerk (``manual``,
        whatever scanner the appliance runs)."""
        request = {"cmd": "scan", "text": next(self.voters)} if how == "scan" else \
            {"cmd": "manual", "number": next(self.voters)}
        decision = self.guest.control(request)["decision"]
        assert decision["outcome"] == "admitted", decision

    def idle_inputs(self) -> None:
        """The beam clear, the lid closed, the unit present: what a healthy box drives."""
        self.sim("pull", BEAM, "down", LID, "down", PRESENT, "down")

    def restart(self, how: str = "restart") -> None:
        self.guest.check(f"systemctl {how} pollbox.service", timeout=SERVICE_STARTS)
        self.wait_active()

    def wait_active(self) -> None:
        def box_started() -> bool:
            rc, _ = self.guest.run("systemctl is-active --quiet pollbox.service")
            if rc != 0:
                return False
            try:
                return bool(self.status()["box"].get("started"))
            except GuestError:  # the control socket is not up yet
                return False
        wait_for(box_started, "pollbox.service active with the gpio box started", SERVICE_STARTS)
        # The appliance's pull requests put every input in its alarm state; the box's own drivers
        # then drive the idle levels.
        self.idle_inputs()
        self.until(RED, 0)
        self.until(BUZZER, 0)

    def ended_locked_after(self, how: str) -> list[str]:
        """``systemctl <how> pollbox.service`` (``kill --signal=KILL``, ``stop``, ...) with the slot open;
        the lock line must read locked, the keep-alive stop pulsing, and ExecStopPost (``pollbox box
        lock``) say "slot locked" after the process ended. Its lines after the end."""
        mark = self.guest.check("date +%s").strip()
        self.guest.check(f"systemctl {how} pollbox.service", timeout=SERVICE_STARTS)
        self.until(LOCK, 0)
        assert len(self.sim("watch", KEEPALIVE, 0.3)["changes"]) == 1, "the keep-alive line still pulses"

        def stop_post_said() -> list[str]:
            said = self.guest.check(f"journalctl -u pollbox.service --since @{int(mark) - 1} --no-pager -o cat")
            lines = [line for line in said.splitlines() if "Started pollbox.service" not in line]
            ended = [i for i, line in enumerate(lines) if "Main process exited" in line or "Stopping pollbox" in line]
            return [line for line in lines[ended[0]:] if "slot locked" in line or "timed out" in line] if ended else []
        said = wait_for(stop_post_said, "ExecStopPost (pollbox box lock) said the slot is locked", SERVICE_STARTS)
        assert said[0] == "slot locked", said
        assert self.lines(LOCK)[LOCK] == 0
        return said


def gpio_sim_for_image() -> Path:
    """``gpio-sim.ko`` for the tests' image's kernel (the image is built or cached by then); else a skip."""
    try:
        return gpio_sim_module(build_image("amd64").with_suffix(".manifest"))
    except NoModule as exc:
        pytest.skip(f"no gpio-sim module for the image's kernel: {exc}")


def load_gpio_sim(guest: Guest, module: Path) -> GpioRig:
    """gpio-sim loaded in the guest with the Pi header's chip made (the appliance not switched yet)."""
    guest.check(f"mkdir -p {TEST_DIR}")
    guest.push(module, f"{TEST_DIR}/gpio-sim.ko")
    guest.push(GPIOSIM, f"{TEST_DIR}/gpiosim.py")
    chip = json.loads(guest.check(f"python3 {TEST_DIR}/gpiosim.py setup {TEST_DIR}/gpio-sim.ko"))
    node = f"/dev/{chip['chip']}"
    wait_for(lambda: guest.run(f"test -c {node} && stat -c %G:%a {node} | grep -qx pollbox:660")[0] == 0,
             f"udev giving {node} to the pollbox group (mode 660)", UDEV_APPLIES)
    return GpioRig(guest, int(chip["number"]))


def gpio_box(rig: GpioRig) -> tuple[tuple[str, dict[str, str | int]], dict[str, dict[str, str | int | float]],
                                    dict[str, str]]:
    """What ``restart_appliance_with_parts`` needs for the gpio box on ``rig``'s chip: the part, the
    test's delays and the service's settings."""
    return (("gpio", {"library": "rpi-lgpio", "chip": rig.chip}),
            {"delays": {"debounce": DEBOUNCE, "jam_after": JAM_AFTER, "double_drop_window": SECOND_BALLOT_WINDOW}},
            {"Environment": f"RPI_LGPIO_REVISION={PI4B_REVISION}", "TimeoutStopSec": str(STOP_POST)})


def switch_to_gpio(guest: Guest, module: Path) -> GpioRig:
    """gpio-sim loaded and the appliance restarted on the gpio box (the simulated scanner kept)."""
    rig = load_gpio_sim(guest, module)
    part, tables, service = gpio_box(rig)
    restart_appliance_with_parts(guest, {"ballot_box": part}, tables=tables, service=service, timeout=SERVICE_STARTS)
    rig.wait_active()
    return rig
