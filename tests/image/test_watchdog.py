"""The booted unit's two watchdogs, seen from outside.

- A hung appliance: ``pollbox run`` stopped with SIGSTOP stops answering systemd's watchdog
  (``WatchdogSec`` in ``pollbox.service``); systemd kills it, ``ExecStopPost`` locks the slot, and the
  restart locks it again (``ExecStartPre``) before the new process starts and journals that it
  started with the slot locked.
- A hung system: PID 1 frozen (the cgroup freezer on ``init.scope``) stops petting the hardware
  watchdog that systemd armed (``RuntimeWatchdogSec``, QEMU's i6300esb); the watchdog resets the
  machine, and the serial console shows a second boot up to the appliance started again.

The unit is a test copy of the image with the test agent (``guest.py``). Waiting is polling with
named deadlines.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest

from .guest import GuestError, ProbedUnit, boot_probed_unit, host_can_boot
from .vm import BOOT_DEADLINE, IMAGE_TEST_TIMEOUT, wait_for

pytestmark = [pytest.mark.image, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

SERVICE_WATCHDOG = 10.0
"""``WatchdogSec`` of pollbox.service (the unit file in the image says the same)."""
RESTARTED = 240.0
"""How long after the hang the appliance may take to run again: the watchdog's 10 s, the abort, both
slot locks (each a ``pollbox`` start, slow in an emulated guest) and the appliance's own start."""
STOP_POST = 120
"""``TimeoutStopSec`` in the guest: the image's 20 s is ample on a Pi, but under emulation on a shared
host ``pollbox box lock`` (ExecStopPost) takes longer than that and systemd would kill it unfinished."""
HARDWARE_WATCHDOG = 30
"""``RuntimeWatchdogSec`` in the image (system.conf.d/pollbox-watchdog.conf): the i6300esb's timeout."""
STATION_DIR = "/var/lib/pollbox/station"
"""Where the first boot put the station (the data partition)."""
JOURNAL = f"{STATION_DIR}/data/journal.db"
EVENT_KINDS = ("python3 -c " + shlex.quote(
    "import json, sqlite3, sys\n"
    f"db = sqlite3.connect('file:{JOURNAL}?mode=ro', uri=True)\n"
    "print(json.dumps(db.execute('SELECT seq, kind FROM events ORDER BY seq').fetchall()))"))
"""The appliance's journal as (seq, kind) pairs, read in the guest (read-only, beside the running appliance)."""


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    probed = boot_probed_unit(tmp_path_factory.mktemp("watchdog"))
    try:
        yield probed
    finally:
        probed.stop()


def main_pid(unit: ProbedUnit) -> int:
    return int(unit.guest.check("systemctl show --property MainPID --value pollbox.service").strip())


def journal_kinds(unit: ProbedUnit) -> list[tuple[int, str]]:
    return [(int(seq), str(kind)) for seq, kind in json.loads(unit.guest.check(EVENT_KINDS))]


def test_a_hung_appliance_is_restarted_by_systemd_with_the_slot_locked(unit: ProbedUnit) -> None:
    unit.vm.wait_until_ready()
    guest = unit.guest
    assert guest.check("systemctl show --property WatchdogUSec --value pollbox.service").strip() == "10s"
    guest.check("mkdir -p /run/systemd/system/pollbox.service.d && printf '[Service]\\nTimeoutStopSec="
                f"{STOP_POST}\\n' > /run/systemd/system/pollbox.service.d/test-emulated.conf && systemctl daemon-reload")
    before = journal_kinds(unit)
    hung = main_pid(unit)
    mark = int(guest.check("date +%s").strip())
    guest.check(f"kill -STOP {hung}")
    assert guest.check(f"ps -o stat= -p {hung}").strip().startswith("T"), "the appliance was not stopped"

    def running_again() -> int:
        rc, _ = guest.run("systemctl is-active --quiet pollbox.service")
        pid = main_pid(unit)
        return pid if rc == 0 and pid not in (0, hung) else 0
    new = wait_for(running_again, "pollbox.service running again in a new process after the hang", RESTARTED)
    assert guest.run(f"kill -0 {hung}")[0] != 0, "the hung process is still there"

    said = guest.check(f"journalctl -u pollbox.service --since @{mark - 1} --no-pager -o cat").splitlines()

    def first(text: str, after: int = -1) -> int:
        found = [i for i, line in enumerate(said) if text in line and i > after]
        assert found, f"{text!r} is not in what systemd and the appliance said after the hang:\n" + "\n".join(said)
        return found[0]
    timeout = first("Watchdog timeout")
    stop_lock = first("slot locked", timeout)  # ExecStopPost, after the hung process was killed
    start_lock = first("slot locked", stop_lock)  # ExecStartPre of the restart
    started = first("Started pollbox.service", start_lock)
    assert first("Main process exited", timeout) < stop_lock, said
    assert started > start_lock > stop_lock > timeout
    assert int(guest.check("systemctl show --property NRestarts --value pollbox.service").strip()) >= 1

    # The new process journals its start, the slot locked before anything else (PB-001), after what
    # the hung one had recorded: nothing lost, the chain still verifies.
    def restarted_journal() -> list[tuple[int, str]]:
        try:
            kinds = journal_kinds(unit)
        except GuestError:
            return []
        return kinds if [k for _, k in kinds[len(before):] if k == "device_started"] else []
    after = wait_for(restarted_journal, "the restarted appliance journalled its start", RESTARTED)
    assert after[:len(before)] == before
    status = wait_for(unit.vm.status, "the chair's screen answering after the restart", RESTARTED)
    assert status["journal"]["ok"] is True and status["journal"]["events"] >= len(after), status["journal"]
    assert main_pid(unit) == new


def test_a_hung_system_is_reset_by_the_hardware_watchdog(unit: ProbedUnit) -> None:
    unit.vm.wait_until_ready()
    guest = unit.guest
    # systemd armed the i6300esb with RuntimeWatchdogSec and pets it
    watchdog = guest.check("cat /sys/class/watchdog/watchdog0/identity /sys/class/watchdog/watchdog0/state "
                           "/sys/class/watchdog/watchdog0/timeout").split("\n")
    assert watchdog[0].startswith("i6300ESB") and watchdog[1] == "active", watchdog
    assert int(watchdog[2]) == HARDWARE_WATCHDOG, watchdog
    first_boot = unit.vm.console()
    assert first_boot.count("Started pollbox.service") >= 1
    # PID 1 frozen: nothing pets the watchdog any more (the agent runs in its own cgroup and is not frozen).
    # The freeze may cut the agent's answer short; the console tells what happened.
    try:
        guest.run("echo 1 > /sys/fs/cgroup/init.scope/cgroup.freeze && cat /sys/fs/cgroup/init.scope/cgroup.events",
                  timeout=20)
    except (GuestError, TimeoutError):
        pass
    guest.close()
    boots_before = first_boot.count("Linux version")

    def rebooted() -> bool:
        if not unit.vm.running():
            raise AssertionError("QEMU stopped instead of resetting the machine")
        console = unit.vm.console()
        return console.count("Linux version") > boots_before and console.count("Started pollbox.service") > \
            first_boot.count("Started pollbox.service")
    wait_for(rebooted, "a second boot after the watchdog's reset, up to pollbox.service started",
             HARDWARE_WATCHDOG * 2 + BOOT_DEADLINE[unit.vm.accel])
    status = wait_for(unit.vm.status, "the chair's screen answering after the reset", BOOT_DEADLINE[unit.vm.accel])
    assert status["journal"]["ok"] is True
