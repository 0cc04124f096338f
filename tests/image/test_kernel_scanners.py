"""The keyboard-mode and the serial scanner through the kernel's input layer and a real UART, in the booted image.

A test copy of the image boots with a second serial port: QEMU's ``-serial`` on a Unix socket, the
guest's ``/dev/ttyS1`` (a 16550 UART as the kernel's ``8250`` driver sees it). The image's own
``pollbox.service`` is switched, by its config and a systemd restart, to each scanner in turn:

- ``scanner = "keyboard"``: ``uinput_guest.py`` plugs a virtual keyboard into the guest's kernel
  (``/dev/uinput``) that types documents as a scanner in keyboard mode does, a key every 2 ms, MRZ
  lines ended by Enter, in the layout it is set to. The appliance finds it by name among the evdev
  devices, grabs it (``EVIOCGRAB``) and reads it; a second reader, as the kiosk's browser would be,
  gets no key and cannot grab. Unplugging (the uinput device destroyed) and plugging it again is a
  read error and a reopen by name.
- ``scanner = "serial"``: the host writes payloads into the socket, split into small writes, with
  garbage before them and a disconnect mid-payload; the appliance reads ``/dev/ttyS1`` with pyserial
  and sets its speed (checked with ``stty`` on the guest's tty). QEMU's UART does not pace received
  bytes by the baud rate, so the speed is checked as the tty's setting, not as timing on a wire.

Admission is checked from outside the unit through the chair's screen (``/api/status``), and the
decision through the control socket. The kiosk's own Chromium is not checked: in the guest it draws
nothing (cage stops at Xwayland, see docs/image.md), so the grab is proven at the evdev level.
"""

from __future__ import annotations

import base64
import json
import shlex
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins
from device.demo_documents import make_td1, make_td3

from .guest import GuestError, ProbedUnit, boot_probed_unit, host_can_boot, restart_appliance_with
from .vm import second_uart, wait_for

pytestmark = pytest.mark.image

UINPUT = Path(__file__).with_name("uinput_guest.py")
TEST_DIR = "/run/pollbox-test"
SCANNER_NAME = "pollbox test scanner"
"""The virtual keyboard's device name; the appliance is configured to find it by (part of) it."""
TYPER = f"{TEST_DIR}/scanner.sock"
PER_KEY_MS = 2.0
"""Milliseconds between key presses: a handheld scanner in keyboard mode types one key every 1-3 ms."""
SERVICE_STARTS = 240.0
"""How long pollbox.service may take to restart with a new scanner in software emulation."""
DECISION_FOLLOWS = 60.0
"""How long a decision may take to show after the last key or byte (an emulated, shared CPU)."""
SPLIT_RETRIES = 2
"""How often a document split into two reads by an emulator stall is sent again (``read_document``)."""
SETTLED_POLLS = 4
"""A decision count unchanged over this many polls (a second) has settled."""


class ScannerRig:
    """The booted unit with its appliance switched to one scanner at a time, seen from the test."""

    def __init__(self, unit: ProbedUnit, serial_socket: Path) -> None:
        self.unit, self.guest, self.serial_socket = unit, unit.guest, serial_socket
        self.voters = iter(demo_pins(50)[5:])
        self.current: tuple[str, ...] = ()
        self.typer_pid = 0
        self.splits = 0
        """Documents read in two pieces because the emulator stalled longer than the burst gap (sent again)."""

    def use(self, scanner: str, **table: str | int) -> None:
        """Restart the appliance with ``scanner`` and its ``[hardware.<scanner>]`` table, unless it runs so."""
        wanted = (scanner, *(f"{k}={v}" for k, v in sorted(table.items())))
        if wanted == self.current:
            return
        restart_appliance_with(self.guest, "scanner", scanner, table, timeout=SERVICE_STARTS)
        self.current = wanted
        wait_for(lambda: self.scanner_state() == "connected", f"the {scanner} scanner connected", SERVICE_STARTS)

    def status(self) -> dict[str, Any]:
        return self.guest.control({"cmd": "status"})

    def scanner_state(self) -> str | None:
        try:
            return str(self.status()["scanner"].get("state"))
        except GuestError:  # the control socket is not up yet
            return None

    def restarts(self) -> int:
        """How often systemd has restarted the appliance since boot (a crash or a watchdog stop)."""
        return int(self.guest.check("systemctl show -p NRestarts --value pollbox.service").strip())

    def no_restart_since(self, restarts: int) -> None:
        """The appliance was not restarted since ``restarts`` was read; else its log says why."""
        if self.restarts() != restarts:
            said = self.guest.check("journalctl -u pollbox.service -n 60 --no-pager -o cat")
            raise AssertionError(f"the appliance was restarted meanwhile:\n{said}")

    def identified_on_screen(self) -> int:
        """Voters identified, as the chair's screen reports it to anyone outside the unit."""
        status = wait_for(self.unit.vm.status, "the chair's screen answering", DECISION_FOLLOWS)
        return int(status["counters"]["identified"])

    def next_decision(self, seq: int | None) -> dict[str, Any]:
        """The first decision after the one numbered ``seq`` (the appliance's log in the failure if none)."""
        def decided() -> dict[str, Any] | None:
            try:
                last = self.status()["last_decision"]
            except GuestError:  # the control socket is down: the appliance restarted (restarts() tells)
                return None
            return last if last is not None and last.get("seq") != seq else None
        try:
            return wait_for(decided, "a decision on what the scanner sent", DECISION_FOLLOWS)
        except AssertionError as exc:
            said = self.guest.check("journalctl -u pollbox.service -n 40 --no-pager -o cat")
            raise AssertionError(f"{exc}; restarts {self.restarts()}; the appliance's log:\n{said}") from exc

    def decisions(self) -> int:
        """Every identification attempt decided so far: voters identified plus refusals of every kind."""
        counters = self.status()["counters"]
        return int(counters["identified"]) + sum(int(n) for n in counters["refusals"].values())

    def settled(self) -> int:
        """The decision count once it has stopped changing (the last pieces of a split read decided)."""
        seen: list[int] = []

        def still() -> int | None:
            seen.append(self.decisions())
            return seen[-1] if len(seen) >= SETTLED_POLLS and len(set(seen[-SETTLED_POLLS:])) == 1 else None
        return wait_for(still, "the decisions settled", DECISION_FOLLOWS)

    def read_document(self, send: Callable[[], object], retries: int = SPLIT_RETRIES) -> dict[str, Any]:
        """``send`` one document to the scanner; the decision on it.

        In software emulation the guest or the host stalls now and then for longer than the scanner's
        80 ms burst gap, and a document then arrives as two reads, each refused. That is told apart from
        a document read whole and refused by the number of decisions it caused: a split read is sent
        again (up to ``retries`` times, each counted in ``self.splits``); a single refusal fails."""
        for _ in range(retries + 1):
            seq, before = self.last_seq(), self.decisions()
            send()
            decision = self.next_decision(seq)
            if decision["outcome"] == "admitted":
                return decision
            caused = self.settled() - before
            if caused < 2:
                return decision
            self.splits += 1
        raise AssertionError(f"the document was split into several reads {retries + 1} times in a row")

    def last_seq(self) -> int | None:
        last = self.status()["last_decision"]
        return None if last is None else last.get("seq")

    # the keyboard ------------------------------------------------------------------------------

    def plug(self) -> None:
        """The virtual scanner plugged in (a uinput device), until ``unplug``."""
        self.typer_pid = self.guest.spawn(f"python3 {TEST_DIR}/uinput_guest.py plug {shlex.quote(SCANNER_NAME)} {TYPER}",
                                          log=f"{TEST_DIR}/typer.log")
        wait_for(lambda: self.guest.run(f"test -S {TYPER}")[0] == 0, "the virtual scanner plugged in", SERVICE_STARTS)

    def unplug(self) -> None:
        # the agent started it in a session of its own (a shell and python3): end the whole group; the
        # scanner is unplugged when the kernel has removed the input device
        self.guest.check(f"kill -- -{self.typer_pid} && rm -f {TYPER}")
        wait_for(lambda: self.guest.run(f"grep -q {shlex.quote(SCANNER_NAME)} /proc/bus/input/devices")[0] == 1,
                 "the virtual scanner's input device removed", DECISION_FOLLOWS)
        self.typer_pid = 0

    def type(self, text: str, layout: str) -> dict[str, float]:
        """Type ``text`` on the virtual scanner; the key count and the wall times of its first and last key."""
        encoded = base64.b64encode(text.encode()).decode()
        return dict(json.loads(self.guest.check(
            f"python3 {TEST_DIR}/uinput_guest.py type {TYPER} {layout} {PER_KEY_MS} {encoded}")))

    # the serial line ---------------------------------------------------------------------------

    def serial_connect(self) -> socket.socket:
        """The host's end of the guest's ``/dev/ttyS1`` (QEMU's socket, listening)."""
        line = socket.socket(socket.AF_UNIX)
        line.connect(str(self.serial_socket))
        return line

    def tty_speed(self) -> int:
        return int(self.guest.check("stty -F /dev/ttyS1 speed").strip())


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScannerRig]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("scanners")
    serial_socket = workdir / "ttyS1.sock"
    unit = boot_probed_unit(workdir, extra=second_uart(serial_socket))
    try:
        unit.vm.wait_until_ready()
        unit.guest.check(f"mkdir -p {TEST_DIR}")
        unit.guest.push(UINPUT, f"{TEST_DIR}/uinput_guest.py")
        unit.guest.control({"cmd": "open"})
        made = ScannerRig(unit, serial_socket)
        made.plug()
        yield made
    finally:
        unit.stop()


def test_the_image_carries_every_scanner_library(rig: ScannerRig) -> None:
    out = rig.guest.check("/opt/pollbox/bin/python -c 'import evdev, serial, cv2, zxingcpp, pyzbar.pyzbar, numpy, PIL;"
                          " print(evdev.__file__, cv2.__version__)'", timeout=180)
    assert out.startswith("/usr/lib/python3/dist-packages/evdev/"), out  # Debian's python3-evdev


def test_a_td1_mrz_typed_on_a_uinput_keyboard_admits_the_voter(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    document, before, typed = make_td1(pin=next(rig.voters)) + "\n", rig.identified_on_screen(), []
    decision = rig.read_document(lambda: typed.append(rig.type(document, "us")))
    assert typed[-1]["keys"] == 3 * 31
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"
    assert rig.identified_on_screen() == before + 1


def test_the_appliance_grabs_the_keyboard_and_a_second_reader_gets_nothing(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    spy = f"{TEST_DIR}/spy.log"
    rig.guest.spawn(f"python3 {TEST_DIR}/uinput_guest.py spy {shlex.quote(SCANNER_NAME)} 90", log=spy)
    wait_for(lambda: '"ready"' in rig.guest.run(f"cat {spy}")[1], "the second reader listening", SERVICE_STARTS)
    pin = next(rig.voters) + "\n"
    assert rig.read_document(lambda: rig.type(pin, "us"))["outcome"] == "admitted"
    report = wait_for(lambda: [json.loads(line) for line in rig.guest.run(f"cat {spy}")[1].splitlines()
                               if '"grab"' in line], "the second reader's report", 120.0)[0]
    assert report == {"grab": "Device or resource busy", "keys": 0}, report


def test_unplugging_and_plugging_the_keyboard_again_recovers(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    rig.unplug()
    wait_for(lambda: rig.scanner_state() == "disconnected", "the scanner seen unplugged", DECISION_FOLLOWS)
    rig.plug()
    wait_for(lambda: rig.scanner_state() == "connected", "the scanner found again", DECISION_FOLLOWS)
    document = make_td3(pin=next(rig.voters)) + "\n"
    decision = rig.read_document(lambda: rig.type(document, "us"))
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["de", "fr"])
def test_a_scanner_set_to_a_german_or_french_layout_admits_the_voter(rig: ScannerRig, layout: str) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout=layout)
    document = make_td1(pin=next(rig.voters)) + "\n"
    decision = rig.read_document(lambda: rig.type(document, layout))
    assert decision["outcome"] == "admitted", decision


@pytest.mark.parametrize("baudrate", [9600, 115200])
def test_a_serial_scanner_on_a_uart_reads_split_payloads_through_garbage_and_a_disconnect(
        rig: ScannerRig, baudrate: int) -> None:
    rig.use("serial", port="/dev/ttyS1", baudrate=baudrate)
    assert rig.tty_speed() == baudrate
    before, restarts = rig.identified_on_screen(), rig.restarts()
    line = rig.serial_connect()
    try:
        seq = rig.last_seq()
        line.sendall(b"\x00\xff\xfe#!garbage")  # noise on the line: read as one unreadable scan
        decision = rig.next_decision(seq)
        assert decision["outcome"] == "invalid_document", decision
        payload = (make_td1(pin=next(rig.voters)).replace("\n", "\r") + "\r\n").encode()
        def in_pieces() -> None:  # a reader's USB or UART chunks, back to back
            for i in range(0, len(payload), 7):
                line.sendall(payload[i:i + 7])
        decision = rig.read_document(in_pieces)
        assert decision["outcome"] == "admitted", decision
        seq, cut = decision["seq"], (next(rig.voters) + "\r\n").encode()
        line.sendall(cut[:6])  # the cable pulled mid-payload
    finally:
        line.close()
    decision = rig.next_decision(seq)
    assert decision["outcome"] == "invalid_document", decision
    assert rig.scanner_state() == "connected"  # a UART stays; only its far end went
    line = rig.serial_connect()  # plugged back in: the next payload reads whole
    try:
        assert rig.read_document(lambda: line.sendall(cut))["outcome"] == "admitted"
    finally:
        line.close()
    rig.no_restart_since(restarts)
    assert rig.identified_on_screen() == before + 2
    assert rig.tty_speed() == baudrate
