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

from collections.abc import Iterator

import pytest

from .gpio_rig import (
    BEAM,
    BUZZER,
    DEBOUNCE,
    DROP,
    GREEN,
    JAM_AFTER,
    KEEPALIVE,
    LID,
    LINE_REACTS,
    LOCK,
    PI4B_REVISION,
    RED,
    STATION,
    STATUS_FOLLOWS,
    TEST_DIR,
    GpioRig,
    gpio_sim_for_image,
    switch_to_gpio,
)
from .guest import ProbedUnit, booted_unit
from .vm import IMAGE_TEST_TIMEOUT, wait_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]
"""The long series; ``test_kernel_quick`` has the one check of this box that ``make test`` runs."""
__all__ = ["TEST_DIR", "switch_to_gpio"]  # the kernel GPIO benchmark's rig (bench/bench_kernel.py)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    with booted_unit(tmp_path_factory.mktemp("gpio"), ready=False) as probed:
        yield probed


@pytest.fixture(scope="module")
def rig(unit: ProbedUnit) -> GpioRig:
    module = gpio_sim_for_image()
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
    rig.second_drop_alarms(second)


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
    rig.ended_locked_after(how)
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
