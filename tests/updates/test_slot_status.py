"""The image's ``rauc-slot-status``: RAUC's status gets an entry for the booted slot as flashed, from the slot.

Run on the host as ``pollbox-slot-status.service`` runs it at each boot, with files standing for
``/proc/cmdline``, ``/etc/rauc/system.conf``, the root's version file and the slot's device. The
booted image's test (``tests/image/test_update.py``, step 0) checks the same in a booted unit, where
RAUC reads the entry and the appliance signs it into its readiness report.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "provisioning/image/debian/rauc/usr/lib/pollbox/rauc-slot-status"
SLOT_BYTES = os.urandom(3 << 20) + b"\0" * (1 << 20)


class Unit:
    """A unit's files: kernel command line, RAUC config, the root's version file, two slots, the status."""

    def __init__(self, root: Path, booted: str = "A") -> None:
        self.root = root
        self.cmdline = root / "cmdline"
        self.cmdline.write_text(f"root=PARTLABEL=root ro rauc.slot={booted} console=ttyS0\n")
        self.slots = {"A": root / "root.img", "B": root / "root-b.img"}
        self.slots["A"].write_bytes(SLOT_BYTES)
        self.slots["B"].write_bytes(b"B" * (1 << 20))
        self.status = root / "data" / "rauc.status"
        self.conf = root / "system.conf"
        self.conf.write_text(
            "[system]\ncompatible=pollbox-amd64\nbootloader=custom\nstatusfile=" + str(self.status) + "\n\n"
            "[keyring]\npath=/etc/rauc/keyring.pem\n\n"
            f"[slot.rootfs.0]\ndevice={self.slots['A']}\ntype=ext4\nbootname=A\n\n"
            f"[slot.rootfs.1]\ndevice={self.slots['B']}\ntype=ext4\nbootname=B\n")
        self.version = root / "system-version"
        self.version.write_text("0.1.0+image.0123456789ab\n")
        # systemctl and busctl stand-ins: RAUC's service is running when rauc-active exists, and busctl
        # answers its operations from rauc-operations, one a call, the last one again; systemctl's calls are
        # logged in systemctl.log
        self.systemctl, self.busctl = root / "systemctl", root / "busctl"
        self.rauc_active, self.operations = root / "rauc-active", root / "rauc-operations"
        self.systemctl_log = root / "systemctl.log"
        self.systemctl.write_text(f'#!/bin/sh\necho "$*" >> {self.systemctl_log}\n'
                                  f'[ "$1" != is-active ] || [ -e {self.rauc_active} ]\n')
        self.busctl.write_text(f'#!/bin/sh\nop=$(head -n 1 {self.operations})\n'
                               f'[ "$(wc -l < {self.operations})" -le 1 ] || sed -i 1d {self.operations}\n'
                               'echo "s \\"$op\\""\n')
        self.systemctl.chmod(0o755)
        self.busctl.chmod(0o755)
        self.operations.write_text("idle\n")

    def restarts(self) -> list[str]:
        """The RAUC restarts asked of systemctl."""
        calls = self.systemctl_log.read_text().splitlines() if self.systemctl_log.exists() else []
        return [call for call in calls if call.startswith("try-restart")]

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "POLLBOX_CMDLINE": str(self.cmdline), "POLLBOX_RAUC_CONF": str(self.conf),
               "POLLBOX_SYSTEM_VERSION": str(self.version), "POLLBOX_SYSTEMCTL": str(self.systemctl),
               "POLLBOX_BUSCTL": str(self.busctl), "POLLBOX_INSTALL_POLL": "0"}
        return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60, check=False)

    def recorded(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(self.status.read_text())
        return parser


def test_the_slot_as_flashed_is_recorded_with_its_own_hash_once(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    done = unit.run()
    assert done.returncode == 0, done.stderr
    slot = unit.recorded()["slot.rootfs.0"]
    assert dict(slot) == {"bundle.compatible": "pollbox-amd64", "bundle.version": "0.1.0+image.0123456789ab",
                          "status": "ok", "sha256": hashlib.sha256(SLOT_BYTES).hexdigest(),
                          "size": str(len(SLOT_BYTES))}
    assert "sha256 " + hashlib.sha256(SLOT_BYTES).hexdigest() in done.stdout
    before = unit.status.read_bytes()
    unit.slots["A"].write_bytes(b"changed")  # the entry is not made again, whatever the slot holds now
    again = unit.run()
    assert again.returncode == 0 and "already records slot A" in again.stdout
    assert unit.status.read_bytes() == before


def test_a_slot_rauc_wrote_is_left_as_rauc_recorded_it(tmp_path: Path) -> None:
    unit = Unit(tmp_path, booted="B")
    unit.status.parent.mkdir()
    written = "[slot.rootfs.1]\nbundle.version=0.2.0\nstatus=ok\nsha256=" + "ab" * 32 + "\nsize=1048576\n"
    unit.status.write_text(written)
    done = unit.run()
    assert done.returncode == 0 and "already records slot B" in done.stdout
    assert unit.status.read_text() == written


def test_other_slots_entries_are_kept_when_the_booted_one_is_added(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    unit.status.parent.mkdir()
    unit.status.write_text("[slot.rootfs.1]\nbundle.version=0.2.0\nstatus=bad\n")
    assert unit.run().returncode == 0
    recorded = unit.recorded()
    assert recorded["slot.rootfs.1"]["status"] == "bad"
    assert recorded["slot.rootfs.0"]["sha256"] == hashlib.sha256(SLOT_BYTES).hexdigest()


@pytest.mark.parametrize(("spoil", "said"), [
    (lambda u: u.version.unlink(), "system-version is missing: the booted slot A cannot be named"),
    (lambda u: u.cmdline.write_text("root=PARTLABEL=root rauc.slot=C\n"), "has no slot with bootname C"),
    (lambda u: u.slots["A"].unlink(), "cannot be read"),
])
def test_a_slot_that_cannot_be_named_or_read_is_refused_and_nothing_written(tmp_path: Path, spoil: object,
                                                                            said: str) -> None:
    unit = Unit(tmp_path)
    spoil(unit)  # type: ignore[operator]
    done = unit.run()
    assert done.returncode == 1 and said in done.stderr, done.stderr
    assert not unit.status.exists()


def test_a_boot_without_a_slot_on_the_command_line_records_nothing(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    unit.cmdline.write_text("root=/dev/sda2 ro\n")
    done = unit.run()
    assert done.returncode == 0 and "names no rauc.slot" in done.stdout
    assert not unit.status.exists()


def test_the_read_only_root_is_never_checked_at_boot() -> None:
    """e2fsck rewrites the superblock of even a clean file system (its write time, its bytes written): a root
    checked at boot would not be the slot as flashed any more, and its hash would name no image."""
    fstab = SCRIPT.parents[4] / "rootfs/etc/fstab"
    root = next(line.split() for line in fstab.read_text().splitlines()
                if line.strip() and not line.startswith("#") and line.split()[1] == "/")
    assert "ro" in root[3].split(",") and root[5] == "0", root


def test_a_mounted_slot_is_hashed_as_it_is_on_the_device_not_through_the_page_cache(tmp_path: Path) -> None:
    """The root is mounted when the script runs; read through the page cache its block device shows the
    superblock as the kernel holds it after the mount, which was never written. The script reads it with
    O_DIRECT and gets the bytes on the device. A loop device over an ext4 image (root and loop devices
    needed; skipped otherwise)."""
    unit = Unit(tmp_path)
    image = unit.slots["A"]
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "hello").write_text("a root file system\n")
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tmp_path / "tree"), str(image), "8M"], check=True)
    on_disk = hashlib.sha256(image.read_bytes()).hexdigest()
    made = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    loop = made.stdout.strip()
    mount = tmp_path / "mnt"
    mount.mkdir()
    try:
        if subprocess.run(["mount", "-o", "ro,noatime", loop, str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot mount the loop device here")
        try:
            cached = hashlib.sha256(Path(loop).read_bytes()).hexdigest()  # what a plain read of the device gives
            unit.conf.write_text(unit.conf.read_text().replace(f"device={image}", f"device={loop}"))
            done = unit.run()
        finally:
            subprocess.run(["umount", str(mount)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    assert done.returncode == 0, done.stderr
    assert cached != on_disk, "the page cache showed the device as on disk: this test shows nothing here"
    assert unit.recorded()["slot.rootfs.0"]["sha256"] == on_disk
    assert hashlib.sha256(image.read_bytes()).hexdigest() == on_disk  # the read-only mount wrote nothing


def test_a_running_rauc_is_restarted_once_the_entry_is_written_and_only_then(tmp_path: Path) -> None:
    """RAUC reads its status file when its service starts: a RAUC started before the entry was written (the
    appliance's first ``rauc status`` starts it) must be restarted to name the slot."""
    unit = Unit(tmp_path)
    unit.rauc_active.touch()
    done = unit.run()
    assert done.returncode == 0, done.stderr
    assert unit.restarts() == ["try-restart rauc.service"]
    assert "restarted to read the new entry" in done.stdout
    assert done.stdout.index("recorded in") < done.stdout.index("restarted")
    unit.systemctl_log.unlink()
    assert unit.run().returncode == 0
    assert not unit.systemctl_log.exists(), "a slot already recorded needs nothing of RAUC"


def test_an_install_under_way_is_waited_for_before_the_entry_is_written(tmp_path: Path) -> None:
    """An install ends with RAUC writing the status it holds, which has no entry for the booted slot: the
    entry is written only once RAUC is idle."""
    unit = Unit(tmp_path)
    unit.rauc_active.touch()
    unit.operations.write_text("installing\ninstalling\nidle\n")
    done = unit.run()
    assert done.returncode == 0, done.stderr
    assert "RAUC is 'installing': waiting until it is idle" in done.stdout
    assert unit.operations.read_text() == "idle\n", "busctl was not asked until RAUC said idle"
    assert unit.recorded()["slot.rootfs.0"]["sha256"] == hashlib.sha256(SLOT_BYTES).hexdigest()
    assert unit.restarts() == ["try-restart rauc.service"]


def test_rauc_not_running_is_not_asked_and_reads_the_entry_when_it_starts(tmp_path: Path) -> None:
    unit = Unit(tmp_path)
    unit.operations.write_text("installing\n")  # would block the write if it were asked
    done = unit.run()
    assert done.returncode == 0, done.stderr
    assert "sha256" in unit.recorded()["slot.rootfs.0"]
    assert unit.systemctl_log.read_text().splitlines() == ["is-active --quiet rauc.service",
                                                           "try-restart rauc.service"]


UNITS = SCRIPT.parents[4]
"""The image recipe's folder (provisioning/image/debian): its rootfs/ and rauc/ trees hold the units."""


def unit_file(name: str) -> configparser.ConfigParser:
    found = sorted(p for p in UNITS.glob(f"*/etc/systemd/system/{name}") if not p.is_symlink())
    assert len(found) == 1, found
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(found[0].read_text())
    return parser


def words(parser: configparser.ConfigParser, section: str, key: str) -> set[str]:
    return set(parser.get(section, key, fallback="").split())


def test_the_slot_is_hashed_after_the_appliance_is_ready_at_low_priority_and_nothing_waits_for_it() -> None:
    """The first boot's hashing of the slot as flashed does not hold back the appliance or its screen: it is
    ordered after pollbox.service (Type=notify, so after READY=1), never before anything, started as
    Type=exec so that multi-user.target does not wait for it, and yields CPU and disk to everything else."""
    status = unit_file("pollbox-slot-status.service")
    assert "pollbox.service" in words(status, "Unit", "After")
    assert not words(status, "Unit", "Before"), "the hashing must not hold back any unit"
    assert not words(status, "Unit", "Requires") | words(status, "Unit", "Requisite") | \
        words(status, "Unit", "BindsTo"), "the hashing must not need (nor stop with) the appliance"
    assert status.get("Service", "Type") == "exec" and status.getboolean("Service", "RemainAfterExit")
    assert int(status.get("Service", "Nice")) >= 10
    assert status.get("Service", "IOSchedulingClass") == "idle"
    assert status.get("Service", "CPUSchedulingPolicy") == "idle"
    assert (UNITS / "rauc/etc/systemd/system/multi-user.target.wants/pollbox-slot-status.service").is_symlink()
    assert unit_file("pollbox.service").get("Service", "Type") == "notify"
    for path in sorted(UNITS.glob("*/etc/systemd/system/**/*")):
        if path.is_file() and not path.is_symlink() and path.name != "pollbox-slot-status.service":
            assert "pollbox-slot-status" not in path.read_text(), f"{path} refers to the hashing unit"
