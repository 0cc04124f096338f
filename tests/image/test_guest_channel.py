"""The host's end of the test agent's channel (``guest.Guest.connect``), against a fake agent on a Unix
socket (no boot): how it waits for a guest that is still booting, and what it says when the guest never
answers or QEMU stops; and how a boot that stalled before user space is told from its serial console
(``vm.VirtualMachine.check_progress``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import guest as guest_module
from .guest import Guest
from .vm import StalledBoot, VirtualMachine, boot_stage


class FakeMachine:
    """What ``connect`` asks of the booting machine: whether QEMU runs, and the two reports."""

    def __init__(self, running: bool = True) -> None:
        self.is_running = running

    def running(self) -> bool:
        return self.is_running

    def stopped_report(self) -> str:
        return "QEMU stopped (exit status 1): could not open the disk"

    def not_booted(self, exc: AssertionError) -> AssertionError:
        return AssertionError(f"{exc}\nwhere the machine is: stuck in the firmware")


class SlowAgent:
    """A Unix socket server that reads ``hold`` pings without answering, then answers every ping it read
    (oldest first), as a busy guest's agent answers late: each answer carries its request's id."""

    def __init__(self, path: Path, hold: int) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.hold = hold
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rwb") as stream:
            ids = [json.loads(stream.readline())["id"] for _ in range(self.hold + 1)]
            for ident in ids:
                stream.write(json.dumps({"id": ident}).encode() + b"\n")
            stream.flush()

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "agent.sock"


def test_a_guest_that_answers_late_is_waited_for_on_the_same_connection(
        socket_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pings run out before the busy guest answers: the channel keeps its connection (closing it would
    throw the answers away) and takes the third ping's answer, skipping the late ones."""
    monkeypatch.setattr(guest_module, "PING_WAIT", 0.05)
    agent = SlowAgent(socket_path, hold=2)
    channel = Guest(socket_path)
    try:
        channel.connect(5.0, FakeMachine())  # type: ignore[arg-type]
    finally:
        channel.close()
        agent.close()


def test_a_qemu_that_stopped_fails_the_wait_at_once_with_its_log(socket_path: Path) -> None:
    with pytest.raises(AssertionError, match="QEMU stopped .*could not open the disk"):
        Guest(socket_path).connect(600.0, FakeMachine(running=False))  # type: ignore[arg-type]


def test_a_guest_that_never_answers_fails_saying_where_the_machine_is(
        socket_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest_module, "PING_WAIT", 0.05)
    with pytest.raises(AssertionError, match="(?s)not within 0 s.*stuck in the firmware"):
        Guest(socket_path).connect(0.3, FakeMachine())  # type: ignore[arg-type]


FIRMWARE = "BdsDxe: loading Boot0002 \"UEFI Misc Device\"\n"
KERNEL = FIRMWARE + "[    0.000000] Linux version 6.12.118+deb13-amd64\n"
USER_SPACE = KERNEL + "[    9.950120] systemd[1]: systemd 257.13-1~deb13u1 running in system mode\n"


def test_how_far_a_boot_came_is_read_off_its_console() -> None:
    assert [boot_stage(c) for c in ("", FIRMWARE, KERNEL, USER_SPACE)] == [
        "firmware", "firmware", "kernel", "user space"]


def console_of(tmp_path: Path, text: str, quiet: float) -> VirtualMachine:
    """A machine as ``check_progress`` sees it: its serial console file, last written ``quiet`` s ago."""
    machine = VirtualMachine.__new__(VirtualMachine)
    machine.serial = tmp_path / "serial.log"
    machine.serial.write_text(text)
    os.utime(machine.serial, (time.time() - quiet, time.time() - quiet))
    machine.boots = 1
    return machine


@pytest.mark.parametrize(("console", "stage"), [(FIRMWARE, "firmware"), (KERNEL, "kernel")])
def test_a_boot_whose_console_stops_before_user_space_has_stalled(tmp_path: Path, console: str, stage: str) -> None:
    with pytest.raises(StalledBoot, match=f"boot 1: stalled in the {stage}, the serial console unchanged for 30. s"):
        console_of(tmp_path, console, 305).check_progress(240)
    console_of(tmp_path, console, 200).check_progress(240)


def test_a_boot_in_user_space_is_never_called_stalled(tmp_path: Path) -> None:
    """Once systemd runs, the console may rest for long (the appliance up); the hardware watchdog, not the
    rig, handles a guest that stops there."""
    console_of(tmp_path, USER_SPACE, 3600).check_progress(240)
