"""A keyboard-mode and a serial scanner in a booted test copy, seen from the test.

Shared by ``test_kernel_scanners`` (the long series) and ``test_kernel_quick`` (one check each in
``make test``). The keyboard is ``uinput_guest.py`` in the guest: a ``uinput`` device typing documents
as a scanner in keyboard mode does; the serial scanner is the host writing into QEMU's socket of one
of the guest's UARTs. Each switch of scanner is a config change and a restart of ``pollbox.service``
(``restart_appliance_with``). A read split in two by an emulator stall is told apart from a refused
document and sent again (``read_document``).
"""

from __future__ import annotations

import base64
import json
import shlex
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.demo import demo_pins

from .guest import GuestError, ProbedUnit, restart_appliance_with
from .vm import wait_for

UINPUT = Path(__file__).with_name("uinput_guest.py")
TEST_DIR = "/run/pollbox-test"
SCANNER_NAME = "pollbox test scanner"
"""The virtual keyboard's device name; the appliance is configured to find it by (part of) it."""
TYPER = f"{TEST_DIR}/scanner.sock"
SPY_LOG = f"{TEST_DIR}/spy.log"
SPY_MOST = 600
"""The longest a second reader listens, in seconds (it is stopped once the test has typed)."""
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

    def __init__(self, unit: ProbedUnit, serial_socket: Path, tty: str = "/dev/ttyS1") -> None:
        self.unit, self.guest, self.serial_socket, self.tty = unit, unit.guest, serial_socket, tty
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
        self.wait_connected(scanner)

    def wait_connected(self, scanner: str) -> None:
        """Until the appliance (just restarted) reports its scanner connected."""
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
        reasons = []
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
            reasons.append(f"{caused} decisions, the first: {decision['outcome']}: {decision['reason']}")
        raise AssertionError(f"the document was split into several reads {retries + 1} times in a row: {reasons}")

    def last_seq(self) -> int | None:
        last = self.status()["last_decision"]
        return None if last is None else last.get("seq")

    # the keyboard ------------------------------------------------------------------------------

    def install(self) -> None:
        """The virtual keyboard's program copied into the guest."""
        self.guest.check(f"mkdir -p {TEST_DIR}")
        self.guest.push(UINPUT, f"{TEST_DIR}/uinput_guest.py")

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

    def spy(self) -> int:
        """A second reader of the plugged scanner, as the kiosk's browser would be (until ``spied``); its pid."""
        self.guest.run(f"rm -f {SPY_LOG}")
        pid = self.guest.spawn(f"exec python3 {TEST_DIR}/uinput_guest.py spy {shlex.quote(SCANNER_NAME)} {SPY_MOST}",
                               log=SPY_LOG)
        wait_for(lambda: '"ready"' in self.guest.run(f"cat {SPY_LOG}")[1], "the second reader listening",
                 SERVICE_STARTS)
        return pid

    def spied(self, pid: int) -> dict[str, Any]:
        """The second reader stopped: whether it could grab the device and how many keys it read."""
        self.guest.run(f"kill -TERM {pid}")
        found = wait_for(lambda: [json.loads(line) for line in self.guest.run(f"cat {SPY_LOG}")[1].splitlines()
                                  if '"grab"' in line], "the second reader's report", DECISION_FOLLOWS)
        return dict(found[0])

    def type(self, text: str, layout: str) -> dict[str, float]:
        """Type ``text`` on the virtual scanner; the key count and the wall times of its first and last key."""
        encoded = base64.b64encode(text.encode()).decode()
        return dict(json.loads(self.guest.check(
            f"python3 {TEST_DIR}/uinput_guest.py type {TYPER} {layout} {PER_KEY_MS} {encoded}")))

    # the serial line ---------------------------------------------------------------------------

    def serial_connect(self) -> socket.socket:
        """The host's end of the guest's UART ``self.tty`` (QEMU's socket, listening)."""
        line = socket.socket(socket.AF_UNIX)
        line.connect(str(self.serial_socket))
        return line

    def tty_speed(self) -> int:
        return int(self.guest.check(f"stty -F {self.tty} speed").strip())
