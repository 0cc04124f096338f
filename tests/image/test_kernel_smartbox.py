"""The smart box over a real UART: the firmware on the host, the appliance's backend on the guest's ``/dev/ttyS1``.

A test copy of the image boots with a second serial port (QEMU's ``-serial`` on a Unix socket: the
guest's kernel sees a 16550 UART, ``/dev/ttyS1``). The image's own ``pollbox.service`` is switched to
``ballot_box = "smartbox"`` on that port. On the host, ``smartbox_host.mjs`` runs the box's firmware
(``device/firmware``: ``Board`` and ``BoxLogic``, unchanged) under the MicroPython interpreter (the
WebAssembly port the firmware tests use; there is no Unix port of MicroPython in Debian), one step a
millisecond as on the Pico, with its UART on QEMU's socket and its counters file kept on the host, so
a restart of the process is a power cycle of the box with its flash intact.

The test drives the box's beam and lid through the firmware's pins and reads the lock pin (GP2) as
the firmware drives it; identifications go through the appliance's control socket (the station is a
demo station with the simulated scanner); admission and ballots are read from outside through the
chair's screen (``/api/status``).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins
from device.firmware import stage

from .guest import GuestError, ProbedUnit, boot_probed_unit, host_can_boot, restart_appliance_with
from .vm import REPO, second_uart, wait_for

pytestmark = pytest.mark.image

HOST = Path(__file__).with_name("smartbox_host.mjs")
MICROPYTHON = Path(os.environ.get("POLLBOX_MPY_DIR", REPO / "build" / "mpy")) / \
    "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
LOCK_PIN = 2
"""The firmware's lock output (GP2; high = open)."""
SERVICE_STARTS = 240.0
"""How long pollbox.service may take to restart with the smart box in software emulation."""
FOLLOWS = 60.0
"""How long the box or the appliance may take to react (an emulated, shared CPU; the 5 s heartbeat timeout)."""


class Firmware:
    """The box's firmware process on the host: its pins, its cable, its power."""

    def __init__(self, workdir: Path, line: Path) -> None:
        self.workdir, self.line = workdir, line
        self.firmware = workdir / "firmware"
        stage(self.firmware, include_main=False)
        self.counters = workdir / "counters.txt"
        self.events: queue.Queue[str] = queue.Queue()
        self.lock = 0
        self.process: subprocess.Popen[str] | None = None

    def power_on(self) -> None:
        with (self.workdir / "firmware.log").open("a") as log:
            self.process = subprocess.Popen(
                ["node", str(HOST), str(MICROPYTHON), str(self.firmware), str(self.line), str(self.counters)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        self.until("line up", FOLLOWS)

    def power_off(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
        self.process = None
        self.lock = 0  # a box without power holds its lock shut

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            if line.startswith(f"out {LOCK_PIN} "):
                self.lock = int(line.split()[2])
            self.events.put(line)

    def send(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def until(self, event: str, seconds: float) -> None:
        """Wait for the firmware process to report ``event`` (earlier reports are passed over)."""
        def seen() -> bool:
            try:
                while True:
                    if self.events.get_nowait() == event:
                        return True
            except queue.Empty:
                return False
        wait_for(seen, f"the box's firmware reporting {event!r}", seconds)

    def lock_is(self, level: int, seconds: float = FOLLOWS) -> None:
        wait_for(lambda: self.lock == level, f"the box's lock pin at {level}", seconds)

class SmartBoxRig:
    def __init__(self, unit: ProbedUnit, firmware: Firmware) -> None:
        self.unit, self.guest, self.firmware = unit, unit.guest, firmware
        self.voters = iter(demo_pins(50)[5:])

    def status(self) -> dict[str, Any]:
        return self.guest.control({"cmd": "status"})

    def box(self) -> dict[str, Any]:
        return dict(self.status()["box"])

    def screen(self) -> dict[str, Any]:
        """The counters as the chair's screen shows them to anyone outside the unit."""
        return dict(wait_for(self.unit.vm.status, "the chair's screen answering", FOLLOWS)["counters"])

    def alarms(self, kind: str) -> int:
        return sum(1 for a in self.status()["alarms"] if a["kind"] == kind)

    def present(self) -> bool:
        try:
            return bool(self.box().get("present"))
        except GuestError:
            return False

    def lock_is(self, level: int) -> None:
        """The firmware's lock pin at ``level``; else the failure shows what the appliance saw."""
        try:
            self.firmware.lock_is(level)
        except AssertionError as exc:
            status = self.status()
            said = self.guest.check("journalctl -u pollbox.service -n 30 --no-pager -o cat")
            raise AssertionError(f"{exc}\nbox: {status['box']}\ninterlock: {status['interlock']}\n"
                                 f"alarms: {[a['kind'] for a in status['alarms']]}\nlog:\n{said}") from exc

    def drop(self) -> None:
        """A ballot through the slot: the beam blocked until the firmware has counted it (it locks the
        slot on the debounced edge), then clear."""
        self.firmware.send("beam 1")
        self.lock_is(0)
        self.firmware.send("beam 0")

    def identify(self) -> None:
        decision = self.guest.control({"cmd": "scan", "text": next(self.voters)})["decision"]
        assert decision["outcome"] == "admitted", decision


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmartBoxRig]:
    reason = host_can_boot() or ("" if shutil.which("node") and (MICROPYTHON / "micropython.mjs").is_file() else
                                 "MicroPython (WebAssembly) or node missing: run tests/box/install_micropython.sh")
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("smartbox")
    line = workdir / "ttyS1.sock"
    unit = boot_probed_unit(workdir, extra=second_uart(line))
    firmware = Firmware(workdir, line)
    try:
        unit.vm.wait_until_ready()
        firmware.power_on()
        restart_appliance_with(unit.guest, "ballot_box", "smartbox", {"port": "/dev/ttyS1", "baudrate": 115200},
                               timeout=SERVICE_STARTS)
        made = SmartBoxRig(unit, firmware)
        wait_for(made.present, "the appliance hearing the smart box on /dev/ttyS1", SERVICE_STARTS)
        unit.guest.control({"cmd": "open"})
        yield made
    finally:
        firmware.power_off()
        unit.stop()


def test_the_appliance_sets_the_uart_to_the_box_speed(rig: SmartBoxRig) -> None:
    assert rig.guest.check("stty -F /dev/ttyS1 speed").strip() == "115200"
    assert rig.box()["crc_errors"] == 0


def test_one_identification_opens_the_box_for_exactly_one_drop(rig: SmartBoxRig) -> None:
    before, drops = rig.screen(), rig.box()["unit_drops"]
    rig.identify()
    rig.lock_is(1)
    rig.drop()
    rig.lock_is(0)
    wait_for(lambda: rig.screen()["ballots"] == before["ballots"] + 1, "the drop counted as one ballot", FOLLOWS)
    assert rig.screen()["identified"] == before["identified"] + 1
    assert rig.box()["unit_drops"] == drops + 1
