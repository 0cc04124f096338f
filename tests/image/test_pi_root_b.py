"""The Pi's first boot making root slot B (``pollbox-root-b``), run on the host against a disk image file.

The script is run as the image installs it (build.sh's disk identifier filled in) with ``POLLBOX_DISK``
naming a sparse file that holds the Pi image's MBR table as build.sh writes it, instead of the card; the
kernel is not told (no ``partx``). The booted first boot on an emulated 8 GB card, with the data
partition then grown up to slot B, is in ``test_arm64.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "provisioning/image/debian"
SCRIPT = RECIPE / "pi/rootfs/usr/local/sbin/pollbox-root-b"
DISK_ID = "9011b0c5"
MIB = 1 << 20
IMAGE_TABLE = f"""label: dos
label-id: 0x{DISK_ID}
start=1MiB, size=4MiB, type=e
size=96MiB, type=c, bootable
size=96MiB, type=c
type=5
size=1590MiB, type=83
size=64MiB, type=83
"""
"""The Pi image's table as build.sh writes it (root-a fitted to 1,590 MiB here)."""
IMAGE_MIB = 1 + 4 + 2 * 96 + 1 + 1590 + 1 + 64 + 1
ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}


def card(folder: Path, size: int, table: str = IMAGE_TABLE) -> Path:
    """A sparse file of ``size`` bytes whose start is the image's (its table, as flashed)."""
    disk = folder / "card.img"
    disk.write_bytes(b"")
    os.truncate(disk, IMAGE_MIB * MIB)
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=table, text=True, capture_output=True, check=True, env=ENV)
    os.truncate(disk, size)
    return disk


def parts(disk: Path) -> list[dict[str, int]]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True,
                                      env=ENV).stdout)["partitiontable"]
    return [{"n": int(p["node"][-1]), "start": int(p["start"]), "size": int(p["size"])} for p in table["partitions"]]


def first_mib(disk: Path) -> bytes:
    with disk.open("rb") as f:
        return f.read(MIB)


def root_b(folder: Path, disk: Path) -> subprocess.CompletedProcess[str]:
    script = folder / "pollbox-root-b"
    script.write_text(SCRIPT.read_text().replace("@DISKID@", DISK_ID))
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False,
                          env={**ENV, "POLLBOX_DISK": str(disk)})


@pytest.fixture(autouse=True)
def _tools() -> None:
    if subprocess.run(["bash", "-c", "command -v sfdisk"], capture_output=True, env=ENV).returncode != 0:
        pytest.skip("no sfdisk (Debian package fdisk)")


def test_an_8_gb_card_gets_root_slot_b_at_its_end_once(tmp_path: Path) -> None:
    disk = card(tmp_path, 8 * 10**9)
    done = root_b(tmp_path, disk)
    assert done.returncode == 0, done.stderr
    assert "made root slot B: partition 7, 2048 MiB at the end of" in done.stdout
    table = parts(disk)
    assert [p["n"] for p in table] == [1, 2, 3, 4, 5, 6, 7]
    extended, data, slot_b = table[3], table[5], table[6]
    assert slot_b["size"] == 2048 * 2048 and slot_b["start"] % 2048 == 0
    assert slot_b["start"] + slot_b["size"] <= 8 * 10**9 // 512 < slot_b["start"] + slot_b["size"] + 2048
    assert extended["start"] + extended["size"] >= slot_b["start"] + slot_b["size"]  # inside the extended one
    assert data["size"] == 64 * 2048  # the data partition is grown later, by pollbox-data-grow
    subprocess.run(["sfdisk", "--verify", str(disk)], capture_output=True, check=True, env=ENV)
    before = first_mib(disk)
    again = root_b(tmp_path, disk)  # every later boot
    assert again.returncode == 0 and "root slot B: partition 7 (2048 MiB)" in again.stdout, again
    assert parts(disk) == table and first_mib(disk) == before


def test_a_cut_after_the_extended_partition_grew_is_finished_at_the_next_boot(tmp_path: Path) -> None:
    disk = card(tmp_path, 8 * 10**9)
    subprocess.run(["sfdisk", "--quiet", "--no-reread", "-N", "4", str(disk)], input=", +", text=True,
                   capture_output=True, check=True, env=ENV)  # the first of the two writes, then the power cut
    done = root_b(tmp_path, disk)
    assert done.returncode == 0 and "made root slot B" in done.stdout, done
    assert [p["n"] for p in parts(disk)] == [1, 2, 3, 4, 5, 6, 7]


def test_a_card_with_no_room_for_slot_b_is_said_and_left_alone(tmp_path: Path) -> None:
    disk = card(tmp_path, (IMAGE_MIB + 1000) * MIB)
    table = parts(disk)
    done = root_b(tmp_path, disk)
    assert done.returncode == 0, done.stderr
    assert "the card has no room for root slot B" in done.stdout and "at least 8 GB" in done.stdout
    assert parts(disk) == table


def test_another_disk_is_refused_and_left_alone(tmp_path: Path) -> None:
    disk = card(tmp_path, 8 * 10**9, IMAGE_TABLE.replace(DISK_ID, "12345678"))
    table = parts(disk)
    done = root_b(tmp_path, disk)
    assert done.returncode == 1
    assert "is not this image's disk (disk identifier 0x12345678, not 0x9011b0c5); nothing made" in done.stdout
    assert parts(disk) == table
