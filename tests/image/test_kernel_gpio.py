"""The gpio ballot box through the kernel's GPIO character device, in the booted image.

A test copy of the image boots; the kernel's ``gpio-sim`` (built for the image's kernel by
``kernel_modules``, Debian leaves it out) gives a 28-line chip whose line offsets are BCM numbers,
as on the Pi. The image's own ``pollbox.service`` is switched to ``ballot_box = "gpio"`` on
``rpi-lgpio`` (the ``RPi.GPIO`` module over ``/dev/gpiochipN``, installed in the image's venv) and
restarted by systemd. The tests drive the drop sensor (BCM 27), lid (22) and unit-present (5) lines
from the kernel side through gpio-sim's ``pull`` attributes (each change a real edge on the line
the appliance holds) and read the lock (17), lamps (23, 24), buzzer (25) and keep-alive (12) lines
at line level through gpio-sim's ``value`` attributes.

Two things are set for the test only: ``RPI_LGPIO_REVISION`` (rpi-lgpio refuses to run where the
device tree names no Pi; a Pi 4B revision is given) and QEMU's ``-cpu max`` (lgpio's wheel is built
for x86-64-v2; QEMU's default software CPU is the older x86-64 baseline).

How the lock ends locked when the appliance dies: the kernel releases a dead process's line
requests; gpio-sim then lets the line follow its pull, a pull-down here as on our wiring (the lock
driver's gate has a pull-down, and BCM 17 is pulled low at power-on); then systemd runs
``ExecStopPost=pollbox box lock``, which drives the lock line low again; and the keep-alive line
stops pulsing. On a Pi the SoC keeps a released output's last level, so there it is ``ExecStopPost``
(and the keep-alive circuit's own timeout) that relocks: ``test_the_lock_line_ends_locked...``
checks the line, the keep-alive and that ``ExecStopPost`` said "slot locked" after the process ended.
In the guest ``TimeoutStopSec`` is raised (``STOP_POST``): under emulation ``box lock`` takes ~21 s,
longer than the image's 20 s, and systemd would cut it short (it had driven the line by then).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins

from .guest import Guest, GuestError, ProbedUnit, boot_probed_unit, host_can_boot
from .kernel_modules import NoModule, gpio_sim_module
from .vm import build_image, wait_for

pytestmark = pytest.mark.image

GPIOSIM = Path(__file__).with_name("gpiosim_guest.py")
TEST_DIR = "/run/pollbox-test"
STATION = "/var/lib/pollbox/station"
PI4B_REVISION = "c03114"
"""A Raspberry Pi 4 Model B revision code, for rpi-lgpio's board check."""
LOCK, BEAM, LID, GREEN, RED, BUZZER, PRESENT, KEEPALIVE = 17, 27, 22, 23, 24, 25, 5, 12
"""The default pin map (device.hardware.boxes.pins.DEFAULT_PINS), BCM numbers."""
LINE_REACTS = 5.0
"""How long an output line may take to follow what the appliance decided (an emulated, shared CPU)."""
SERVICE_STARTS = 180.0
"""How long pollbox.service may take to (re)start in software emulation."""
STATUS_FOLLOWS = 30.0
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
"""How long the journal's counters may take to show what happened on the lines."""


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

    def identify(self) -> None:
        decision = self.guest.control({"cmd": "scan", "text": next(self.voters)})["decision"]
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


def switch_to_gpio(guest: Guest, module: Path) -> GpioRig:
    guest.check(f"mkdir -p {TEST_DIR}")
    guest.push(module, f"{TEST_DIR}/gpio-sim.ko")
    guest.push(GPIOSIM, f"{TEST_DIR}/gpiosim.py")
    chip = json.loads(guest.check(f"python3 {TEST_DIR}/gpiosim.py setup {TEST_DIR}/gpio-sim.ko"))
    rig = GpioRig(guest, int(chip["number"]))
    guest.check(f"test -c /dev/{chip['chip']} && stat -c %G:%a /dev/{chip['chip']} | grep -qx pollbox:660")
    config = f"{STATION}/station.toml"
    guest.check(f"sed -i 's/^ballot_box = \"sim\"$/ballot_box = \"gpio\"/' {config} && grep -q 'ballot_box = \"gpio\"' {config}"
                f" && printf '\\n[hardware.gpio]\\nlibrary = \"rpi-lgpio\"\\nchip = {rig.chip}\\n"
                f"\\n[delays]\\ndebounce = {DEBOUNCE}\\njam_after = {JAM_AFTER}\\ndouble_drop_window = {SECOND_BALLOT_WINDOW}\\n'"
                f" >> {config}")
    guest.check("mkdir -p /run/systemd/system/pollbox.service.d && printf '[Service]\\nEnvironment=RPI_LGPIO_REVISION="
                f"{PI4B_REVISION}\\nTimeoutStopSec={STOP_POST}\\n' > /run/systemd/system/pollbox.service.d/test-gpio.conf"
                " && systemctl daemon-reload")
    rig.restart()
    return rig


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    probed = boot_probed_unit(tmp_path_factory.mktemp("gpio"), extra=["-cpu", "max"])
    try:
        yield probed
    finally:
        probed.stop()


@pytest.fixture(scope="module")
def rig(unit: ProbedUnit) -> GpioRig:
    try:
        module = gpio_sim_module(build_image("amd64").with_suffix(".manifest"))  # the image is cached by now
    except NoModule as exc:
        pytest.skip(f"no gpio-sim module for the image's kernel: {exc}")
    unit.vm.wait_until_ready()
    made = switch_to_gpio(unit.guest, module)
    made.guest.control({"cmd": "open"})
    return made


def test_one_identification_opens_the_lock_line_for_exactly_one_drop(rig: GpioRig) -> None:
    assert rig.lines(LOCK, GREEN) == {LOCK: 0, GREEN: 0}
    before, second = rig.ballots(), rig.alarms("second_ballot")
    rig.identify()
    rig.until(LOCK, 1)
    assert rig.lines(GREEN)[GREEN] == 1
    assert len(rig.sim("watch", KEEPALIVE, 0.2)["changes"]) > 2, "no keep-alive pulses while the slot is open"
    rig.sim("pulse", BEAM, 1, DROP)
    rig.until(LOCK, 0)
    assert rig.lines(GREEN)[GREEN] == 0
    wait_for(lambda: rig.ballots() == before + 1, "the drop counted as one ballot", STATUS_FOLLOWS)
    assert len(rig.sim("watch", KEEPALIVE, 0.2)["changes"]) == 1, "keep-alive pulses with the slot locked"
    rig.sim("pulse", BEAM, 1, DROP)  # a second ballot in the same window: the slot stayed locked
    wait_for(lambda: rig.alarms("second_ballot") == second + 1, "the second drop raised a second-ballot alarm",
             STATUS_FOLLOWS)
    assert rig.lines(LOCK)[LOCK] == 0


def test_pulses_shorter_than_the_debounce_are_not_drops(rig: GpioRig) -> None:
    before, drops = rig.ballots(), rig.status()["box"]["drops"]
    rig.identify()
    rig.until(LOCK, 1)
    widths = rig.sim("glitch", BEAM, 1, 20)["widths"]
    assert max(widths) < DEBOUNCE / 2, f"the glitches were not well shorter than the debounce: {widths}"
    assert rig.sim("until", LOCK, 0, 2 * DEBOUNCE)["after"] is None, f"a glitch locked the slot: {rig.status()['box']}"
    assert rig.status()["box"]["drops"] == drops, "a glitch counted as a drop"
    rig.sim("glitch", BEAM, 1, 5)  # contact bounce, then the ballot really passes
    rig.sim("pulse", BEAM, 1, DROP)
    rig.until(LOCK, 0)
    wait_for(lambda: rig.ballots() == before + 1, "the bounced drop counted once", STATUS_FOLLOWS)


def test_the_lid_and_a_jam_sound_the_buzzer_and_light_the_red_lamp(rig: GpioRig) -> None:
    rig.sim("pull", LID, "up")
    rig.until(BUZZER, 1)
    rig.until(RED, 1)
    rig.sim("pull", LID, "down")
    rig.until(BUZZER, 0)
    rig.sim("pull", BEAM, "up")  # held: a ballot stuck in the slot, longer than jam_after
    rig.until(BUZZER, 1, seconds=JAM_AFTER + LINE_REACTS)
    rig.sim("pull", BEAM, "down")
    rig.until(BUZZER, 0)
    rig.until(RED, 0)


@pytest.mark.parametrize("how", ["kill --signal=KILL", "kill --signal=ABRT", "stop"])
def test_the_lock_line_ends_locked_when_the_appliance_dies_or_stops(rig: GpioRig, how: str) -> None:
    """SIGKILL, a crash (SIGABRT, as a fault in a native library ends a process) and systemd's stop."""
    rig.identify()
    rig.until(LOCK, 1)
    mark = rig.guest.check("date +%s").strip()
    rig.guest.check(f"systemctl {how} pollbox.service", timeout=SERVICE_STARTS)
    rig.until(LOCK, 0)
    assert len(rig.sim("watch", KEEPALIVE, 0.3)["changes"]) == 1, "the keep-alive line still pulses"

    def stop_post_said() -> list[str]:
        said = rig.guest.check(f"journalctl -u pollbox.service --since @{int(mark) - 1} --no-pager -o cat")
        lines = [line for line in said.splitlines() if "Started pollbox.service" not in line]
        ended = [i for i, line in enumerate(lines) if "Main process exited" in line or "Stopping pollbox" in line]
        return [line for line in lines[ended[0]:] if "slot locked" in line or "timed out" in line] if ended else []
    said = wait_for(stop_post_said, "ExecStopPost (pollbox box lock) said the slot is locked", SERVICE_STARTS)
    assert said[0] == "slot locked", said
    assert rig.lines(LOCK)[LOCK] == 0
    if how == "stop":
        rig.restart("start")
    else:  # Restart=on-failure brings it back
        rig.wait_active()


def test_a_pin_map_conflict_and_a_missing_or_busy_chip_are_clear_errors_at_start(rig: GpioRig) -> None:
    config = f"{TEST_DIR}/station/station.toml"
    rig.guest.check(f"rm -rf {TEST_DIR}/station && cp -a {STATION} {TEST_DIR}/station")

    def box_lock(edit: str) -> tuple[int, str]:
        rig.guest.check(f"cp {STATION}/station.toml {config} && {edit}")
        return rig.guest.run(f"cd / && RPI_LGPIO_REVISION={PI4B_REVISION} /opt/pollbox/bin/pollbox --config {config} "
                             "box lock 2>&1")

    rc, out = box_lock(f"printf '\\n[hardware.pins]\\nlock = {{ bcm = 17 }}\\nbeam = {{ bcm = 17 }}\\nlid = {{ bcm = 22 }}\\n"
                       f"green = {{ bcm = 23 }}\\nred = {{ bcm = 24 }}\\nbuzzer = {{ bcm = 25 }}\\n' >> {config}")
    assert rc == 2 and "hardware.pins.beam.bcm: GPIO 17 is already used by lock" in out, out
    rc, out = box_lock(f"sed -i 's/^chip = .*/chip = 9/' {config}")
    assert rc == 2 and "cannot drive the slot lock on BCM 17 (is the GPIO chip there and free?)" in out, out
    rc, out = box_lock("true")  # the running appliance holds the lines
    assert rc == 2 and "cannot drive the slot lock on BCM 17" in out and "busy" in out.lower(), out
    assert "Traceback" not in out
