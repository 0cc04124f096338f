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

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "POLLBOX_CMDLINE": str(self.cmdline), "POLLBOX_RAUC_CONF": str(self.conf),
               "POLLBOX_SYSTEM_VERSION": str(self.version)}
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
