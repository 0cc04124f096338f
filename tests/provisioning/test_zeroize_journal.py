"""Zeroize against ext4's own journal: wiped files leave no copy anywhere in the partition.

The unit's data partition is ext4 mounted ``data=journal`` (the image's fstab), so every block of a
file was first written to the file system's journal. A small ext4 file system in a file, loop-mounted
the same way, shows it: after ``wipe_file`` alone the key's bytes are still in the partition (in the
journal's ring); after ``wipe_files`` they are nowhere in it. (That removing a file before the journal
has written its overwrite back leaves the old content in its freed blocks depends on the kernel's
timing and was seen on the booted unit, not here: ``tests/image/test_zeroize_unit.py`` checks it.)
Needs root (a loop mount).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.zeroize import flush_filesystem_journal, journal_bytes, wipe_file, wipe_files

FS_MB = 64


def _can_mount() -> str:
    if os.geteuid() != 0:
        return "a loop mount needs root"
    if shutil.which("mkfs.ext4") is None and not Path("/usr/sbin/mkfs.ext4").exists():
        return "no mkfs.ext4 (e2fsprogs)"
    return ""


def mounted(tmp_path: Path, data: str) -> Iterator[tuple[Path, Path]]:
    """(the file system's image file, where it is mounted with ``data=<data>``)."""
    reason = _can_mount()
    if reason:
        pytest.skip(reason)
    image, mountpoint = tmp_path / "data.img", tmp_path / "mnt"
    subprocess.run(["truncate", "-s", f"{FS_MB}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "POLLBOXDATA", str(image)], check=True)
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-o", f"loop,data={data}", str(image), str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no loop mount here: {done.stderr.strip()}")
    try:
        yield image, mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)


@pytest.fixture
def partition(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Mounted as the unit mounts its data partition: file data through the journal."""
    yield from mounted(tmp_path, "journal")


@pytest.fixture
def ordered(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Mounted with ext4's default: only metadata goes through the journal."""
    yield from mounted(tmp_path, "ordered")


def secret_file(directory: Path) -> bytes:
    """A key-like file written as the unit writes its keys (written, flushed, its folder synced)."""
    secret = os.urandom(32) + b"pollbox zeroize test: a distinctive voter-list line" + os.urandom(32)
    path = directory / "list.key"
    with path.open("wb") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    return secret


def unmount(image: Path, mountpoint: Path) -> bytes:
    subprocess.run(["umount", str(mountpoint)], check=True)
    return image.read_bytes()


def test_a_wiped_file_survives_in_ext4s_journal_without_the_flush(partition: tuple[Path, Path]) -> None:
    image, mountpoint = partition
    secret = secret_file(mountpoint)
    assert wipe_file(mountpoint / "list.key")
    raw = unmount(image, mountpoint)
    assert secret in raw, "no journal copy to clear: this test no longer shows why the flush exists"


def test_the_journal_flush_goes_round_the_whole_ring_twice(partition: tuple[Path, Path]) -> None:
    _image, mountpoint = partition
    ring = journal_bytes(mountpoint)
    assert 0 < ring < FS_MB << 20, ring
    assert flush_filesystem_journal(mountpoint) >= 2 * ring
    assert sorted(p.name for p in mountpoint.iterdir()) == ["lost+found"]


def test_wiped_files_leave_no_copy_in_the_partition(partition: tuple[Path, Path]) -> None:
    image, mountpoint = partition
    secret = secret_file(mountpoint)
    for _ in range(3):  # the journal's write position somewhere else than at its start
        (mountpoint / "other").write_bytes(os.urandom(1 << 20))
        os.sync()
    assert wipe_files([mountpoint / "list.key", mountpoint / "seal.key"], mountpoint) == [mountpoint / "list.key"]
    assert sorted(p.name for p in mountpoint.iterdir()) == ["lost+found", "other"]
    raw = unmount(image, mountpoint)
    assert secret[:32] not in raw and secret[32:-32] not in raw and secret[-32:] not in raw


def test_no_flush_where_file_data_is_not_journalled(ordered: tuple[Path, Path]) -> None:
    image, mountpoint = ordered
    assert journal_bytes(mountpoint) == 0 and flush_filesystem_journal(mountpoint) == 0
    assert journal_bytes(image.parent) == 0  # not an ext4 mount of its own
