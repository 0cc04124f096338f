"""Signed A/B updates in the booted Raspberry Pi image, with the Pi's firmware played by the test rig.

QEMU has no Raspberry Pi board and no Pi firmware, so the rig (``TrybootRig``) plays the firmware's
part, as the Pi's documentation says it behaves (``autoboot.txt``): before each power-on it reads
``autoboot.txt`` from partition 1 of the unit's disk as the unit left it, and boots the ``[tryboot]``
section's ``boot_partition`` only when the previous run ended with the kernel's restart line
``reboot: Restarting system with command '0 tryboot'`` on the serial console, else the ``[all]``
section's. QEMU runs with ``-no-reboot``: a restart in the guest ends QEMU, and the rig starts it again
with the chosen partition's ``vmlinuz``, ``initrd.img`` and ``cmdline.txt`` (the console moved to the
virtual machine's serial port). Nothing here ran on a Raspberry Pi; the image's own RAUC, its tryboot
backend, its units and its shutdown hook do all the rest.

One machine, in order (the image built with the tests' update CA, a test copy with the test agent and
without the kiosk, the bundles made from that copy's root-a and boot-a on a second read-only disk):

1. the first boot makes root slot B; a good bundle is installed into B (root and boot partition), the
   restart asks for a tryboot, the rig boots boot-b, root B runs on trial and is kept once the
   appliance is ready (autoboot.txt: B normal, both good);
2. a bundle whose appliance never becomes ready is installed into A, the restart asks for a tryboot,
   A runs on trial, the trial timeout restarts the unit without the tryboot flag, and the rig boots
   B again: A is marked bad and B stays the normal slot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.bundle import boot_from_image, make_bundle, root_from_image
from tests.image import vm
from tests.image.guest import AGENT, AGENT_PATH, KIOSK_WANTS, PORT_NAME, UNIT, UNIT_NAME, Guest, _debugfs
from tests.image.test_arm64 import ARM64_BOOT_DEADLINE, CARD, host_can_build
from tests.image.test_update import NEVER_READY, POLLBOX, SLOT_HASH_DEADLINE, UPDATE_CA, debugfs_write
from tests.image.vm import BUILD, IMAGE_DIR, VirtualMachine, extract_partition, make_stick, run, wait_for
from tests.image.vm import test_image_settings as image_settings

IMAGE_DIR_UPDATE = IMAGE_DIR / "arm64-update"
INSTALL_DEADLINE = 3600.0
"""Seconds an install may take in the emulated arm64 unit (RAUC writes and dm-verity checks the whole slot)."""
RESTART_DEADLINE = 600.0
"""Seconds from ``systemctl reboot`` in the guest to QEMU's exit (``-no-reboot``)."""
TRIAL_END_DEADLINE = 1500.0
"""Seconds from the never-ready trial's power-on to its restart: the boot, then the bundle's 150 s timeout."""
TRYBOOT_LINE = "reboot: Restarting system with command '0 tryboot'"
RESTART_LINE = "reboot: Restarting system"

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(4 * 3600)]


def build_update_image() -> Path:
    IMAGE_DIR_UPDATE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHON": sys.executable, **image_settings(),
           "POLLBOX_UPDATE_KEYRING": str(UPDATE_CA / "ca.cert.pem")}
    done = subprocess.run(["bash", str(BUILD), "arm64", str(IMAGE_DIR_UPDATE)], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise AssertionError(f"the image build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return IMAGE_DIR_UPDATE / "pollbox-arm64.img"


def mbr(image: Path) -> dict[str, tuple[int, int]]:
    """The Pi disk's partitions by number: (first byte, the byte after the last)."""
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    return {p["node"][-1]: (p["start"] * 512, (p["start"] + p["size"]) * 512) for p in table["partitions"]}


def agent_copy(image: Path, dest: Path) -> Path:
    """A copy of the Pi image whose root-a also starts the test agent, and not the kiosk."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "--sparse=always", "--reflink=auto", str(image), str(dest)])
    start, end = mbr(dest)["5"]
    root = dest.with_name("root.ext4")
    run(["dd", f"if={dest}", f"of={root}", "bs=1M", f"skip={start}", f"count={end - start}",
         "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
    unit = dest.with_name(UNIT_NAME)
    unit.write_text(UNIT)
    _debugfs(root, ["mkdir /usr/local/lib/pollbox-test", f"write {AGENT} {AGENT_PATH}",
                    f"write {unit} /etc/systemd/system/{UNIT_NAME}",
                    f"symlink /etc/systemd/system/multi-user.target.wants/{UNIT_NAME} /etc/systemd/system/{UNIT_NAME}",
                    f"rm {KIOSK_WANTS}"])
    run(["dd", f"if={root}", f"of={dest}", "bs=1M", f"seek={start}", "oflag=seek_bytes", "conv=notrunc",
         "status=none"])
    root.unlink()
    return dest


def make_bundles(copy: Path, work: Path) -> Path:
    """The good and the never-ready Pi bundles (root-a and boot-a of the copy) on an ext4 disk image."""
    folder = work / "bundles"
    folder.mkdir()
    root, boot = root_from_image(copy, work / "root.ext4"), boot_from_image(copy, work / "boot.vfat")
    cert, key = UPDATE_CA / "signer.cert.pem", UPDATE_CA / "signer.key.pem"
    common = {"compatible": "pollbox-rpi", "cert": cert, "key": key, "keyring": UPDATE_CA / "ca.cert.pem",
              "mksquashfs_args": "-comp lz4", "boot": boot}
    make_bundle(root=root, version="0.2.0+good", out=folder / "good.raucb", **common)  # type: ignore[arg-type]
    debugfs_write(root, NEVER_READY, work)
    make_bundle(root=root, version="0.2.1+never-ready", out=folder / "never-ready.raucb", **common)  # type: ignore[arg-type]
    root.unlink()
    boot.unlink()
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) * 11 // 10 // (1 << 20) + 64
    disk = work / "bundles.img"
    run(["mke2fs", "-q", "-t", "ext4", "-L", "POLLBOXUPD", "-d", str(folder), str(disk), f"{size_mb}M"])
    shutil.rmtree(folder)
    return disk


class TrybootRig(VirtualMachine):
    """The Pi unit on QEMU's arm64 machine, its firmware's boot choice played from ``autoboot.txt`` and the
    previous run's restart line (module docstring)."""

    def __init__(self, workdir: Path, image: Path, stick: Path, station: Path, bundles: Path) -> None:
        super().__init__(workdir, image, stick, station, CARD)
        self.accel = "tcg"
        self.parts = mbr(image)  # the primary partitions 1-3 never move
        self.agent = workdir / "agent.sock"
        self.extra += [
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent,path={self.agent},server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={PORT_NAME}",
            "-drive", f"if=none,id=bundles,format=raw,readonly=on,file={bundles}",
            "-device", "virtio-blk-pci,drive=bundles",
        ]
        self.choices: list[tuple[str, bool]] = []
        """(boot partition, tryboot) of every power-on, in order."""
        self.consoles: list[str] = []
        """The serial console of every run that ended."""
        self.append = ""
        self.kernel = self.initrd = workdir / "none"

    def read_partition(self, number: str, name: str, dest: Path) -> Path:
        part = extract_partition(self.disk, self.parts[number], self.workdir / f"p{number}.img")
        try:
            run(["mcopy", "-o", "-i", str(part), f"::/{name}", str(dest)])
        finally:
            part.unlink()
        return dest

    def choose(self) -> None:
        """The firmware's part: autoboot.txt's partition for this power-on, and its kernel, initramfs, cmdline."""
        tryboot = bool(self.consoles) and TRYBOOT_LINE in self.consoles[-1]
        autoboot = self.read_partition("1", "autoboot.txt", self.workdir / "autoboot.txt").read_text()
        section, chosen = "", dict[str, str]()
        for line in autoboot.splitlines():
            if line.startswith("["):
                section = line
            elif line.startswith("boot_partition="):
                chosen.setdefault(section, line.split("=")[1])
        assert "tryboot_a_b=1" in autoboot.splitlines(), autoboot
        partition = chosen["[tryboot]"] if tryboot else chosen["[all]"]
        boot = self.workdir / f"boot-{len(self.choices)}"
        boot.mkdir()
        for name in ("vmlinuz", "initrd.img", "cmdline.txt"):
            self.read_partition(partition, name, boot / name)
        kept = [a for a in (boot / "cmdline.txt").read_text().split() if not a.startswith("console=")]
        self.append = " ".join([*kept, "console=ttyAMA0,115200"])
        self.kernel, self.initrd = boot / "vmlinuz", boot / "initrd.img"
        self.choices.append((partition, tryboot))

    def start(self) -> None:
        if self.boots:
            self.consoles.append(self.console())
        self.choose()
        super().start()

    def command(self) -> list[str]:
        return [
            "qemu-system-aarch64", "-machine", "virt", "-accel", "tcg,thread=multi", "-cpu", "cortex-a72",
            "-m", "1536", "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", self.append,
            "-drive", f"if=none,id=disk,format=qcow2,file={self.disk}", "-device", "virtio-blk-pci,drive=disk",
            *self.unit_devices(),
        ]


class PiUnit:
    def __init__(self, work: Path) -> None:
        image = build_update_image()
        copy = agent_copy(image, work / "test-copy" / image.name)
        self.bundles = make_bundles(copy, work)
        stick, station = make_stick(work, voters=30)
        self.vm = TrybootRig(work, copy, stick, station, self.bundles)
        shutil.rmtree(copy.parent)
        self.guest = Guest(self.vm.agent)
        self.times: dict[str, float] = {}
        self.work = work

    def power_on(self) -> None:
        self.vm.start()
        self.guest.connect(ARM64_BOOT_DEADLINE, self.vm)

    def ready(self) -> None:
        self.vm.wait_until_ready()
        self.guest.check("mkdir -p /run/updates && (mountpoint -q /run/updates || mount -o ro LABEL=POLLBOXUPD /run/updates)")

    def slot(self) -> str:
        return self.guest.check("sed -n 's/.*rauc\\.slot=\\([AB]\\).*/\\1/p' /proc/cmdline").strip()

    def autoboot(self) -> str:
        wait_for(lambda: self.guest.run("mountpoint -q /boot/efi", timeout=30)[0] == 0 or None,
                 "the boot control partition mounted at /boot/efi", ARM64_BOOT_DEADLINE)
        return self.guest.check("cat /boot/efi/autoboot.txt")

    def update(self, name: str) -> tuple[int, str]:
        rc, out = self.guest.run(f"{POLLBOX} update /run/updates/{name}.raucb", timeout=INSTALL_DEADLINE)
        return rc, out + self.guest.last_stderr

    def wait_for_exit(self, deadline: float, what: str) -> str:
        """Until QEMU ended (a restart, with ``-no-reboot``); the console of that run."""
        wait_for(lambda: (not self.vm.running()) or None, what, deadline)
        self.guest.close()
        return self.vm.console()

    def restart(self) -> str:
        """``systemctl reboot`` in the guest; the console of the run it ended."""
        self.guest.spawn("sleep 1; systemctl reboot")
        return self.wait_for_exit(RESTART_DEADLINE, "QEMU ending at the guest's restart")

    def stop(self) -> None:
        self.guest.close()
        self.vm.stop()
        (self.work / "arm64-update-times.json").write_text(json.dumps(self.times, indent=1))


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PiUnit]:
    why = host_can_build()
    if why:
        pytest.skip(why)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(vm.BOOT_DEADLINE, "tcg", ARM64_BOOT_DEADLINE)
        made = PiUnit(tmp_path_factory.mktemp("arm64-update"))
        try:
            made.power_on()
            made.ready()
            yield made
        finally:
            made.stop()


def line_of(autoboot: str, prefix: str) -> list[str]:
    return [line for line in autoboot.splitlines() if line.startswith(prefix)]


def test_1_a_good_bundle_is_tried_once_on_the_firmwares_tryboot_then_kept(unit: PiUnit) -> None:
    assert unit.vm.choices == [("2", False)] and unit.slot() == "A"
    console = unit.vm.console()
    assert "pollbox-root-b: made root slot B" in console, console[-3000:]
    assert line_of(unit.autoboot(), "# pollbox-slots") == ["# pollbox-slots A=good B=bad"]
    # RAUC needs slot A's status (the first boot's hash) before it installs
    wait_for(lambda: unit.guest.check("systemctl show -p SubState --value pollbox-slot-status.service").strip()
             == "exited" or None, "the first boot's slot hash recorded for RAUC", SLOT_HASH_DEADLINE)
    start = time.monotonic()
    rc, said = unit.update("good")
    unit.times["install_good_s"] = round(time.monotonic() - start, 1)
    assert rc == 0, said
    autoboot = unit.autoboot()
    assert line_of(autoboot, "# pollbox-slots") == ["# pollbox-slots A=good B=trial"], autoboot
    assert line_of(autoboot, "boot_partition=") == ["boot_partition=2", "boot_partition=3"], autoboot
    start = time.monotonic()
    ended = unit.restart()
    assert TRYBOOT_LINE in ended, ended[-3000:]
    unit.power_on()
    assert unit.vm.choices[-1] == ("3", True)
    unit.ready()
    unit.times["restart_to_ready_on_trial_s"] = round(time.monotonic() - start, 1)
    assert unit.slot() == "B"
    wait_for(lambda: "# pollbox-slots A=good B=good" in unit.autoboot() or None, "slot B kept after READY",
             ARM64_BOOT_DEADLINE)
    autoboot = unit.autoboot()
    assert line_of(autoboot, "boot_partition=") == ["boot_partition=3", "boot_partition=2"], autoboot
    status = json.loads(unit.guest.check("rauc status --output-format=json", timeout=300))
    assert status["booted"] == "B", status


def test_2_a_bundle_that_never_becomes_ready_is_tried_once_and_the_unit_comes_back_on_b(unit: PiUnit) -> None:
    assert unit.slot() == "B"
    start = time.monotonic()
    rc, said = unit.update("never-ready")
    unit.times["install_never_ready_s"] = round(time.monotonic() - start, 1)
    assert rc == 0, said
    assert line_of(unit.autoboot(), "# pollbox-slots") == ["# pollbox-slots A=trial B=good"]
    ended = unit.restart()
    assert TRYBOOT_LINE in ended, ended[-3000:]
    start = time.monotonic()
    unit.power_on()
    assert unit.vm.choices[-1] == ("2", True)
    ended = unit.wait_for_exit(TRIAL_END_DEADLINE, "the trial timeout restarting the never-ready trial")
    unit.times["trial_power_on_to_restart_s"] = round(time.monotonic() - start, 1)
    assert "slot A was booted on trial and the appliance never became ready" in ended, ended[-3000:]
    assert RESTART_LINE in ended and TRYBOOT_LINE not in ended, ended[-3000:]
    unit.power_on()
    assert unit.vm.choices[-1] == ("3", False)
    unit.ready()
    assert unit.slot() == "B"
    autoboot = unit.autoboot()
    assert line_of(autoboot, "# pollbox-slots") == ["# pollbox-slots A=bad B=good"], autoboot
    assert line_of(autoboot, "boot_partition=") == ["boot_partition=3", "boot_partition=3"], autoboot
