"""The data partition's first-boot growth survives a power cut in the middle of it (slow suite).

A fresh unit on a disk larger than the image is cut (SIGKILL of QEMU) as soon as its console says
the growth began. The next boot must finish the job: the partition reaches the end of the disk, its
file system fills the partition and checks clean from outside, and the appliance starts. The growth
without a cut is checked by ``test_boot.py`` on every image test run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .vm import (
    BOOT_DEADLINE,
    IMAGE_TEST_TIMEOUT,
    VirtualMachine,
    build_image,
    disk_partitions,
    extract_partition,
    filesystem_bytes,
    make_stick,
    run,
    wait_for,
)

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]
LARGER_DISK = 2 << 30
GROWING = "pollbox-data-grow: growing"


def test_a_power_cut_while_the_data_partition_grows_is_finished_at_the_next_boot(tmp_path: Path) -> None:
    image = build_image("amd64")
    stick, station = make_stick(tmp_path)
    vm = VirtualMachine(tmp_path, image, stick, station, disk_size=image.stat().st_size + LARGER_DISK)
    vm.start()
    try:
        wait_for(lambda: GROWING in vm.console(), "the data partition's growth begun", BOOT_DEADLINE[vm.accel])
        vm.power_cut()
        vm.start()
        status = vm.wait_until_ready()
        assert status["journal"]["ok"] is True
        console = vm.console()
        assert "pollbox-data-grow: data partition" in console, console[-3000:]
        vm.shut_down()
    finally:
        vm.stop()
    disk_bytes = int(json.loads(run(["qemu-img", "info", "-U", "--output=json", str(vm.disk)]))["virtual-size"])
    start, end = disk_partitions(vm.disk)["data"]
    assert disk_bytes - end < 8 << 20 and end - start > LARGER_DISK, (disk_bytes, start, end)
    part = extract_partition(vm.disk, (start, end), tmp_path / "data.img")
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout[-2000:]
    assert end - start - filesystem_bytes(part) < 8 << 20
