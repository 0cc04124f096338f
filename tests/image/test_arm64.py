"""The Raspberry Pi (arm64) image: built from the same recipe on this host through qemu-user, its boot
partition checked for what a Pi 4 or Pi 5 reads, and booted in QEMU's emulated arm64 machine.

QEMU has no Raspberry Pi 4 or 5 board, so the boot test starts the image's own kernel and initramfs,
taken off its boot partition, on QEMU's generic arm64 machine (``-M virt``, a Cortex-A72 like the
Pi 4's) with the kernel command line of the image's ``cmdline.txt`` (the console moved to the virtual
machine's serial port): the root by label, read-only, the data partition, the first-boot import from
the stick and ``pollbox.service`` to ``READY=1``, as on amd64. What only the Pi's firmware does
(reading ``config.txt``, the device tree, the DSI screen) is not exercised here.

The build is slow (every program of the new system runs emulated): a first one takes about an hour
on a busy 2-core host, so these tests are in the slow suite. The image is built with the tests'
trust anchor (``vm.test_image_settings``) into ``build/image/arm64/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .vm import IMAGE_DIR, VirtualMachine, build_image, make_stick, run

ARM64_DIR = IMAGE_DIR / "arm64"
ARM64_TEST_TIMEOUT = 3 * 3600
"""pytest-timeout: a cold arm64 build under emulation (about an hour here) and an emulated boot."""
ARM64_BOOT_DEADLINE = 2400.0
"""Power-on to the appliance started, with every arm64 instruction emulated on a shared x86 host."""
BUDGET = 2 * 10**9
"""The Pi image's size budget: under 2 GB."""

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(ARM64_TEST_TIMEOUT)]


def host_can_build() -> str:
    """Why this host cannot build and boot the arm64 image (a reason to skip), or an empty string."""
    if os.geteuid() != 0:
        return "building the image needs root"
    if shutil.which("qemu-system-aarch64") is None:
        return "no qemu-system-aarch64 (Debian package qemu-system-arm)"
    if os.uname().machine not in ("aarch64", "arm64") and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "no qemu-aarch64 in binfmt_misc (qemu-user-static)"
    return ""


@pytest.fixture(scope="module")
def image() -> Path:
    reason = host_can_build()
    if reason:
        pytest.skip(reason)
    return build_image("arm64", ARM64_DIR)


def mbr_partitions(image: Path) -> list[dict[str, Any]]:
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    assert table["label"] == "dos", f"the Pi's disk has a {table['label']} partition table, not an MBR"
    return list(table["partitions"])


@pytest.fixture(scope="module")
def boot(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_boot(image, tmp_path_factory.mktemp("pi-boot"))


def extract_boot(image: Path, folder: Path) -> Path:
    """The boot partition's files (``folder/files``) and its label (``folder/label``), out of the image."""
    first = mbr_partitions(image)[0]
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / "boot.img"
    start, size = int(first["start"]) * 512, int(first["size"]) * 512
    with image.open("rb") as source, part.open("wb") as out:
        source.seek(start)
        out.write(source.read(size))
    files = folder / "files"
    files.mkdir()
    run(["mcopy", "-s", "-i", str(part), "::/*", str(files)])
    (folder / "label").write_text(run(["fatlabel", str(part)]).strip())
    part.unlink()
    return folder


def test_the_boot_partition_has_what_the_pi_reads(image: Path, boot: Path) -> None:
    parts = mbr_partitions(image)
    assert [p["type"] for p in parts] == ["c", "83", "83"] and parts[0].get("bootable") is True, parts
    assert (boot / "label").read_text() == "POLLBOXESP"
    files = boot / "files"
    for name in ("start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt",
                 "cmdline.txt"):
        assert (files / name).is_file(), f"{name} is not on the boot partition: {sorted(os.listdir(files))}"
    config = [line.strip() for line in (files / "config.txt").read_text().splitlines()]
    for setting in ("arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel", "dtoverlay=vc4-kms-v3d",
                    "dtoverlay=vc4-kms-dsi-7inch", "[pi4]", "[pi5]"):
        assert setting in config, f"config.txt lacks {setting!r}"
    cmdline = (files / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n"), "cmdline.txt must be one line"
    assert {"root=LABEL=POLLBOXROOT", "ro", "rootwait"} <= set(cmdline.split())
    manifest = (image.with_suffix(".manifest")).read_text()
    for package in ("raspi-firmware\t", "linux-image-arm64\t", "chromium\t", "cage\t"):
        assert f"\n{package}" in manifest, f"the manifest does not list {package.strip()}"
    assert "## files on the boot partition" in manifest


class Arm64Machine(VirtualMachine):
    """The Pi image on QEMU's generic arm64 machine: the image's kernel and initramfs started directly
    with its cmdline.txt; the same disk overlay and the same devices (``VirtualMachine.unit_devices``:
    stick, network, watchdog, console, QMP) as on amd64."""

    def __init__(self, workdir: Path, image: Path, stick: Path, station: Path, boot: Path) -> None:
        super().__init__(workdir, image, stick, station)
        self.accel = "tcg"  # an arm64 guest on this host is always emulated
        files = boot / "files"
        kept = [a for a in (files / "cmdline.txt").read_text().split() if not a.startswith("console=")]
        self.append = " ".join([*kept, "console=ttyAMA0,115200"])
        self.kernel, self.initrd = files / "vmlinuz", files / "initrd.img"

    def command(self) -> list[str]:
        return [
            "qemu-system-aarch64", "-machine", "virt", "-accel", "tcg,thread=multi", "-cpu", "cortex-a72",
            "-m", "1536", "-smp", "2", "-nodefaults", "-display", "none",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", self.append,
            "-drive", f"if=none,id=disk,format=qcow2,file={self.disk}", "-device", "virtio-blk-pci,drive=disk",
            *self.unit_devices(),
        ]


@pytest.fixture(scope="module")
def unit(image: Path, boot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arm64Machine]:
    workdir = tmp_path_factory.mktemp("arm64")
    stick, station = make_stick(workdir)
    machine = Arm64Machine(workdir, image, stick, station, boot)
    machine.start()
    try:
        yield machine
    finally:
        machine.stop()


def test_the_pi_image_boots_to_the_appliance_in_an_emulated_arm64_machine(unit: Arm64Machine,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from . import vm
    monkeypatch.setitem(vm.BOOT_DEADLINE, "tcg", ARM64_BOOT_DEADLINE)
    status = unit.wait_until_ready()
    console = unit.console()
    assert "aarch64" in console or "arm64" in console
    assert "station imported from the USB stick" in console
    assert "Started pollbox.service" in console and "Failed to start pollbox" not in console
    assert status["mode"] == "simulation" and status["journal"]["ok"] is True
    (unit.workdir.parent / "arm64-boot-times.json").write_text(json.dumps(unit.ready_after))


def test_the_pi_image_is_within_its_2_gb_budget(image: Path) -> None:
    assert image.stat().st_size < BUDGET, f"{image.stat().st_size:,} bytes"
