"""The Raspberry Pi's RAUC boot backend (``rauc-bootloader-tryboot``) on the file systems it writes.

The script is run as RAUC and the image's units run it (``set-state``, ``set-primary``, ``get-primary``,
``get-state``, ``bless``, ``trial-timeout``). Where the host's kernel mounts FAT (and the tests run as
root) its file systems are FAT file systems made by ``mkfs.vfat`` and loop-mounted as the unit mounts
them: the boot control partition read-only (the script remounts it to write ``autoboot.txt``), the two
boot partitions read-write. Elsewhere (a container without the vfat module) they are plain folders, as
in the amd64 backend's tests: the script's logic is the same, FAT's own behaviour is then not exercised.
``systemctl`` is a recorded fake on the script's path (``is-active`` answers as the test says,
``reboot`` is written down). What the Pi's firmware does with ``autoboot.txt`` (the ``[all]``
section's ``boot_partition`` normally, the ``[tryboot]`` section's once after ``reboot "0 tryboot"``)
is played by ``firmware_boots`` here; no Raspberry Pi runs in these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RECIPE = Path(__file__).resolve().parents[2] / "provisioning/image/debian"
SCRIPT = RECIPE / "pi/rauc/usr/lib/pollbox/rauc-bootloader-tryboot"
AUTOBOOT = RECIPE / "pi/autoboot.txt"
DISK_ID = "9011b0c5"
"""The image's MBR disk identifier, as build.sh writes it into the script."""
CMDLINE = (RECIPE / "pi/cmdline.txt").read_text().replace("@DISKID@", DISK_ID)
BOOT_FILES = ("start.elf", "fixup.dat", "start4.elf", "fixup4.dat", "vmlinuz", "initrd.img", "config.txt")


def host_mounts_fat(folder: Path) -> bool:
    """Whether a FAT file system can be loop-mounted here (root, mkfs.vfat, a kernel with vfat): tried."""
    path = f"{os.environ['PATH']}:/usr/sbin:/sbin"
    if os.geteuid() != 0 or shutil.which("mkfs.vfat", path=path) is None:
        return False
    image, point = folder / "probe.img", folder / "probe"
    point.mkdir()
    env = {**os.environ, "PATH": path}
    subprocess.run(["mkfs.vfat", "-C", str(image), "1024"], check=True, capture_output=True, env=env)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(point)], capture_output=True, env=env).returncode == 0
    if mounted:
        subprocess.run(["umount", str(point)], check=True, env=env)
    image.unlink()
    point.rmdir()
    return mounted


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PATH": f"{os.environ['PATH']}:/usr/sbin:/sbin"})


@dataclass
class Rig:
    """The three FAT file systems, mounted; the script as build.sh installs it; a fake systemctl."""

    root: Path
    script: Path
    control: Path
    boot: dict[str, Path]
    run: Path
    cmdline: Path
    calls: Path
    active: Path
    fat: bool
    """The three are mounted FAT file systems (else folders)."""

    def reset(self, autoboot: str | None = None) -> None:
        """The card as flashed: autoboot.txt booting slot A, boot-a written, boot-b empty."""
        self.writable(True)
        for folder in (self.control, *self.boot.values()):
            for entry in folder.iterdir():
                entry.unlink()
        if autoboot is None:
            autoboot = AUTOBOOT.read_text()
        (self.control / "autoboot.txt").write_text(autoboot)
        self.writable(False)
        self.write_boot("A", CMDLINE)
        shutil.rmtree(self.run, ignore_errors=True)
        self.calls.write_text("")
        self.booted("A")
        self.active.write_text("inactive")

    def write_boot(self, slot: str, cmdline: str) -> None:
        """A boot partition as RAUC writes it from a bundle: the firmware, kernel and the bundle's cmdline.txt."""
        for name in BOOT_FILES:
            (self.boot[slot] / name).write_text(f"{name} of the bundle")
        (self.boot[slot] / "cmdline.txt").write_text(cmdline)

    def booted(self, slot: str) -> None:
        self.cmdline.write_text(f"console=ttyS1 rauc.slot={slot} ro\n")

    def backend(self, *words: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}:/usr/sbin:/sbin",
               "POLLBOX_BOOT_CONTROL": str(self.control), "POLLBOX_BOOT_A": str(self.boot["A"]),
               "POLLBOX_BOOT_B": str(self.boot["B"]), "POLLBOX_RUN": str(self.run),
               "POLLBOX_CMDLINE": str(self.cmdline), "FAKE_SYSTEMCTL_CALLS": str(self.calls),
               "FAKE_SYSTEMCTL_ACTIVE": str(self.active)}
        done = subprocess.run(["sh", str(self.script), *words], capture_output=True, text=True, check=False, env=env)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def refused(self, *words: str) -> str:
        """The command fails with its reason, and neither autoboot.txt nor a boot partition changed."""
        before = self.snapshot()
        done = self.backend(*words, ok=False)
        assert done.returncode == 1 and done.stderr.startswith("rauc-bootloader-tryboot: "), done
        assert self.snapshot() == before
        return done.stderr

    def snapshot(self) -> dict[str, bytes]:
        return {f"{folder.name}/{p.name}": p.read_bytes() for folder in (self.control, *self.boot.values())
                for p in sorted(folder.iterdir())}

    def autoboot(self) -> str:
        return (self.control / "autoboot.txt").read_text()

    def writable(self, rw: bool) -> None:
        """The boot control partition remounted read-write or back read-only (on FAT)."""
        if self.fat:
            sh("mount", "-o", "remount,rw" if rw else "remount,ro", str(self.control))

    def still_read_only(self) -> bool:
        if not self.fat:
            return True
        options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(self.control)], capture_output=True,
                                 text=True, check=True).stdout
        return options.startswith("ro")


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMCTL_CALLS"
case "$1" in
	is-active) [ "$(cat "$FAKE_SYSTEMCTL_ACTIVE")" = active ] ;;
	reboot) exit 0 ;;
	*) exit 1 ;;
esac
"""


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("tryboot")
    script = root / "rauc-bootloader-tryboot"
    script.write_text(SCRIPT.read_text().replace("@DISKID@", DISK_ID))
    (root / "bin").mkdir()
    (root / "bin" / "systemctl").write_text(FAKE_SYSTEMCTL)
    (root / "bin" / "systemctl").chmod(0o755)
    fat = host_mounts_fat(root)
    mounts: list[Path] = []
    points: list[Path] = []
    try:
        for name, label, bits in (("control", "POLLBOXESP", "16"), ("boot-a", "BOOT-A", "32"), ("boot-b", "BOOT-B", "32")):
            point = root / name
            point.mkdir()
            points.append(point)
            if fat:
                # the Pi's boot control partition is 4 MiB; a boot partition 96 MiB (here 40: about FAT32's least)
                image, size_kib = root / f"{name}.img", 4096 if name == "control" else 40 * 1024
                sh("mkfs.vfat", "-C", "-F", bits, "-s", "1", "-n", label, str(image), str(size_kib))
                sh("mount", "-o", "loop,ro" if name == "control" else "loop", str(image), str(point))
                mounts.append(point)
        yield Rig(root, script, points[0], {"A": points[1], "B": points[2]}, root / "run", root / "cmdline",
                  root / "calls", root / "active", fat)
    finally:
        for point in reversed(mounts):
            subprocess.run(["umount", str(point)], check=False)


@pytest.fixture
def rig(mounted: Rig) -> Rig:
    mounted.reset()
    return mounted


def parse(autoboot: str) -> tuple[str, str, dict[str, str]]:
    """The normal and the [tryboot] boot partitions' slots and the slots' states, read independently of the
    script."""
    section, normal, tried, states = "", "", "", {}
    for line in autoboot.splitlines():
        if line.startswith("# pollbox-slots "):
            states = dict(word.split("=") for word in line.split()[2:])
        elif line in ("[all]", "[tryboot]"):
            section = line
        elif line.startswith("boot_partition="):
            slot = {"2": "A", "3": "B"}[line.split("=")[1]]
            if section == "[all]":
                normal = slot
            else:
                tried = slot
    return normal, tried, states


def firmware_boots(autoboot: str, tryboot: bool) -> str:
    """The slot the Pi's firmware boots: with tryboot_a_b=1, the [tryboot] section's partition after
    ``reboot "0 tryboot"``, else the [all] section's (the Pi's documentation, "autoboot.txt")."""
    assert "tryboot_a_b=1" in autoboot.splitlines()
    normal, tried, _ = parse(autoboot)
    return tried if tryboot else normal


def test_a_card_as_flashed_boots_a_with_b_bad(rig: Rig) -> None:
    assert rig.backend("get-primary").stdout.strip() == "A"
    assert rig.backend("get-state", "A").stdout.strip() == "good"
    assert rig.backend("get-state", "B").stdout.strip() == "bad"
    assert firmware_boots(rig.autoboot(), tryboot=False) == firmware_boots(rig.autoboot(), tryboot=True) == "A"


def test_an_update_to_b_is_tried_once_then_kept_after_ready(rig: Rig) -> None:
    rig.backend("set-state", "B", "bad")  # RAUC, before writing slot B
    rig.write_boot("B", CMDLINE)  # RAUC writes boot-b from the bundle: its cmdline.txt names slot A
    rig.backend("set-primary", "B")
    assert parse(rig.autoboot()) == ("A", "B", {"A": "good", "B": "trial"})
    assert rig.still_read_only(), "the boot control partition was left writable"
    cmdline = (rig.boot["B"] / "cmdline.txt").read_text()
    assert f"root=PARTUUID={DISK_ID}-07" in cmdline.split() and "rauc.slot=B" in cmdline.split()
    assert "rauc.slot=A" not in cmdline and cmdline.count("\n") == 1 and "console=ttyS1,115200" in cmdline
    assert (rig.run / "tryboot").read_text().strip() == "B", "the restart would not ask for a tryboot"
    assert (rig.backend("get-primary").stdout.strip(), rig.backend("get-state", "B").stdout.strip()) == ("B", "good")
    # a reset or power cut now boots A; the restart with "0 tryboot" boots B once
    assert firmware_boots(rig.autoboot(), tryboot=False) == "A"
    assert firmware_boots(rig.autoboot(), tryboot=True) == "B"
    rig.booted("B")
    rig.backend("bless")  # pollbox-tryboot-bless.service, after boot-complete.target
    assert parse(rig.autoboot()) == ("B", "A", {"A": "good", "B": "good"})
    assert not (rig.run / "tryboot").exists()
    assert firmware_boots(rig.autoboot(), tryboot=False) == "B"
    assert rig.backend("get-primary").stdout.strip() == "B"
    rig.backend("bless")  # every later boot: nothing to keep
    assert parse(rig.autoboot()) == ("B", "A", {"A": "good", "B": "good"})


def test_a_trial_that_never_becomes_ready_is_ended_and_the_unit_comes_back_on_a(rig: Rig) -> None:
    rig.backend("set-state", "B", "bad")
    rig.write_boot("B", CMDLINE)
    rig.backend("set-primary", "B")
    rig.booted("B")
    rig.backend("trial-timeout")
    assert rig.calls.read_text().splitlines() == ["is-active --quiet boot-complete.target", "reboot"]
    assert parse(rig.autoboot()) == ("A", "A", {"A": "good", "B": "bad"})
    assert not (rig.run / "tryboot").exists(), "the restart would try B again"
    assert firmware_boots(rig.autoboot(), tryboot=True) == "A"


def test_the_trial_timeout_leaves_a_ready_trial_and_a_normal_boot_alone(rig: Rig) -> None:
    rig.backend("trial-timeout")  # booted A, the normal slot
    assert rig.calls.read_text() == ""
    rig.backend("set-state", "B", "bad")
    rig.write_boot("B", CMDLINE)
    rig.backend("set-primary", "B")
    rig.booted("B")
    rig.active.write_text("active")
    before = rig.autoboot()
    rig.backend("trial-timeout")
    assert rig.calls.read_text().splitlines() == ["is-active --quiet boot-complete.target"]
    assert rig.autoboot() == before


def test_updating_back_into_a_after_b_was_kept(rig: Rig) -> None:
    for slot, other in (("B", "A"), ("A", "B")):
        rig.backend("set-state", slot, "bad")
        rig.write_boot(slot, CMDLINE)
        rig.backend("set-primary", slot)
        rig.booted(slot)
        rig.backend("bless")
        assert parse(rig.autoboot()) == (slot, other, {"A": "good", "B": "good"})
    assert f"root=PARTUUID={DISK_ID}-05" in (rig.boot["A"] / "cmdline.txt").read_text().split()


def test_no_file_is_left_beside_autoboot_txt_and_it_stays_within_512_bytes(rig: Rig) -> None:
    rig.backend("set-state", "B", "bad")
    rig.write_boot("B", CMDLINE)
    rig.backend("set-primary", "B")
    assert sorted(p.name for p in rig.control.iterdir()) == ["autoboot.txt"]
    assert sorted(p.name for p in rig.boot["B"].iterdir()) == sorted([*BOOT_FILES, "cmdline.txt"])
    assert len(rig.autoboot().encode()) <= 512


def test_the_slot_the_unit_boots_normally_cannot_be_marked_bad(rig: Rig) -> None:
    assert "slot A is the slot the unit boots normally" in rig.refused("set-state", "A", "bad")


def test_a_slot_whose_boot_partition_was_not_written_whole_is_not_made_primary(rig: Rig) -> None:
    rig.backend("set-state", "B", "bad")
    assert "slot B's boot partition has no start4.elf" in rig.refused("set-primary", "B")
    rig.write_boot("B", CMDLINE)
    (rig.boot["B"] / "initrd.img").unlink()
    assert "has no initrd.img" in rig.refused("set-primary", "B")


@pytest.mark.parametrize(("words", "reason"), [
    (("set-primary", "C"), "unknown slot 'C' (A or B)"),
    (("get-state", "b"), "unknown slot 'b' (A or B)"),
    (("set-state", "B", "fine"), "unknown state 'fine' (good or bad)"),
    (("set-state", "B"), "usage: set-state A|B good|bad"),
    (("reboot",), "usage: get-primary"),
    ((), "usage: get-primary"),
])
def test_bad_words_are_refused(rig: Rig, words: tuple[str, ...], reason: str) -> None:
    assert reason in rig.refused(*words)


GOOD = AUTOBOOT.read_text()


@pytest.mark.parametrize(("autoboot", "reason"), [
    (GOOD + "dtoverlay=vc4\n", "unexpected line: dtoverlay=vc4"),
    (GOOD.replace("tryboot_a_b=1\n", ""), "no tryboot_a_b=1 in [all]"),
    (GOOD.replace("[tryboot]\nboot_partition=2\n", ""), "no boot_partition (2 or 3)"),
    (GOOD.replace("boot_partition=2\n[tryboot]", "boot_partition=4\n[tryboot]"), "unexpected line: boot_partition=4"),
    (GOOD.replace("# pollbox-slots A=good B=bad\n", ""), "no pollbox-slots line"),
    (GOOD.replace("A=good B=bad", "A=good B=maybe"), "pollbox-slots line"),
    (GOOD.replace("A=good B=bad", "A=bad B=bad"), "its normal boot_partition is slot A, marked bad"),
    (GOOD + "boot_partition=3\n", "boot_partition repeated"),
])
def test_a_malformed_autoboot_txt_is_refused_and_left_as_it_is(mounted: Rig, autoboot: str, reason: str) -> None:
    mounted.reset(autoboot)
    for words in (("get-primary",), ("get-state", "B"), ("set-state", "B", "bad"), ("set-primary", "A"), ("bless",)):
        stderr = mounted.refused(*words)
        assert reason in stderr and "nothing changed" in stderr, stderr


def test_a_missing_autoboot_txt_is_refused(rig: Rig) -> None:
    rig.writable(True)
    (rig.control / "autoboot.txt").unlink()
    rig.writable(False)
    for words in (("get-primary",), ("set-state", "B", "good"), ("set-primary", "B")):
        assert "autoboot.txt is missing" in rig.refused(*words)


COMMANDS = st.one_of(
    st.tuples(st.just("set-state"), st.sampled_from("AB"), st.sampled_from(["good", "bad"])),
    st.tuples(st.just("set-primary"), st.sampled_from("AB")),
    st.tuples(st.just("write-boot"), st.sampled_from("AB")),
    st.tuples(st.just("boot"), st.booleans(), st.booleans()),
    st.tuples(st.just("bless")),
    st.tuples(st.just("trial-timeout")),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(COMMANDS, max_size=8))
def test_the_normal_boot_partition_is_always_a_slot_marked_good(mounted: Rig, commands: list[tuple[Any, ...]]) -> None:
    """Whatever RAUC, the units and restarts do in whatever order, the firmware's normal choice is a slot
    marked good, a bad slot is never the one a tryboot restart boots, and a refused command changes
    nothing."""
    mounted.reset()
    for command in commands:
        if command[0] == "write-boot":
            mounted.write_boot(command[1], CMDLINE)
            continue
        if command[0] == "boot":  # a restart, with or without "0 tryboot"; the appliance ready or not
            _, tryboot, ready = command
            mounted.booted(firmware_boots(mounted.autoboot(), tryboot=tryboot))
            mounted.active.write_text("active" if ready else "inactive")
            continue
        before = mounted.snapshot()
        done = mounted.backend(*command, ok=False)
        if done.returncode != 0:
            assert done.stderr.startswith("rauc-bootloader-tryboot: ") and mounted.snapshot() == before, done
        normal, tried, states = parse(mounted.autoboot())
        assert states[normal] == "good", mounted.autoboot()
        assert tried == normal or states[tried] != "bad", mounted.autoboot()
        assert mounted.still_read_only()
