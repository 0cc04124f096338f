"""The one boot of the built amd64 image that ``make test`` runs: a smoke test of the appliance.

The image is built first unless it is up to date or in the per-user build cache (``build.sh``); a
test copy of it (``guest.make_test_copy``: the test agent added, nothing else changed) boots once in
QEMU with the demo station's stick, the i6300esb watchdog, a virtual display and QMP. Every check
below looks at that same boot, from outside where a technician could (the serial console, the
forwarded screen and SSH ports, the disk overlay) and through the test agent where only the inside
shows it. The longer checks (power cuts, reboots, the watchdogs firing, refusals, zeroize) are in the
other modules of ``tests/image`` (``make image-test``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from .guest import ProbedUnit, boot_probed_unit, host_can_boot
from .vm import IMAGE_TEST_TIMEOUT, partitions, written_ranges

pytestmark = [pytest.mark.image, pytest.mark.smoke, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

SSH_SILENCE = 10.0
"""How long the forwarded SSH port is listened to for a server's greeting (an SSH server speaks first)."""
WATCHDOG_TIMEOUT = 30
"""``RuntimeWatchdogSec`` of the image (``system.conf.d/pollbox-watchdog.conf``): the i6300esb's timeout."""
STATION = "/var/lib/pollbox/station"
"""Where the first boot installs the station from the stick (``pollbox.service``'s config folder)."""


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    made = boot_probed_unit(tmp_path_factory.mktemp("smoke"))
    try:
        made.vm.wait_until_ready()
        yield made
    finally:
        made.stop()


def test_the_appliance_runs_after_ready_and_the_screen_answers(unit: ProbedUnit) -> None:
    console = unit.vm.console()
    assert "Started pollbox.service" in console and "Failed to start pollbox" not in console
    shown = unit.guest.check("systemctl show --property Type,ActiveState,SubState,NRestarts pollbox.service")
    assert dict(line.split("=", 1) for line in shown.split()) == {
        "Type": "notify", "ActiveState": "active", "SubState": "running", "NRestarts": "0"}, shown
    # nothing else failed on the way: a failed unit leaves the system "degraded" (trixie's
    # systemd-boot-random-seed did, against the read-only EFI partition, until the image masked it)
    failed = unit.guest.check("systemctl list-units --state=failed --no-legend --plain").strip()
    assert failed == "", f"units failed at boot: {failed}"
    status = unit.vm.status()
    assert status is not None and status["mode"] == "simulation" and status["journal"]["ok"] is True, status
    # the chair's status screen, as the kiosk loads it: the station from the stick names it
    station = json.loads((unit.vm.station / "station-package.json").read_bytes())["payload"]["station"]["id"]
    with urllib.request.urlopen(unit.vm.url("/"), timeout=30) as answer:
        page = answer.read().decode()
        assert answer.status == 200, answer.status
    assert page.lstrip().lower().startswith("<!doctype html>") and station in page, page[:500]


def test_the_station_was_imported_from_the_stick(unit: ProbedUnit) -> None:
    assert "station imported from the USB stick" in unit.vm.console()
    for name in ("station-package.json", "data/device.pub"):
        assert unit.guest.pull(f"{STATION}/{name}") == (unit.vm.station / name).read_bytes(), name


def test_the_root_is_read_only_and_the_data_partition_writable(unit: ProbedUnit) -> None:
    guest = unit.guest
    mounts = {line.split()[1]: line.split()[3].split(",") for line in guest.check("cat /proc/mounts").splitlines()}
    assert "ro" in mounts["/"] and "rw" in mounts["/var/lib/pollbox"], mounts
    rc, _ = guest.run("echo x > /etc/pollbox-smoke")
    assert rc != 0 and "Read-only file system" in guest.last_stderr, (rc, guest.last_stderr)
    token = os.urandom(8).hex()
    guest.check(f"echo {token} > /var/lib/pollbox/smoke && sync /var/lib/pollbox/smoke")
    assert guest.check("cat /var/lib/pollbox/smoke").strip() == token
    guest.check("rm /var/lib/pollbox/smoke")
    # from outside: the virtual disk's overlay holds writes to the data partition and none to the others
    layout = partitions(unit.vm.image)
    written = written_ranges(unit.vm.disk)
    for name in ("esp", "root"):
        first, last = layout[name]
        assert not [r for r in written if r[0] < last and r[1] > first], f"the {name} partition was written"
    first, last = layout["data"]
    assert [r for r in written if r[0] < last and r[1] > first], "nothing reached the data partition"


def test_the_hardware_watchdog_is_armed(unit: ProbedUnit) -> None:
    identity, state, timeout = unit.guest.check(
        "cat /sys/class/watchdog/watchdog0/identity /sys/class/watchdog/watchdog0/state "
        "/sys/class/watchdog/watchdog0/timeout").split("\n")[:3]
    assert identity.startswith("i6300ESB") and state == "active" and int(timeout) == WATCHDOG_TIMEOUT, \
        (identity, state, timeout)
    assert unit.guest.check("systemctl show --property RuntimeWatchdogUSec --value").strip() == f"{WATCHDOG_TIMEOUT}s"


def listening_tcp_ports(table: str) -> set[int]:
    """The local ports in LISTEN state (0A) in the text of /proc/net/tcp or tcp6."""
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_no_login_on_the_console_and_no_ssh(unit: ProbedUnit) -> None:
    assert not re.search(r"login:\s*$", unit.vm.console(), re.MULTILINE), "a login prompt on the serial console"
    names = set(unit.guest.check("cat /proc/[0-9]*/comm 2>/dev/null || true").split())
    assert not names & {"agetty", "getty", "login", "sshd", "dropbear"}, sorted(names)
    for getty in ("getty@tty1.service", "serial-getty@ttyS0.service"):
        rc, state = unit.guest.run(f"systemctl is-enabled {getty}")
        assert rc != 0 and state.strip() == "masked", (getty, rc, state)
    ports = listening_tcp_ports(unit.guest.check("cat /proc/net/tcp /proc/net/tcp6"))
    assert 22 not in ports and 8080 in ports, sorted(ports)
    # from outside: QEMU's forward of port 22 reaches the unit, and no SSH server greets
    with socket.create_connection(("127.0.0.1", unit.vm.ssh_port), timeout=SSH_SILENCE) as conn:
        try:
            greeting = conn.recv(64)
        except (TimeoutError, ConnectionResetError):
            greeting = b""
    assert not greeting.startswith(b"SSH-"), greeting


def test_the_image_has_no_ssh_server_or_getty_package(unit: ProbedUnit) -> None:
    installed = set(unit.guest.check("dpkg-query -W -f '${Package}\\n'").split())
    assert "pollbox" not in installed  # pollbox is in its virtualenv, not a Debian package
    assert not installed & {"openssh-server", "dropbear", "dropbear-bin", "tinyssh"}, sorted(installed)
