"""The Raspberry Pi (arm64) image: built from the same recipe on this host through qemu-user, its boot
partition checked for what a Pi 4 or Pi 5 reads, and booted in QEMU's emulated arm64 machine.

QEMU has no Raspberry Pi 4 or 5 board, so the boot test starts the image's own kernel and initramfs,
taken off its boot partition, on QEMU's generic arm64 machine (``-M virt``, a Cortex-A72 like the
Pi 4's) with the kernel command line of the image's ``cmdline.txt`` (the console moved to the virtual
machine's serial port): the root by label, read-only, the data partition, the first-boot import from
the stick and ``pollbox.service`` to ``READY=1``, as on amd64. What only the Pi's firmware does
(reading ``config.txt``, the device tree, the DSI screen) is not exercised here. The machine's own
device tree (QEMU's, dumped) gets one more node, the 7-inch panel's touch controller on no bus, so
the image's touch poller meets a panel in the tree whose I2C device never appears.

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

from .vm import IMAGE_DIR, VirtualMachine, build_image, make_stick, run, wait_for

ARM64_DIR = IMAGE_DIR / "arm64"
ARM64_TEST_TIMEOUT = 3 * 3600
"""pytest-timeout: a cold arm64 build under emulation (about an hour here) and an emulated boot."""
ARM64_BOOT_DEADLINE = 2400.0
"""Power-on to the appliance started, with every arm64 instruction emulated on a shared x86 host."""
BUDGET = 2 * 10**9
"""The Pi image's size budget: under 2 GB."""
CARD = 8 * 10**9
"""The emulated SD card: 8 GB, the smallest card a unit takes (root slot B and the data partition fill it)."""
PANEL_NODE = "/touchscreen"
"""The touch controller's node added to QEMU's device tree: enabled, on no I2C bus, so it never comes up."""
TOUCH_GIVES_UP = 900.0
"""Power-on to the touch poller giving up on that node (a minute of waiting, every start emulated)."""
RESTART_WOULD_SHOW = 60.0
"""How long after the poller gave up a restart would have shown on the console (the unit's 5 s, and a
Python start under emulation): the window in which none may come."""

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


def image_suite(image: Path) -> str:
    """The Debian suite the image was built from, as its manifest's first line names it."""
    return image.with_suffix(".manifest").read_text().split("Debian ", 1)[1].split(",", 1)[0]


def mbr_partitions(image: Path) -> list[dict[str, Any]]:
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    assert table["label"] == "dos", f"the Pi's disk has a {table['label']} partition table, not an MBR"
    return list(table["partitions"])


@pytest.fixture(scope="module")
def boot(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_boot(image, tmp_path_factory.mktemp("pi-boot"))


def extract_boot(image: Path, folder: Path) -> Path:
    """Boot slot A's files (``folder/files``) and its label (``folder/label``), and the boot control
    partition's ``autoboot.txt`` and label (``folder/control``, ``folder/control-label``), out of the image."""
    parts = mbr_partitions(image)
    folder.mkdir(parents=True, exist_ok=True)
    for part, files, label in ((parts[1], "files", "label"), (parts[0], "control", "control-label")):
        raw = folder / "part.img"
        start, size = int(part["start"]) * 512, int(part["size"]) * 512
        with image.open("rb") as source, raw.open("wb") as out:
            source.seek(start)
            out.write(source.read(size))
        (folder / files).mkdir()
        run(["mcopy", "-s", "-i", str(raw), "::/*", str(folder / files)])
        (folder / label).write_text(run(["fatlabel", str(raw)]).strip())
        raw.unlink()
    return folder


PI_DISK_ID = "9011b0c5"
"""The Pi image's MBR disk identifier (build.sh): cmdline.txt and RAUC name its partitions by it."""


def test_the_disk_is_laid_out_for_two_slots_within_the_budget(image: Path) -> None:
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    assert table["label"] == "dos" and table["id"] == f"0x{PI_DISK_ID}", table
    parts = mbr_partitions(image)
    # p1 boot control (FAT16), p2 boot-a and p3 boot-b (FAT32), p4 extended with p5 root-a and p6 data;
    # root slot B (p7) is made at the first boot
    assert [p["type"] for p in parts] == ["e", "c", "c", "5", "83", "83"], parts
    assert [p["node"][-1] for p in parts] == ["1", "2", "3", "4", "5", "6"]
    mib = [int(p["size"]) * 512 // 2**20 for p in parts]
    # each boot partition 96 MiB; 128 on Debian 13, whose kernel and initramfs are larger (build.sh)
    boot_mib = 128 if image_suite(image) == "trixie" else 96
    assert mib[0] == 4 and mib[1] == mib[2] == boot_mib and mib[5] == 64, mib
    extended, root, data = parts[3], parts[4], parts[5]
    assert int(extended["start"]) < int(root["start"]) < int(data["start"])
    assert int(data["start"]) + int(data["size"]) <= int(extended["start"]) + int(extended["size"])
    assert image.stat().st_size < BUDGET, f"{image.stat().st_size:,} bytes"


def test_the_boot_partition_has_what_the_pi_reads(image: Path, boot: Path) -> None:
    parts = mbr_partitions(image)
    assert parts[1].get("bootable") is True, parts
    assert (boot / "label").read_text() == "BOOT-A"
    files = boot / "files"
    for name in ("start.elf", "fixup.dat", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img",
                 "config.txt", "cmdline.txt"):
        assert (files / name).is_file(), f"{name} is not on the boot partition: {sorted(os.listdir(files))}"
    config = [line.strip() for line in (files / "config.txt").read_text().splitlines()]
    for setting in ("arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel",
                    "display_auto_detect=1", "[pi4]", "[pi5]"):
        assert setting in config, f"config.txt lacks {setting!r}"
    # the 7-inch panel's overlay, ours, under the name the firmware's display detection loads; and every
    # overlay config.txt names is on the partition
    overlay = files / "overlays" / "vc4-kms-dsi-7inch.dtbo"
    assert overlay.read_bytes()[:4] == bytes.fromhex("d00dfeed"), "the 7-inch overlay is not a device tree blob"
    for line in config:
        if line.startswith("dtoverlay="):
            name = line.removeprefix("dtoverlay=").split(",")[0]
            assert (files / "overlays" / f"{name}.dtbo").is_file(), f"config.txt loads {name}, not on the partition"
    cmdline = (files / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n"), "cmdline.txt must be one line"
    assert {f"root=PARTUUID={PI_DISK_ID}-05", "rauc.slot=A", "ro", "rootwait"} <= set(cmdline.split())
    manifest = (image.with_suffix(".manifest")).read_text()
    for package in ("raspi-firmware\t", "linux-image-arm64\t", "chromium\t", "cage\t", "rauc\t"):
        assert f"\n{package}" in manifest, f"the manifest does not list {package.strip()}"
    assert "## files on the boot partition" in manifest


def test_the_pi_5_boots_from_a_trixie_image_only(image: Path, boot: Path) -> None:
    """A Debian 13 image (``POLLBOX_SUITE=trixie``) carries trixie-backports' kernel and the Pi 5's device
    trees under the names its firmware loads (``bcm2712-rpi-5-b.dtb``, and ``bcm2712d0-rpi-5-b.dtb`` for
    the D0 board), each describing the RP1 chip whole; a bookworm image has none (its 6.1 kernel knows no
    Pi 5). ``config.txt`` picks no tree and loads no RP1 overlay in either. The trixie image's RAUC is
    Debian's with ``rauc-dm-status.patch`` (version ``+pollbox1``), which mounts bundles on that kernel."""
    files = boot / "files"
    manifest = image.with_suffix(".manifest").read_text()
    suite = image_suite(image)
    config = [line.strip() for line in (files / "config.txt").read_text().splitlines()]
    assert not [line for line in config if line.startswith(("device_tree=", "dtoverlay=rp1"))], config
    kernel = next(line.split("\t")[1] for line in manifest.splitlines() if line.startswith("linux-image-arm64\t"))
    rauc = next(line.split("\t")[1] for line in manifest.splitlines() if line.startswith("rauc\t"))
    if suite == "trixie":
        for name in ("bcm2712-rpi-5-b.dtb", "bcm2712d0-rpi-5-b.dtb"):
            tree = (files / name).read_bytes()
            assert tree[:4] == bytes.fromhex("d00dfeed"), f"{name} is not a device tree blob"
            assert b"raspberrypi,rp1-gpio" in tree and b"pci1de4,1" in tree, f"{name} does not describe RP1"
        assert "bpo13" in kernel, f"the kernel {kernel} is not trixie-backports'"
        assert f"{suite}-backports" in manifest.split("## debian packages")[0]
        # that kernel's dm-verity status is refused by trixie's own RAUC: the image's is patched
        assert rauc.endswith("+pollbox1"), f"RAUC {rauc} is trixie's own, which mounts no bundle on {kernel}"
    else:
        assert suite == "bookworm", suite
        assert not list(files.glob("bcm2712*")), sorted(os.listdir(files))
        assert "bpo" not in kernel, kernel
        assert "pollbox" not in rauc, rauc


def test_the_boot_control_partition_holds_autoboot_txt_booting_slot_a(boot: Path) -> None:
    assert (boot / "control-label").read_text() == "POLLBOXESP"
    assert sorted(os.listdir(boot / "control")) == ["autoboot.txt"]
    autoboot = (boot / "control" / "autoboot.txt").read_text()
    assert len(autoboot.encode()) <= 512, "the firmware reads 512 bytes of autoboot.txt at most"
    lines = [line for line in autoboot.splitlines() if line and not line.startswith("#")]
    assert lines == ["[all]", "tryboot_a_b=1", "boot_partition=2", "[tryboot]", "boot_partition=2"], lines
    assert "# pollbox-slots A=good B=bad" in autoboot.splitlines()


class Arm64Machine(VirtualMachine):
    """The Pi image on QEMU's generic arm64 machine: the image's kernel and initramfs started directly
    with its cmdline.txt; the same disk overlay and the same devices (``VirtualMachine.unit_devices``:
    stick, network, watchdog, console, QMP) as on amd64."""

    def __init__(self, workdir: Path, image: Path, stick: Path, station: Path, boot: Path, card: int) -> None:
        super().__init__(workdir, image, stick, station, card)
        self.accel = "tcg"  # an arm64 guest on this host is always emulated
        files = boot / "files"
        kept = [a for a in (files / "cmdline.txt").read_text().split() if not a.startswith("console=")]
        self.append = " ".join([*kept, "console=ttyAMA0,115200"])
        self.kernel, self.initrd = files / "vmlinuz", files / "initrd.img"

    def add_panel_node(self) -> None:
        """Boot with QEMU's own device tree for this machine plus an enabled touch-controller node
        (``PANEL_NODE``) on no bus: a panel in the tree whose I2C device never appears."""
        dtb = self.workdir / "virt-with-panel.dtb"
        dump = self.command()
        dump[dump.index("virt")] = f"virt,dumpdtb={dtb}"
        run(dump)
        run(["fdtput", "-c", str(dtb), PANEL_NODE])
        run(["fdtput", "-t", "s", str(dtb), PANEL_NODE, "compatible", "edt,edt-ft5406"])
        self.extra += ["-dtb", str(dtb)]

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
    machine = Arm64Machine(workdir, image, stick, station, boot, CARD)
    machine.add_panel_node()
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


def test_a_panel_in_the_device_tree_whose_bus_never_comes_up_is_waited_for_then_given_up(
        unit: Arm64Machine) -> None:
    """The kernel's device tree has the controller's node (``add_panel_node``) and no I2C device ever
    comes of it: the image's touch poller finds the node, waits a minute for its bus, gives up naming
    it, and is not started again (exit status 3); the appliance is not touched by it."""
    if not unit.ready_after:
        pytest.skip("the unit did not boot (the boot test failed)")
    waiting = f"pollbox-touch: the device tree has a touch panel at {PANEL_NODE}; waiting for its I2C bus"
    gave_up = f"pollbox-touch: the device tree has a touch panel at {PANEL_NODE}, but no I2C device for it came up"
    wait_for(lambda: gave_up in unit.console(), "the touch poller giving up on the panel's bus", TOUCH_GIVES_UP)
    with pytest.raises(AssertionError, match="not within"):
        wait_for(lambda: unit.console().count(waiting) > 1, "the touch poller started again", RESTART_WOULD_SHOW)
    console = unit.console()
    assert console.count(waiting) == 1 and console.count(gave_up) == 1
    assert "no touch panel in the device tree" not in console
    assert unit.status() is not None


def test_the_first_boot_made_root_slot_b_and_grew_the_data_partition_up_to_it(unit: Arm64Machine) -> None:
    """After the boot test: the 8 GB card's table holds p7 (root slot B, 2048 MiB) at its end, the data
    partition grown up to it, nothing overlapping (``sfdisk --verify``)."""
    if not unit.ready_after:
        pytest.skip("the unit did not boot (the boot test failed)")
    console = unit.console()
    assert "pollbox-root-b: made root slot B: partition 7, 2048 MiB" in console, console[-3000:]
    assert "pollbox-data-grow: growing" in console and "to the next partition" in console
    unit.power_cut()  # both table writes were flushed at the first boot (sfdisk syncs the disk)
    raw = unit.workdir / "card.raw"
    run(["qemu-img", "convert", "-U", "-O", "raw", str(unit.disk), str(raw)])
    try:
        parts = mbr_partitions(raw)
        assert [p["node"][-1] for p in parts] == ["1", "2", "3", "4", "5", "6", "7"], parts
        data, root_b = parts[5], parts[6]
        assert int(root_b["size"]) == 2048 * 2048
        assert int(root_b["start"]) + int(root_b["size"]) <= CARD // 512
        assert int(root_b["start"]) - (int(data["start"]) + int(data["size"])) == 2048  # its table sector's MiB
        run(["sfdisk", "--verify", str(raw)])
    finally:
        raw.unlink()
