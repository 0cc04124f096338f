"""The pollbox image under QEMU/KVM, seen from outside as a technician would see it.

A ``VirtualMachine`` boots a copy-on-write overlay of the built image (the image itself is never
written) with a virtual USB stick, the i6300esb watchdog, QMP, the serial console in a file and the
chair's screen's port forwarded to 127.0.0.1 only. Waiting is polling with a named deadline.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.demo import ELECTION, make_demo_station
from device.package import sign_package
from protocol.keys import public_b64
from tests.process_station import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "provisioning" / "image" / "debian" / "build.sh"
IMAGE_DIR = REPO / "build" / "image"
TEST_IMAGE_DIR = IMAGE_DIR / "test"
"""The tests' image: built with the test CEC key as its trust anchor, so it never replaces ``make image``'s."""
TEST_CEC = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"pollbox image tests: the test CEC key").digest())
"""The CEC key of the tests' image (derived from a fixed phrase: it signs test packages and nothing else)."""
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BOOT_DEADLINE = {"kvm": 180.0, "tcg": 900.0}
"""How long a boot may take until the chair's screen answers (firmware, kernel, first-boot import), by
accelerator: software emulation (tcg) is many times slower than KVM."""
IMAGE_TEST_TIMEOUT = 2400
"""pytest-timeout for a boot test: a cold image build (minutes on a busy 2-core host) plus its boots
under software emulation; a hang still fails instead of stalling the run."""
POLL_EVERY = 0.25
"""How often a waited-for condition is looked at again."""
BOOT_STALL = {"kvm": 60.0, "tcg": 240.0}
"""How long, by accelerator, the serial console of a boot that has not reached user space yet may stay
unchanged before the boot counts as stalled (``VirtualMachine.check_progress``): a normal boot writes
to it every few seconds until systemd starts (the firmware's lines, then the kernel's; its longest
quiet spell, waiting for the root device, about 12 s under emulation)."""
BOOT_STAGES = (("kernel", "Linux version"), ("user space", "systemd[1]:"))
"""How far a boot came, by the first serial console line of each stage (before them: the firmware)."""
HANG_SAMPLES = 4
"""Looks at the CPUs of a machine that does not boot (``VirtualMachine.hang_report``)."""
HANG_SAMPLE_GAP = 1.0
"""Seconds between those looks: a loop shows itself as the same few addresses."""
MIB = 1 << 20
MEMORY = 1536 * MIB
"""The unit's RAM (amd64)."""
FIRMWARE_RAM = ((0x800000, 0xE00000), (MEMORY - 64 * MIB, 64 * MIB))
"""(start, length) of the RAM the amd64 firmware (OVMF) writes first at every boot, cleared at each reset
under emulation (``firmware_ram_loaders``): its early work areas, the SEC/PEI stack and
the decompressed PEI and DXE volumes (8 to 22 MiB), and the top 64 MiB, where PEI places its permanent
memory and DXE loads its core and drivers."""
T = TypeVar("T")


class StalledBoot(AssertionError):
    """A boot whose serial console stopped changing before user space (``VirtualMachine.check_progress``)."""


def boot_stage(console: str) -> str:
    """How far the boot whose serial console is ``console`` came: firmware, kernel or user space."""
    reached = "firmware"
    for stage, first_line in BOOT_STAGES:
        if first_line in console:
            reached = stage
    return reached


def tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def test_image_settings() -> dict[str, str]:
    """The build environment of the tests' image: the test CEC key and the demo election as its trust
    anchor, simulated stations accepted (the tests drive simulated hardware), and the first-boot screen
    listening on the virtual machine's own network so that QEMU's port forwarding reaches it. The build
    cache is build.sh's per-user one (or ``POLLBOX_IMAGE_CACHE``), shared with every other clone."""
    return {"POLLBOX_ELECTION_ID": ELECTION, "POLLBOX_CEC_PUBLIC_KEY": public_b64(TEST_CEC.public_key()),
            "POLLBOX_ALLOW_SIMULATION": "1", "POLLBOX_SCREEN_HOST": "0.0.0.0"}


def image_cache() -> Path:
    """build.sh's build cache (Debian packages, wheels, the Debian system, finished images):
    ``POLLBOX_IMAGE_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/pollbox/image``."""
    given = os.environ.get("POLLBOX_IMAGE_CACHE", "")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME", "") or Path.home() / ".cache") / "pollbox" / "image"


def _build_sh_says(option: str, arch: str, env: dict[str, str] | None) -> str:
    """What ``build.sh OPTION ARCH`` prints (one of its options that builds nothing) for ``env``."""
    done = subprocess.run(["bash", str(BUILD), option, arch], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise AssertionError(f"build.sh {option} {arch} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def cache_name(arch: str = "amd64", env: dict[str, str] | None = None) -> str:
    """The name the build cache's entries for ``arch`` carry (``SUITE-ARCH``: the Debian system
    ``base-NAME-KEY``, ``wheels-NAME``, ``debs-NAME``), as build.sh gives it for the suite of ``env`` (default:
    this process's environment)."""
    return _build_sh_says("--cache-name", arch, env)


def base_key(arch: str = "amd64", env: dict[str, str] | None = None) -> str:
    """The key of the Debian system this checkout's recipe builds ``arch``'s image on (the KEY of the
    build cache's ``base-NAME-KEY``), as build.sh gives it for ``env``."""
    return _build_sh_says("--base-key", arch, env)


def build_image(arch: str = "amd64", out: Path = TEST_IMAGE_DIR) -> Path:
    """Build the tests' image into ``out`` unless it is up to date or in the build cache; its path."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["bash", str(BUILD), arch, str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, **test_image_settings()})
    if done.returncode != 0:
        raise AssertionError(f"the {arch} image build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return out / f"pollbox-{arch}.img"


def second_uart(socket_path: Path) -> list[str]:
    """QEMU arguments for a second serial port, the guest's ``/dev/ttyS1`` (a 16550 UART), whose other end
    is a Unix socket QEMU listens on at ``socket_path``: the host connects to it as the device on the
    line (a serial scanner, the smart box). Bytes the guest sends while nothing is connected are lost,
    as on an unplugged cable. Pass it as ``VirtualMachine.extra`` (or ``boot_probed_unit(extra=)``)."""
    return ["-chardev", f"socket,id=ttyS1,path={socket_path},server=on,wait=off", "-serial", "chardev:ttyS1"]


def uarts(*socket_paths: Path) -> list[str]:
    """QEMU arguments for more serial ports, one for each of ``socket_paths`` in order: the guest's
    ``/dev/ttyS1``, ``/dev/ttyS2``, ... (16550 UARTs), each on a Unix socket QEMU listens on, as in
    ``second_uart``."""
    args: list[str] = []
    for number, path in enumerate(socket_paths, start=1):
        args += ["-chardev", f"socket,id=ttyS{number},path={path},server=on,wait=off", "-serial", f"chardev:ttyS{number}"]
    return args


def wait_for(condition: Callable[[], T | None], what: str, deadline: float) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(POLL_EVERY)
    raise AssertionError(f"{what}: not within {deadline:.0f} s")


def run(command: list[str]) -> str:
    """Run a host tool; its output, or a failure that shows what it said."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def partitions(image: Path) -> dict[str, tuple[int, int]]:
    """The image's partitions by name: (first byte, the byte after the last)."""
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return {p["name"]: (p["start"] * sector, (p["start"] + p["size"]) * sector) for p in table["partitions"]}


def disk_partitions(disk: Path) -> dict[str, tuple[int, int]]:
    """The partitions of a (stopped) virtual disk as the unit left them: its own table, grown or not."""
    raw = disk.with_name(disk.name + ".table")
    try:
        run(["qemu-img", "dd", "-U", "-O", "raw", f"if={disk}", f"of={raw}", "bs=1M", "count=1"])
        # the table's first copy with the disk's size (sparse): sfdisk checks GPT against the device's end
        size = json.loads(run(["qemu-img", "info", "-U", "--output=json", str(disk)]))["virtual-size"]
        os.truncate(raw, int(size))
        table = json.loads(run(["sfdisk", "--json", str(raw)]))["partitiontable"]
    finally:
        raw.unlink(missing_ok=True)
    sector = int(table.get("sectorsize", 512))
    return {p["name"]: (p["start"] * sector, (p["start"] + p["size"]) * sector) for p in table["partitions"]}


def extract_partition(disk: Path, partition: tuple[int, int], dest: Path) -> Path:
    """Copy one partition of the (stopped) virtual disk into the file ``dest`` (a byte range of the disk
    read through QEMU's raw driver, so the copy-on-write overlay and its backing image are read as one)."""
    start, end = partition
    assert "," not in str(disk), disk  # a comma would end the option string
    run(["qemu-img", "convert", "-U", "-O", "raw", "--image-opts",
         f"driver=raw,offset={start},size={end - start},file.driver=qcow2,file.file.filename={disk}", str(dest)])
    return dest


def filesystem_bytes(part: Path) -> int:
    """The size of the ext4 file system in a partition file (block count times block size)."""
    header = run(["dumpe2fs", "-h", str(part)])
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    return int(fields["Block count"].strip()) * int(fields["Block size"].strip())


def data_listing(disk: Path, workdir: Path) -> list[str]:
    """The names in the top folder of the data partition of the (stopped) virtual disk."""
    part = extract_partition(disk, disk_partitions(disk)["data"], workdir / "data-listing.img")
    try:
        subprocess.run(["e2fsck", "-fy", str(part)], capture_output=True)
        listing = run(["debugfs", "-R", "ls -p /", str(part)])
    finally:
        part.unlink(missing_ok=True)
    names = [line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6]
    return [n for n in names if n not in (".", "..", "lost+found")]


def written_ranges(disk: Path) -> list[tuple[int, int]]:
    """The byte ranges the virtual machine has written: the overlay's own clusters (depth 0)."""
    entries = json.loads(run(["qemu-img", "map", "-U", "--output=json", str(disk)]))
    return [(e["start"], e["start"] + e["length"]) for e in entries if e["depth"] == 0]


def pull_folder(disk: Path, partition: tuple[int, int], folder: str, dest: Path) -> Path:
    """Copy ``folder`` out of the ext4 file system in ``partition`` of the (stopped) virtual disk."""
    scratch = dest.parent / f"{dest.name}.scratch"
    scratch.mkdir(parents=True)
    part = extract_partition(disk, partition, scratch / "part.img")  # that partition only, not the whole disk
    # After a power cut the file system's own journal holds the last commits: replay it, as the unit's
    # next mount would (e2fsck: 0 clean, 1 or 2 fixed; 4 and above are errors left).
    fsck = subprocess.run(["e2fsck", "-fy", str(part)], capture_output=True, text=True)
    assert fsck.returncode < 4, f"the data partition has errors after the cut: {fsck.stdout[-1500:]}"
    dest.mkdir(parents=True, exist_ok=True)
    said = subprocess.run(["debugfs", "-R", f"rdump {folder} {dest}", str(part)], capture_output=True, text=True)
    pulled = dest / Path(folder).name
    assert pulled.is_dir(), f"debugfs could not copy {folder} off the partition: {said.stderr.strip()[-1000:]}"
    shutil.rmtree(scratch)
    return pulled


def accelerator() -> str:
    """``kvm`` where /dev/kvm runs ordinary guests, else ``tcg`` (QEMU's software emulation).

    A host whose /dev/kvm is kvm-pvm (a paravirtual KVM inside some cloud sandboxes) runs only guest
    kernels built for PVM: Debian's stock kernel hangs there right after the boot loader.
    ``POLLBOX_VM_ACCEL`` overrides the choice.
    """
    forced = os.environ.get("POLLBOX_VM_ACCEL", "")
    if forced:
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or Path("/sys/module/kvm_pvm").exists():
        return "tcg"
    return "kvm"


STICK_FILES = ("station.toml", "station-package.json", "data/device.key", "data/device.pub", "data/list.key",
               "data/web/chair_pin.json")
"""What a station stick carries: the config, the signed package and the unit's keys (no journal)."""


def demo_station(workdir: Path, voters: int = 50) -> Path:
    """A demo station folder whose package the tests' image accepts (signed with ``TEST_CEC``).

    The station's screen listens on every address of the virtual machine so that QEMU's port
    forwarding reaches it (``allow_remote``: the virtual network is QEMU's own); it still answers only
    under the loopback names (its Host check).
    """
    station = make_demo_station(workdir / "station", voters=voters).parent
    toml = station / "station.toml"
    text = toml.read_text()
    assert 'host = "127.0.0.1"' in text
    package = station / "station-package.json"
    payload = json.loads(package.read_bytes())["payload"]
    package.write_bytes(sign_package(payload, TEST_CEC))
    own_key = re.search(r'cec_public_key = "([^"]+)"', text)
    assert own_key, text
    text = text.replace(own_key.group(1), public_b64(TEST_CEC.public_key()))
    toml.write_text(text.replace('host = "127.0.0.1"', 'host = "0.0.0.0"\nallow_remote = true'))
    return station


def write_stick(stick: Path, station: Path, names: tuple[str, ...] = STICK_FILES) -> Path:
    """A FAT stick image labelled POLLBOXUSB holding ``names`` of ``station`` under station/."""
    run(["mkfs.vfat", "-C", "-n", "POLLBOXUSB", str(stick), "32768"])
    folders = sorted({str(Path("station", name).parent) for name in names} | {"station"}, key=len)
    for folder in folders:
        for depth in range(1, len(Path(folder).parts) + 1):
            part = "/".join(Path(folder).parts[:depth])
            subprocess.run(["mmd", "-D", "s", "-i", str(stick), f"::/{part}"], capture_output=True)
    for name in names:
        run(["mcopy", "-i", str(stick), str(station / name), f"::/station/{name}"])
    return stick


def make_stick(workdir: Path, voters: int = 50) -> tuple[Path, Path]:
    """A demo station on a FAT stick labelled POLLBOXUSB; (the stick image, the station folder on the host)."""
    station = demo_station(workdir, voters)
    return write_stick(workdir / "stick.img", station), station


def firmware_ram_loaders(folder: Path) -> list[str]:
    """QEMU arguments that write zeros over ``FIRMWARE_RAM`` at every power-on and reset (QEMU's
    generic loader, whose data is written again at each reset before the firmware runs; the files
    of zeros are made in ``folder``).

    Why, under emulation only: QEMU 7.2's software emulation keeps the code it translated for the
    previous boot across ``system_reset``. The next boot's firmware then writes over RAM where that
    code ran, and each store to a page still holding such code takes the emulator's slow path for
    modified code: OVMF's decompression of its DXE volume, sampled on a
    machine that showed nothing for minutes, advanced about 350 bytes a second. A write by the
    loader at the reset drops those translations a page at a time, so the firmware runs at its
    cold-start speed. What the guest sees: the regions the firmware overwrites first hold zeros, as
    at power-on; the rest of RAM keeps the previous boot's content, as in any warm reset
    (docs/image.md, "Resets under emulation")."""
    args: list[str] = []
    for number, (start, length) in enumerate(FIRMWARE_RAM):
        zeros = folder / f"firmware-ram-{number}.zero"
        with zeros.open("wb") as out:
            out.truncate(length)
        args += ["-device", f"loader,file={zeros},addr={start:#x},force-raw=on"]
    return args


class VirtualMachine:
    """One pollbox unit: its own disk overlay and firmware variables, started and killed at will.

    ``station`` is the host's copy of the station on its stick (config, package, keys).
    """

    def __init__(self, workdir: Path, image: Path, stick: Path, station: Path, disk_size: int | None = None) -> None:
        self.workdir = workdir
        self.station = station
        self.disk = workdir / "disk.qcow2"
        self.vars = workdir / "OVMF_VARS.fd"
        self.serial = workdir / "serial.log"
        self.debugcon = workdir / "debugcon.log"
        """OVMF's debug console (the ISA debug port 0x402), amd64 only: where a firmware that never reaches
        the serial console still says how far it came."""
        self.stick = stick
        self.port = free_port()
        self.ssh_port = free_port()
        """The host's end of the guest's SSH port (22), forwarded like the screen's: the image runs no SSH
        server, and a test checks that nothing answers there."""
        self.accel = accelerator()
        self.boots = 0
        self.started_at = 0.0
        self.ready_after: list[float] = []
        """Seconds from power-on to systemd's "Started pollbox.service" (after READY=1), per boot."""
        self.process: subprocess.Popen[bytes] | None = None
        self.clear_firmware_ram = True
        """Under emulation, whether each reset clears ``FIRMWARE_RAM`` (``firmware_ram_loaders``); off
        only to measure what that changes (``tests.image.reset_loop --keep-ram``)."""
        self.extra: list[str] = []
        """More QEMU arguments, appended to ``command()`` (test rigs add devices such as serial lines)."""
        # The unit's own copy of the image: a rebuild meanwhile must not change the disk under a reboot.
        self.image = workdir / image.name
        run(["cp", "--sparse=always", "--reflink=auto", str(image), str(self.image)])
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image), str(self.disk)])
        if disk_size is not None:  # a larger card or disk than the image: the data partition grows into it
            run(["qemu-img", "resize", "-q", str(self.disk), str(disk_size)])
        shutil.copyfile(OVMF_VARS, self.vars)

    def command(self) -> list[str]:
        return [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "kvm" if self.accel == "kvm" else "tcg,thread=multi",
            # every CPU feature QEMU can emulate: Chromium needs more than the default qemu64 model has
            "-cpu", "host" if self.accel == "kvm" else "max", "-m", str(MEMORY // MIB), "-smp", "2",
            # virtio-gpu: the kiosk's compositor (wlroots) needs a DRM device that imports PRIME buffers,
            # which the std VGA's bochs driver does not
            "-nodefaults", "-display", "none", "-vga", "virtio",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={self.vars}",
            "-drive", f"if=virtio,format=qcow2,file={self.disk}",
            "-debugcon", f"file:{self.debugcon}", "-global", "isa-debugcon.iobase=0x402",
            *(firmware_ram_loaders(self.workdir) if self.accel == "tcg" and self.clear_firmware_ram else []),
            *self.unit_devices(),
        ]

    def unit_devices(self) -> list[str]:
        """What every unit has whatever its machine (amd64 here, arm64 in ``test_arm64``): the serial
        console in a file, QMP, the station stick (read-only USB storage on xHCI), the network card on
        QEMU's user-mode network with the chair's screen (8080) and the SSH port (22) forwarded to
        127.0.0.1 only, the i6300esb watchdog, and ``extra``."""
        return [
            "-serial", f"file:{self.serial}",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
            "-device", "qemu-xhci",
            "-drive", f"if=none,id=stick,format=raw,readonly=on,file={self.stick}",
            "-device", "usb-storage,drive=stick,removable=on",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:8080,"
                       f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "i6300esb",
            *self.extra,
        ]

    def start(self) -> None:
        """Power on; the serial console of this boot starts an empty file."""
        self.serial.write_bytes(b"")
        self.debugcon.write_bytes(b"")
        self.started_at = time.monotonic()
        with (self.workdir / "qemu.log").open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=log)
        self.boots += 1

    def power_cut(self) -> None:
        """Pull the plug: QEMU is killed with SIGKILL, nothing in the guest gets a chance to flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def reset(self) -> None:
        """Pull the reset line (QMP ``system_reset``): the machine restarts at once, nothing in the guest
        gets a chance to flush; QEMU, its disk and its console file stay. The console starts over for the
        new boot (the file is emptied; QEMU goes on writing at its offset, after a hole of NULs)."""
        self.qmp("system_reset")
        self.serial.write_bytes(b"")
        self.debugcon.write_bytes(b"")
        self.started_at = time.monotonic()
        self.boots += 1

    def ensure_running(self) -> None:
        """Power on if a previous check left the unit off."""
        if not self.running():
            self.start()

    def console(self) -> str:
        """This boot's serial console, without colours."""
        # (without the NULs a console file emptied under a running QEMU starts with: ``reset``)
        return re.sub(r"\x1b\[[0-9;]*m", "", self.serial.read_text(errors="replace")).replace("\x00", "")

    def debug_console(self) -> str:
        """This boot's firmware debug console (empty where the firmware writes nothing there)."""
        if not self.debugcon.exists():
            return ""
        return self.debugcon.read_text(errors="replace").replace("\x00", "")

    def hang_report(self, samples: int = HANG_SAMPLES) -> str:
        """Where a machine that does not boot is: ``samples`` looks, ``HANG_SAMPLE_GAP`` apart, at each
        CPU's state (QEMU's monitor: ``info cpus``, the registers, the instructions at its program
        counter), then the tail of the firmware's debug console and of the serial console, and in short
        QEMU's own status (``info status``: running, or paused after a disk error) and how far the boot came."""
        parts: list[str] = []
        try:
            status = self.monitor("info status").strip()
        except (AssertionError, OSError, ValueError) as exc:
            status = f"the monitor did not answer: {exc}"
        for sample in range(1, samples + 1):
            try:
                parts.append(f"-- sample {sample}: info cpus\n{self.monitor('info cpus')}"
                             f"-- info jit (translated code: counts of blocks, invalidations, flushes)\n"
                             f"{self.monitor('info jit')}")
                for cpu in range(self.cpus()):
                    parts.append(f"-- sample {sample}, cpu {cpu}\n{self.monitor('info registers', cpu)}"
                                 f"{self.monitor('x/8i $pc', cpu)}")
            except (AssertionError, OSError, ValueError) as exc:
                parts.append(f"-- sample {sample}: the monitor did not answer: {exc}")
                break
            if sample < samples:
                time.sleep(HANG_SAMPLE_GAP)
        parts.append(f"-- the firmware's debug console, last lines:\n{tail(self.debug_console(), 40)}")
        console = self.console()
        parts.append(f"-- the serial console, last lines:\n{tail(console, 20)}")
        parts.append(f"-- in short: QEMU says {status!r}; {time.monotonic() - self.started_at:.0f} s since "
                     f"power-on; the boot reached the {boot_stage(console)} ({len(console.splitlines())} console "
                     f"lines, the last change {self.console_quiet():.0f} s ago)")
        return "\n".join(parts)

    def check_progress(self, stall: float) -> None:
        """Raise ``StalledBoot`` when this boot has not reached user space and its serial console has not
        changed for ``stall`` seconds; called by each look of a wait for the booting machine."""
        quiet = self.console_quiet()
        if quiet < stall:
            return
        stage = boot_stage(self.console())
        if stage != "user space":
            raise StalledBoot(f"boot {self.boots}: stalled in the {stage}, the serial console unchanged for "
                              f"{quiet:.0f} s")

    def console_quiet(self) -> float:
        """Seconds since the serial console last changed (QEMU's last write, or the power-on or reset that
        emptied it)."""
        return time.time() - self.serial.stat().st_mtime

    def stopped_report(self) -> str:
        """Why a wait ended early: QEMU stopped. What it wrote (its log) and the end of the serial console."""
        log = self.workdir / "qemu.log"
        return (f"QEMU stopped (exit status {self.process.returncode if self.process else '?'}): "
                f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}\n"
                f"-- the serial console, last lines:\n{tail(self.console(), 20)}")

    def not_booted(self, exc: AssertionError) -> AssertionError:
        """A wait for this machine, still running, that failed (``exc``), told with where the machine is
        (``hang_report``), which is also kept as ``hang-boot-N.txt`` in the work folder. (A wait that saw
        QEMU stop failed with ``stopped_report`` already.)"""
        report = self.hang_report()
        (self.workdir / f"hang-boot-{self.boots}.txt").write_text(report)
        return type(exc)(f"{exc}\nwhere the machine is:\n{report}")

    def cpus(self) -> int:
        command = self.command()
        return int(command[command.index("-smp") + 1].split(",")[0]) if "-smp" in command else 1

    def monitor(self, line: str, cpu: int | None = None) -> str:
        """One command of QEMU's human monitor (through QMP), on CPU ``cpu`` where given; its text."""
        arguments: dict[str, Any] = {"command-line": line}
        if cpu is not None:
            arguments["cpu-index"] = cpu
        return str(self.qmp("human-monitor-command", **arguments))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self) -> dict[str, Any] | None:
        """The appliance's status from the chair's screen, or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url("/api/status"), timeout=5) as answer:
                return dict(json.load(answer)["status"])
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None

    def wait_until_ready(self) -> dict[str, Any]:
        """Until systemd has reported pollbox.service started (after READY=1) and the screen answers."""
        def ready() -> dict[str, Any] | None:
            if not self.running():
                raise AssertionError(self.stopped_report())
            if "Started pollbox.service" not in self.console():
                return None
            if len(self.ready_after) < self.boots:
                self.ready_after.append(round(time.monotonic() - self.started_at, 1))
                (self.workdir / "boot-times.json").write_text(json.dumps(self.ready_after))
            return self.status()
        try:
            return wait_for(ready, f"boot {self.boots}: pollbox.service started and the screen answering",
                            BOOT_DEADLINE[self.accel])
        except AssertionError as exc:
            if not self.running():
                raise
            raise self.not_booted(exc) from None

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command on this machine's monitor socket; its ``return`` value."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(60)
            sock.connect(str(self.workdir / "qmp.sock"))
            stream = sock.makefile("rw")
            json.loads(stream.readline())  # the greeting
            for message in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                stream.write(json.dumps(message) + "\n")
                stream.flush()
                while True:
                    answer = json.loads(stream.readline())
                    if "event" not in answer:
                        break
                if "error" in answer:
                    raise AssertionError(f"QMP {message['execute']}: {answer['error']}")
            return answer.get("return")

    def wait_for_screen(self, expected: str, deadline: float | None = None) -> float:
        """Until the display shows ``expected`` (``screen.classify``); seconds from power-on to that frame.

        The frames looked at are kept: the last one as ``screen-<expected>.ppm`` in the work folder.
        """
        from .screen import classify
        frame = self.workdir / f"screen-{expected}.ppm"
        seen: list[str] = []

        def shown() -> float | None:
            if not self.running():
                raise AssertionError(self.stopped_report())
            what = classify(self.screendump(frame))
            seen.append(what)
            return round(time.monotonic() - self.started_at, 1) if what == expected else None
        try:
            return wait_for(shown, f"boot {self.boots}: the kiosk showing the {expected} screen",
                            deadline or BOOT_DEADLINE[self.accel])
        except AssertionError as exc:
            raise AssertionError(f"{exc}; frames seen: {seen[-12:]}") from None

    def screendump(self, dest: Path) -> Path:
        """What the unit's display shows now, as a PPM file (QMP ``screendump``)."""
        dest.unlink(missing_ok=True)
        self.qmp("screendump", filename=str(dest))
        return dest

    def shut_down(self) -> None:
        """An orderly shutdown: the power button (ACPI), as a technician presses it; QEMU exits at power-off."""
        self.qmp("system_powerdown")
        wait_for(lambda: not self.running(), f"boot {self.boots}: the unit powered off after the power button",
                 BOOT_DEADLINE[self.accel])
        self.process = None

    def stop(self) -> None:
        if self.running():
            self.power_cut()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as it is (an HTTPError with its code) instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class DevPanel:
    """The screen's simulator panel (/dev) through the forwarded port: what a person does to the hardware."""

    def __init__(self, vm: VirtualMachine, timeout: float = 10.0) -> None:
        self.vm = vm
        self.timeout = timeout
        """Seconds one request may take (an emulated unit on a loaded host answers slowly)."""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  NoRedirect())
        self.token = ""

    def page(self) -> str:
        with self.opener.open(self.vm.url("/dev"), timeout=self.timeout) as answer:
            text: str = answer.read().decode()
        found = re.search(r'name="csrf_token" value="([^"]+)"', text)
        assert found, "the simulator panel has no form token"
        self.token = found.group(1)
        return text

    def act(self, action: str) -> None:
        """Do ``action``; the panel answers a done action with 303 (back to the panel), not followed here."""
        self.submit(f"/dev/{action}")

    def submit(self, path: str, fields: dict[str, str] | None = None) -> None:
        """POST a form of the screen (``/dev/scan``, ``/chair/login``, ...) with this session's form token;
        a done action is answered with 303, anything else fails with the answer's code."""
        if not self.token:
            self.page()
        body = urllib.parse.urlencode({"csrf_token": self.token, **(fields or {})}).encode()
        try:
            self.opener.open(self.vm.url(path), data=body, timeout=self.timeout).close()
        except urllib.error.HTTPError as answer:
            assert answer.code == 303, f"{path}: HTTP {answer.code}"
            answer.close()
        else:
            raise AssertionError(f"{path} was not answered with a redirect")

    def get(self, path: str) -> str:
        """GET a page of the screen in this session (a chair's page after ``/chair/login``)."""
        with self.opener.open(self.vm.url(path), timeout=self.timeout) as answer:
            text: str = answer.read().decode()
        return text
