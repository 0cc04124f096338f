"""Every hardware backend through its kernel interface, one boot, one check each: what ``make test`` runs.

A test copy of the amd64 image boots once with every rig attached: two more QEMU UARTs on host
sockets (the guest's ``/dev/ttyS1`` for the smart box, ``/dev/ttyS2`` for the serial scanner), the
kernel's ``gpio-sim`` laid out as the Pi header (``gpio_rig``), a ``uinput`` keyboard typing as a
scanner in keyboard mode (``scanner_rig``), the box's MicroPython firmware on the host end of
``ttyS1`` (``smartbox_host.mjs``) and the kernel's ``vivid`` camera (``v4l2_guest.py``). The image's
own ``pollbox.service`` is switched by its config and a systemd restart three times, each time to a
box and a scanner at once:

1. the gpio box on rpi-lgpio and the keyboard scanner: a typed personal number admits a voter
   while the appliance holds the device grabbed (a second reader can neither grab it nor read a
   key); one identification opens the lock line for exactly one drop (read at line level); the
   appliance SIGKILLed with the slot open leaves the lock line locked;
2. the smart box on ``ttyS1`` and the serial scanner on ``ttyS2``: a personal number written in
   3-byte pieces admits a voter; one identification opens the box for exactly one drop, counted once;
3. the V4L2 camera on vivid's capture node: a frame with a voter's personal number admits the voter.

And the 7-inch panel's touch poller (``pollbox-touch.service``): at boot it finds no panel in this
machine's device tree and stops without failing; pointed at the kernel's ``i2c-stub`` playing the
panel's controller (``touch_guest.py``), a finger written into its registers comes out of the
poller's uinput device as a direct touchscreen's touch at the same point, and its lift as a lift.
Given a wrong command line it is not started again; unable to open its bus, it is started 5 times
in 5 minutes and then left failed.

The kiosk is not started in this boot (``make_test_copy(kiosk=False)``): Chromium under software
emulation takes most of the guest's CPU for minutes, and the kiosk's own checks, the keyboard
scanner's keystrokes kept from it included, are in ``test_kiosk``. Short documents (a personal
number, not an MRZ) keep small the chance that an emulator stall longer than the scanners' 80 ms
burst gap splits one; a split read is sent again (``read_document``). The identifications that open
a box are the clerk's (the ``manual`` control command), so a box's check does not depend on a
scanner's. The long series of each backend (bounce, the lid and jams, layouts, garbage and
disconnects, the crash and stop cases, refusals at start, the cable pulled) are in
``test_kernel_gpio``, ``test_kernel_scanners``, ``test_kernel_smartbox`` and ``test_kernel_camera``
(``make image-test``).

The negative check: ``POLLBOX_KERNEL_BREAK`` (comma-separated names of ``BREAKS``) breaks one path
each in the rig, and that path's check must then fail; ``make test`` leaves it unset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins
from device.hardware.scanners.imagefeed import place
from device.hardware.scanners.samples import render

from . import touch_rig
from .gpio_rig import BEAM, DROP, GREEN, LOCK, STATUS_FOLLOWS, GpioRig, gpio_box, gpio_sim_for_image, load_gpio_sim
from .guest import ProbedUnit, booted_unit, restart_appliance_with, restart_appliance_with_parts
from .scanner_rig import SCANNER_NAME, SERVICE_STARTS, TEST_DIR, ScannerRig
from .test_kernel_camera import HEIGHT, HELPER, PYTHON, WIDTH, CameraRig
from .test_kernel_smartbox import MICROPYTHON, Firmware, SmartBoxRig
from .vm import IMAGE_TEST_TIMEOUT, uarts, wait_for

pytestmark = [pytest.mark.image, pytest.mark.smoke, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

BOX_LINE, SCANNER_LINE = "/dev/ttyS1", "/dev/ttyS2"
BOX_BAUD, SCANNER_BAUD = 115200, 9600
VIVID = "vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1"
"""vivid with one capture node (an HDMI input) and one output node (an HDMI output), as test_kernel_camera loads it."""
CAMERA_STARTS = 600.0
"""How long pollbox.service may take to restart with the camera (OpenCV and numpy imported, the V4L2
device opened): over 270 s once in software emulation with four emulated machines on two cores."""
PIECE = 3
"""Bytes in each write of a serial payload (a personal number and CR LF) from the host."""
FOLLOWS = 60.0
"""How long the appliance or the box may take to react (an emulated, shared CPU)."""
BREAKS = {
    "gpio-chip": "the appliance is given a gpio chip label that no chip has",
    "gpio-line": "the drop is pulsed on a line the pin map does not use (BCM 26), not the beam's",
    "keyboard-layout": "the scanner types with a French layout while the appliance reads a US one",
    "serial-speed": "the serial scanner's port is set to 115200 baud, not the 9600 the reader sends at",
    "smartbox-speed": "the smart box's port is set to 9600 baud, not the box's 115200",
    "vivid": "vivid is not loaded: no V4L2 camera in the guest",
    "touch-address": "the stub touch controller answers at 0x39, not the 0x38 the poller reads",
    "touch-exit-status": "the touch unit restarts the poller whatever its exit status (a wrong command line too)",
    "touch-start-limit": "the touch unit has no start limit: a poller that cannot start is started again all day",
}
"""The paths the negative check can break, each with what it does."""
BROKEN = frozenset(filter(None, os.environ.get("POLLBOX_KERNEL_BREAK", "").split(",")))
if BROKEN - BREAKS.keys():
    raise ValueError(f"POLLBOX_KERNEL_BREAK: unknown {', '.join(sorted(BROKEN - BREAKS.keys()))}"
                     f" (known: {', '.join(BREAKS)})")
UNUSED_LINE = 26
"""A line of the simulated header that the pin map leaves unconnected (the ``gpio-line`` break)."""


class QuickRig:
    """The booted unit with every rig attached; ``use`` switches the appliance to one of three setups."""

    def __init__(self, unit: ProbedUnit, workdir: Path, gpio: GpioRig | None, firmware: Firmware | None) -> None:
        self.unit, self.guest, self.workdir = unit, unit.guest, workdir
        self.gpio, self.firmware = gpio, firmware
        self.scanner = ScannerRig(unit, workdir / "ttyS2.sock", tty=SCANNER_LINE)
        self.box = SmartBoxRig(unit, firmware) if firmware is not None else None
        self.voters = iter(demo_pins(50)[5:])
        self.camera: CameraRig | None = None
        self.current = ""

    def use(self, setup: str) -> None:
        """Restart the appliance as ``setup`` (``gpio+keyboard``, ``smartbox+serial``, ``camera``) unless it runs so."""
        if setup == self.current:
            return
        self.current = ""  # until the switch is done
        if setup == "gpio+keyboard":
            parts: dict[str, tuple[str, dict[str, str | int]]] = {
                "scanner": ("keyboard", {"device": SCANNER_NAME, "layout": "us"})}
            tables: dict[str, dict[str, str | int | float]] = {}
            service: dict[str, str] = {}
            if self.gpio is not None:
                box, tables, service = gpio_box(self.gpio)
                if "gpio-chip" in BROKEN:
                    box = (box[0], {**box[1], "chip": "no-such-chip"})
                parts["ballot_box"] = box
            restart_appliance_with_parts(self.guest, parts, tables=tables, service=service, timeout=SERVICE_STARTS)
            if self.gpio is not None:
                self.gpio.wait_active()
            self.scanner.wait_connected("keyboard")
        elif setup == "smartbox+serial":
            parts = {"scanner": ("serial", {"port": SCANNER_LINE,
                                            "baudrate": 115200 if "serial-speed" in BROKEN else SCANNER_BAUD})}
            if self.box is not None:
                parts["ballot_box"] = ("smartbox", {"port": BOX_LINE,
                                                    "baudrate": 9600 if "smartbox-speed" in BROKEN else BOX_BAUD})
            restart_appliance_with_parts(self.guest, parts, timeout=SERVICE_STARTS)
            if self.box is not None:
                wait_for(self.box.present, f"the appliance hearing the smart box on {BOX_LINE}", SERVICE_STARTS)
            self.scanner.wait_connected("serial")
        elif setup == "camera":
            self.camera = self.camera or self._vivid()
            restart_appliance_with(self.guest, "scanner", "camera", {
                "device": self.camera.nodes["capture"], "width": WIDTH, "height": HEIGHT, "fps": 15},
                timeout=CAMERA_STARTS)
            wait_for(lambda: self.scanner.scanner_state() == "connected", "the camera opened by the appliance",
                     CAMERA_STARTS)
        else:
            raise ValueError(setup)
        self.current = setup

    def _vivid(self) -> CameraRig:
        """vivid loaded with its output looped into its capture at the camera's size (``v4l2_guest setup``)."""
        self.guest.push(HELPER, f"{TEST_DIR}/v4l2_guest.py")
        if "vivid" not in BROKEN:
            self.guest.check(f"modprobe {VIVID}", timeout=120)
        nodes = json.loads(self.guest.check(f"{PYTHON} {TEST_DIR}/v4l2_guest.py setup {WIDTH} {HEIGHT}", timeout=180))
        return CameraRig(self.unit, nodes, self.workdir)

    def manual(self) -> dict[str, Any]:
        """The clerk identifies the next voter by number (whatever scanner runs); the decision."""
        decision = dict(self.guest.control({"cmd": "manual", "number": next(self.voters)})["decision"])
        assert decision["outcome"] == "admitted", decision
        return decision


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickRig]:
    workdir = tmp_path_factory.mktemp("kernel-quick")
    box_line, scanner_line = workdir / "ttyS1.sock", workdir / "ttyS2.sock"
    with booted_unit(workdir, extra=uarts(box_line, scanner_line), ready=False, kiosk=False) as unit:
        try:
            module: Path | None = gpio_sim_for_image()
        except pytest.skip.Exception:
            module = None  # the gpio checks skip (their reason is in gpio_sim_for_image's)
        firmware = None
        if shutil.which("node") and (MICROPYTHON / "micropython.mjs").is_file():
            firmware = Firmware(workdir, box_line)
        unit.vm.wait_until_ready()
        try:
            gpio = load_gpio_sim(unit.guest, module) if module is not None else None
            if firmware is not None:
                firmware.power_on()
            made = QuickRig(unit, workdir, gpio, firmware)
            made.scanner.install()
            made.scanner.plug()
            unit.guest.control({"cmd": "open"})
            yield made
        finally:
            if firmware is not None:
                firmware.power_off()


def test_a_document_typed_on_a_grabbed_uinput_keyboard_admits_the_voter(rig: QuickRig) -> None:
    rig.use("gpio+keyboard")
    scanner = rig.scanner
    before, spy = scanner.identified_on_screen(), scanner.spy()
    document, typed = next(rig.voters) + "\n", []  # a personal number's barcode, then Enter
    layout = "fr" if "keyboard-layout" in BROKEN else "us"
    decision = scanner.read_document(lambda: typed.append(scanner.type(document, layout)))
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"
    assert typed[-1]["keys"] == len(document)
    assert scanner.identified_on_screen() == before + 1
    assert scanner.spied(spy) == {"grab": "Device or resource busy", "keys": 0}


def gpio(rig: QuickRig) -> GpioRig:
    """The gpio box running, its slot locked: a voter the keyboard check admitted (the slot opened for
    them) drops their ballot first."""
    if rig.gpio is None:
        gpio_sim_for_image()  # skips, saying why
    lines = rig.gpio
    assert lines is not None
    rig.use("gpio+keyboard")
    if lines.lines(LOCK)[LOCK] == 1:
        ballots = lines.ballots()
        lines.sim("pulse", BEAM, 1, DROP)
        lines.until(LOCK, 0)
        wait_for(lambda: lines.ballots() == ballots + 1, "the admitted voter's drop counted", STATUS_FOLLOWS)
    return lines


def test_one_identification_opens_the_gpio_lock_line_for_exactly_one_drop(rig: QuickRig) -> None:
    lines = gpio(rig)
    assert lines.lines(LOCK, GREEN) == {LOCK: 0, GREEN: 0}
    before, second = lines.ballots(), lines.alarms("second_ballot")
    rig.manual()
    lines.until(LOCK, 1)
    lines.sim("pulse", UNUSED_LINE if "gpio-line" in BROKEN else BEAM, 1, DROP)
    lines.until(LOCK, 0)
    wait_for(lambda: lines.ballots() == before + 1, "the drop counted as one ballot", STATUS_FOLLOWS)
    lines.second_drop_alarms(second)


def test_the_gpio_lock_line_ends_locked_when_the_appliance_is_killed(rig: QuickRig) -> None:
    lines = gpio(rig)
    rig.manual()
    lines.until(LOCK, 1)
    rig.current = ""  # killed: systemd restarts it, and the next check switches it anew
    lines.ended_locked_after("kill --signal=KILL")


def test_a_payload_split_across_writes_on_a_uart_admits_the_voter(rig: QuickRig) -> None:
    rig.use("smartbox+serial")
    scanner = rig.scanner
    assert scanner.tty_speed() == SCANNER_BAUD
    before = scanner.identified_on_screen()
    payload = (next(rig.voters) + "\r\n").encode()
    line = scanner.serial_connect()
    try:
        def in_pieces() -> None:  # a reader's USB or UART chunks, back to back
            for i in range(0, len(payload), PIECE):
                line.sendall(payload[i:i + PIECE])
        decision = scanner.read_document(in_pieces)
    finally:
        line.close()
    assert decision["outcome"] == "admitted", decision
    assert scanner.identified_on_screen() == before + 1


def test_one_identification_opens_the_smart_box_on_a_uart_for_exactly_one_drop(rig: QuickRig) -> None:
    if rig.box is None:
        pytest.skip("MicroPython (WebAssembly) or node missing: run tests/box/install_micropython.sh")
    rig.use("smartbox+serial")
    box = rig.box
    assert rig.guest.check(f"stty -F {BOX_LINE} speed").strip() == str(BOX_BAUD)
    before, drops = box.screen(), box.box()["unit_drops"]
    rig.manual()
    box.lock_is(1)
    box.drop()
    box.lock_is(0)
    wait_for(lambda: box.screen()["ballots"] == before["ballots"] + 1, "the drop counted as one ballot", FOLLOWS)
    assert box.box()["unit_drops"] == drops + 1 and box.box()["crc_errors"] == 0


def test_a_personal_number_shown_to_a_v4l2_camera_admits_the_voter(rig: QuickRig) -> None:
    rig.use("camera")
    assert rig.camera is not None
    rig.camera.admits("pin", place(render("code128", next(rig.voters), 3), HEIGHT, WIDTH))


def test_the_touch_poller_makes_the_panels_controller_a_touchscreen(rig: QuickRig) -> None:
    guest = rig.guest
    assert "no touch panel in the device tree" in touch_rig.said(guest)
    assert guest.run("systemctl is-failed pollbox-touch.service")[1].strip() == "inactive"

    stub = 0x39 if "touch-address" in BROKEN else touch_rig.ADDRESS
    bus = touch_rig.poll_the_stub(guest, FOLLOWS, address=stub)
    tapped = touch_rig.tap(guest, bus, 500, 300, FOLLOWS, address=stub)
    assert tapped["direct"], tapped
    assert tapped["down"] == [500, 300] and tapped["up"], tapped
    udev = guest.check(f"udevadm info --query=property --name={tapped['node']}").splitlines()
    assert "ID_INPUT_TOUCHSCREEN=1" in udev, udev


def test_the_touch_poller_gives_up_when_it_cannot_start(rig: QuickRig) -> None:
    """A wrong command line (exit status 2) is not started again; a poller that cannot open its bus is
    started ``START_LIMIT_BURST`` times in 5 minutes and then left failed, not restarted every 5 s all day."""
    guest = rig.guest
    lifted = ("[Service]\\nRestartPreventExitStatus=\\n" if "touch-exit-status" in BROKEN else "") + (
        "[Unit]\\nStartLimitIntervalSec=0\\n" if "touch-start-limit" in BROKEN else "")
    try:
        touch_rig.run_with(guest, "--address 0x01", lifted)
        state = wait_for(lambda: (s := touch_rig.unit_state(guest))["ActiveState"] == "failed" and s or None,
                         "the poller with a wrong address failed", FOLLOWS)
        assert (state["ExecMainStatus"], state["NRestarts"]) == ("2", "0"), state
        assert "0x01" in touch_rig.said(guest)

        missing = "/dev/i2c-99 is missing: is the i2c-dev module loaded?"
        before = touch_rig.said(guest).count(missing)
        touch_rig.run_with(guest, "--bus 99", lifted)
        wait_for(lambda: touch_rig.unit_state(guest)["ActiveState"] == "failed",
                 "the poller with no bus given up", 300 + FOLLOWS)
        journal = touch_rig.said(guest)
        assert "Start request repeated too quickly" in journal
        assert journal.count(missing) - before == touch_rig.START_LIMIT_BURST
    finally:
        guest.check(f"rm -rf {touch_rig.DROP_IN} && systemctl daemon-reload"
                    " && (systemctl reset-failed pollbox-touch.service || true)")
