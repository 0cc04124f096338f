"""The smart box over a real UART: the firmware on the host, the appliance's backend on the guest's ``/dev/ttyS1``.

A test copy of the image boots with a second serial port (QEMU's ``-serial`` on a Unix socket: the
guest's kernel sees a 16550 UART, ``/dev/ttyS1``). The image's own ``pollbox.service`` is switched to
``ballot_box = "smartbox"`` on that port. On the host, ``smartbox_host.mjs`` runs the box's firmware
(``device/firmware``: ``Board`` and ``BoxLogic``, unchanged) under the MicroPython interpreter (the
WebAssembly port the firmware tests use; there is no Unix port of MicroPython in Debian), one step a
millisecond as on the Pico, with its UART on the line (``Cable``) and its counters file kept on the host, so
a restart of the process is a power cycle of the box with its flash intact.

The test drives the box's beam and lid through the firmware's pins and reads the lock pin (GP2) as
the firmware drives it; identifications go through the appliance's control socket (the station is a
demo station with the simulated scanner); admission and ballots are read from outside through the
chair's screen (``/api/status``).

The cable is ``Cable``, a relay in the test: it holds QEMU's end of the line for the whole boot and lets
the firmware process connect to it. A box unplugged (``unplug``, ``cut``: half a frame, then its end
closed) or without power (its process killed) is a relay with nothing behind it: the bytes the guest
sends go nowhere and nothing comes back, as on a Pi's 3-wire UART (TX, RX, ground; no line says a far
end is there). QEMU's own socket is never closed: a socket chardev whose client goes away and comes
back is not a pulled cable but a QEMU artefact (after a reconnection the guest's UART stopped sending,
see docs/ballot-box.md).
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins
from device.firmware import stage

from .guest import GuestError, ProbedUnit, boot_probed_unit, host_can_boot, restart_appliance_with
from .vm import IMAGE_TEST_TIMEOUT, REPO, second_uart, wait_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

HOST = Path(__file__).with_name("smartbox_host.mjs")
MICROPYTHON = Path(os.environ.get("POLLBOX_MPY_DIR", REPO / "build" / "mpy")) / \
    "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
LOCK_PIN = 2
"""The firmware's lock output (GP2; high = open)."""
SERVICE_STARTS = 240.0
"""How long pollbox.service may take to restart with the smart box in software emulation."""
FOLLOWS = 60.0
"""How long the box or the appliance may take to react (an emulated, shared CPU; the 5 s heartbeat timeout)."""


class Cable:
    """The serial cable between the guest's ``/dev/ttyS1`` and the box: a relay on the host that holds QEMU's
    end of the line for the whole boot and relays bytes to whichever firmware process is connected at
    ``box_end``. With none connected (unplugged, or the box without power) the guest's bytes are dropped,
    counted in ``dropped``."""

    def __init__(self, line: Path, box_end: Path) -> None:
        self.box_end = box_end
        self.dropped = 0
        self._qemu = socket.socket(socket.AF_UNIX)
        self._qemu.connect(str(line))
        self._listen = socket.socket(socket.AF_UNIX)
        self._listen.bind(str(box_end))
        self._listen.listen(1)
        self._box: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, name="cable", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._qemu, selectors.EVENT_READ, "qemu")
            sel.register(self._listen, selectors.EVENT_READ, "listen")
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    if key.data == "listen":
                        conn, _ = self._listen.accept()
                        if self._box is not None:
                            sel.unregister(self._box)
                            self._box.close()
                        self._box = conn
                        sel.register(conn, selectors.EVENT_READ, "box")
                    elif key.data == "qemu":
                        data = self._qemu.recv(4096)
                        if not data:
                            return  # QEMU stopped
                        if self._box is None:
                            self.dropped += len(data)
                        else:
                            try:
                                self._box.sendall(data)
                            except OSError:
                                self.dropped += len(data)
                    else:
                        try:
                            data = self._box.recv(4096) if self._box is not None else b""
                        except OSError:
                            data = b""
                        if data:
                            self._qemu.sendall(data)
                        elif self._box is not None:
                            sel.unregister(self._box)
                            self._box.close()
                            self._box = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in (self._qemu, self._listen, self._box):
            if sock is not None:
                sock.close()


class Firmware:
    """The box's firmware process on the host: its pins, its cable (``line``: the socket it connects to,
    a ``Cable``'s ``box_end``), its power."""

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

    def flash(self) -> tuple[int, int]:
        """(boot, drops) as the box's flash (its counters file on the host) holds them; (0, 0) if none yet."""
        parts = self.counters.read_text().split() if self.counters.is_file() else []
        return (int(parts[1]), int(parts[2])) if len(parts) == 4 else (0, 0)

JOURNAL_READ = """import json, sqlite3, sys
db = sqlite3.connect("/var/lib/pollbox/station/data/journal.db")
if sys.argv[1] == "end":
    print(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
else:
    print(json.dumps([k for (k,) in db.execute("SELECT kind FROM events WHERE seq > ? ORDER BY seq", (int(sys.argv[1]),))]))
"""
"""Reads the appliance's journal (``events``: seq, kind, ...) in the guest, as root, with the guest's python3."""


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

    def journal_end(self) -> int:
        """The sequence number of the journal's last event."""
        return int(self.guest.check(f"python3 -c {shlex.quote(JOURNAL_READ)} end").strip())

    def journaled_since(self, seq: int) -> list[str]:
        """The kinds of the events journaled after ``seq``, in order (read from the journal's database)."""
        return list(json.loads(self.guest.check(f"python3 -c {shlex.quote(JOURNAL_READ)} {seq}")))

    def screen_status(self) -> dict[str, Any]:
        """The whole status as the chair's screen shows it to anyone outside the unit."""
        return dict(wait_for(self.unit.vm.status, "the chair's screen answering", FOLLOWS))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmartBoxRig]:
    reason = host_can_boot() or ("" if shutil.which("node") and (MICROPYTHON / "micropython.mjs").is_file() else
                                 "MicroPython (WebAssembly) or node missing: run tests/box/install_micropython.sh")
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("smartbox")
    line = workdir / "ttyS1.sock"
    unit = boot_probed_unit(workdir, extra=second_uart(line))
    cable = Cable(line, workdir / "box.sock")
    firmware = Firmware(workdir, cable.box_end)
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
        cable.close()
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


def _no_drop_without_token(rig: SmartBoxRig, alarms_before: list[str]) -> None:
    alarms = [a["kind"] for a in rig.status()["alarms"]]
    assert [k for k in alarms if k not in alarms_before and k != "box_unit_lost"] == [], alarms


def test_a_cable_pulled_mid_frame_keeps_the_slot_locked_and_a_voter_admitted_meanwhile_drops_once(
        rig: SmartBoxRig) -> None:
    before, drops, seq = rig.screen(), rig.box()["unit_drops"], rig.journal_end()
    alarms_before = [a["kind"] for a in rig.status()["alarms"]]
    lost_before = alarms_before.count("box_unit_lost")
    rig.firmware.send("cut")  # the next frame the box sends is half on the wire when the cable comes out
    rig.firmware.until("line down", FOLLOWS)
    def lost_on_screen() -> dict[str, Any] | None:
        status = rig.screen_status()
        return None if status["box"]["present"] else status
    shown = wait_for(lost_on_screen, "the chair's screen showing the box lost", FOLLOWS)
    assert [a["kind"] for a in shown["alarms"]].count("box_unit_lost") == lost_before + 1, shown["alarms"]
    rig.lock_is(0)  # the firmware locked itself when the station's heartbeats stopped
    rig.identify()  # a voter admitted while the box cannot be reached
    interlock = rig.status()["interlock"]  # the voter's token is open, the slot held locked
    assert interlock["tokens"] == 1 and not interlock["slot_open"] and rig.firmware.lock == 0, interlock
    rig.firmware.send("plug")
    rig.firmware.until("line up", FOLLOWS)
    wait_for(rig.present, "the appliance hearing the box again", FOLLOWS)
    rig.lock_is(1)  # the slot reopened for the voter admitted meanwhile
    rig.drop()
    rig.lock_is(0)
    wait_for(lambda: rig.screen()["ballots"] == before["ballots"] + 1, "the drop counted as one ballot", FOLLOWS)
    kinds = rig.journaled_since(seq)
    assert kinds.count("arm_resumed") == 1, kinds
    after = rig.screen()
    assert (after["ballots"], after["identified"]) == (before["ballots"] + 1, before["identified"] + 1), after
    assert rig.box()["unit_drops"] == drops + 1
    _no_drop_without_token(rig, alarms_before)


def test_the_box_power_cycled_after_a_drop_resynchronises_and_counts_every_drop_once(rig: SmartBoxRig) -> None:
    before, box = rig.screen(), rig.box()
    alarms_before = [a["kind"] for a in rig.status()["alarms"]]
    rig.identify()
    rig.lock_is(1)
    rig.drop()  # the box counted the drop and locked
    def flashed() -> tuple[int, int] | None:
        boot, drops = rig.firmware.flash()
        return (boot, drops) if drops == box["unit_drops"] + 1 else None
    saved_boot, saved = wait_for(flashed, "the drop in the box's flash", FOLLOWS)
    wait_for(lambda: rig.screen()["ballots"] == before["ballots"] + 1, "the drop counted as one ballot", FOLLOWS)
    rig.firmware.power_off()  # its memory lost, its flash kept
    wait_for(lambda: not rig.present(), "the appliance noticing the box gone", FOLLOWS)
    rig.firmware.power_on()
    wait_for(lambda: rig.present() and rig.box()["unit_boot"] not in (None, box["unit_boot"]),
             "the appliance hearing the box's new boot", FOLLOWS)
    assert rig.firmware.flash()[0] > saved_boot
    assert rig.box()["unit_drops"] == saved
    assert rig.screen()["ballots"] == before["ballots"] + 1  # the drop from before the power cycle, once
    rig.firmware.lock_is(0)  # nobody left to drop: the slot stays locked
    # the box works on after the resynchronisation, and the earlier drop is not counted again
    rig.identify()
    rig.lock_is(1)
    rig.drop()
    rig.lock_is(0)
    wait_for(lambda: rig.screen()["ballots"] == before["ballots"] + 2, "the next drop counted", FOLLOWS)
    after = rig.screen()
    assert (after["ballots"], after["identified"]) == (before["ballots"] + 2, before["identified"] + 2), after
    assert rig.box()["unit_drops"] == saved + 1
    _no_drop_without_token(rig, alarms_before)
