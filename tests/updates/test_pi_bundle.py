"""Bundles for the Raspberry Pi: the root and the boot partition, made and read with the real tools.

A ``pollbox-rpi`` bundle carries two images, ``rootfs`` and ``boot``; the Pi's RAUC config (the image
recipe's ``pi/rauc/etc/rauc/system.conf``, with its placeholders filled as build.sh fills them) gives
each root slot its boot partition as a child slot, so RAUC writes both into the slot it installs.
Here RAUC 1.8 reads that config and the bundle (``rauc info``); the install itself runs on a unit only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from device.updates.rauc import RaucUpdater
from provisioning.bundle import BundleError, main, make_bundle
from tests.updates.kit import UpdateKit, make_kit, needs_rauc

pytestmark = needs_rauc
RECIPE = Path(__file__).resolve().parents[2] / "provisioning/image/debian"
PATH = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> UpdateKit:
    return make_kit(tmp_path_factory.mktemp("pi-kit"))


def pi_system_conf(kit: UpdateKit, folder: Path) -> Path:
    """The Pi image's system.conf as build.sh writes it, its devices files here and its keyring the kit's CA."""
    conf = (RECIPE / "pi/rauc/etc/rauc/system.conf").read_text()
    conf = conf.replace("@COMPATIBLE@", "pollbox-rpi").replace("/etc/rauc/keyring.pem", str(kit.ca))
    for number in ("02", "03", "05", "07"):
        device = folder / f"part-{number}"
        device.write_bytes(b"")
        conf = conf.replace(f"/dev/disk/by-partuuid/@DISKID@-{number}", str(device))
    assert "@" not in conf
    path = folder / "system.conf"
    path.write_text(conf)
    return path


def pi_disk(kit: UpdateKit, folder: Path) -> tuple[Path, bytes, bytes]:
    """An MBR disk laid out as build.sh lays out the Pi's (control, boot-a, boot-b, extended: root-a, data)."""
    root, boot = kit.root_fs("pi-root.ext4").read_bytes(), kit.boot_fs("pi-boot.vfat").read_bytes()
    mib = 1 << 20
    disk = folder / "pollbox-arm64.img"
    disk.write_bytes(b"\0" * 16 * mib)
    table = ("label: dos\nlabel-id: 0x9011b0c5\nstart=1MiB, size=1MiB, type=e\nsize=2MiB, type=c\n"
             "size=2MiB, type=c\ntype=5\nsize=4MiB, type=83\nsize=2MiB, type=83\n")
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=table, text=True, capture_output=True, check=True, env=PATH)
    starts = {p["node"][-1]: int(p["start"]) * 512 for p in
              json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True,
                                        env=PATH).stdout)["partitiontable"]["partitions"]}
    with disk.open("r+b") as f:
        f.seek(starts["2"])
        f.write(boot)
        f.seek(starts["5"])
        f.write(root)
    return disk, root, boot


def test_a_pi_bundle_from_the_pi_image_carries_its_root_and_its_boot_partition(kit: UpdateKit, tmp_path: Path) -> None:
    disk, root, boot = pi_disk(kit, tmp_path)
    cert, key = kit.signer
    out = tmp_path / "pi.raucb"
    assert main(["--image", str(disk), "--compatible", "pollbox-rpi", "--version", "0.5.0", "--cert", str(cert),
                 "--key", str(key), "--keyring", str(kit.ca), "--out", str(out)]) == 0
    info = subprocess.run(["rauc", "info", "--keyring", str(kit.ca), "--output-format=json", str(out)],
                          capture_output=True, text=True, check=True)
    images = {name: image for entry in json.loads(info.stdout)["images"] for name, image in entry.items()}
    # the image's partitions whole: boot-a's 2 MiB hold the 2 MiB FAT made for it, root-a's 4 MiB the ext4
    assert images["rootfs"]["checksum"] == hashlib.sha256(root).hexdigest()
    assert images["boot"]["checksum"] == hashlib.sha256(boot).hexdigest()
    assert images["boot"]["filename"] == "boot.vfat"


def test_the_pis_rauc_config_takes_a_pi_bundle_and_refuses_an_amd64_one(kit: UpdateKit, tmp_path: Path) -> None:
    updater = RaucUpdater(pi_system_conf(kit, tmp_path))
    assert updater.compatible == "pollbox-rpi"
    assert updater.inspect(kit.bundle("pi", compatible="pollbox-rpi", version="0.6.0")).version == "0.6.0"
    with pytest.raises(Exception, match="the bundle is for 'pollbox-amd64', this unit is 'pollbox-rpi'"):
        updater.inspect(kit.bundle("amd64"))


def test_rauc_reads_the_pis_config_with_a_boot_slot_under_each_root(kit: UpdateKit, tmp_path: Path) -> None:
    """RAUC 1.8 itself parses the config: ``rauc status`` would refuse an unknown key or a bad parent."""
    conf = pi_system_conf(kit, tmp_path)
    done = subprocess.run(["rauc", "--conf", str(conf), "info", "--keyring", str(kit.ca), "--output-format=json",
                           str(kit.bundle("pi-conf", compatible="pollbox-rpi"))], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    text = conf.read_text()
    assert "[slot.boot.0]" in text and "parent=rootfs.0" in text and "[slot.boot.1]" in text and "parent=rootfs.1" in text


def test_a_pi_bundle_without_its_boot_partition_or_with_a_bad_one_is_not_made(kit: UpdateKit, tmp_path: Path) -> None:
    cert, key = kit.signer
    out = tmp_path / "x.raucb"
    common = {"root": kit.root_fs(), "version": "1", "cert": cert, "key": key, "out": out, "keyring": kit.ca}
    with pytest.raises(BundleError, match="a pollbox-rpi bundle carries the boot partition too"):
        make_bundle(compatible="pollbox-rpi", **common)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="only a pollbox-rpi bundle carries a boot partition"):
        make_bundle(compatible="pollbox-amd64", boot=kit.boot_fs(), **common)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="lacks vmlinuz, initrd.img"):
        make_bundle(compatible="pollbox-rpi", boot=kit.boot_fs("thin.vfat", ("start4.elf", "fixup4.dat", "config.txt",
                                                                             "cmdline.txt")), **common)  # type: ignore[arg-type]
    other = tmp_path / "other.vfat"
    other.write_bytes(os.urandom(4096))
    with pytest.raises(BundleError, match="not a FAT file system image"):
        make_bundle(compatible="pollbox-rpi", boot=other, **common)  # type: ignore[arg-type]
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_an_amd64_image_is_not_taken_for_a_pi_bundle(kit: UpdateKit, tmp_path: Path) -> None:
    disk = tmp_path / "pollbox-amd64.img"
    disk.write_bytes(b"\0" * (8 << 20))
    subprocess.run(["sfdisk", "--quiet", str(disk)], input="label: gpt\nstart=1MiB, size=4MiB, type=linux, name=root\n",
                   text=True, capture_output=True, check=True, env=PATH)
    cert, key = kit.signer
    assert main(["--image", str(disk), "--compatible", "pollbox-rpi", "--version", "1", "--cert", str(cert),
                 "--key", str(key), "--keyring", str(kit.ca), "--out", str(tmp_path / "x.raucb")]) == 2
    assert not (tmp_path / "x.raucb").exists()


@pytest.mark.parametrize(("booted", "slot"), [("A", "slot.rootfs.0"), ("B", "slot.rootfs.1")])
def test_the_slot_as_flashed_is_named_from_the_pis_config(tmp_path: Path, booted: str, slot: str) -> None:
    """``rauc-slot-status`` (shared with amd64) finds the booted root among the Pi's slots, its boot slots
    beside them, and records it under the Pi's compatible."""
    from tests.updates.test_slot_status import SLOT_BYTES, Unit

    unit = Unit(tmp_path, booted=booted)
    unit.slots["B"].write_bytes(SLOT_BYTES)
    conf = (RECIPE / "pi/rauc/etc/rauc/system.conf").read_text().replace("@COMPATIBLE@", "pollbox-rpi")
    conf = conf.replace("statusfile=/var/lib/pollbox/rauc.status", f"statusfile={unit.status}")
    for number, device in (("05", unit.slots["A"]), ("07", unit.slots["B"]), ("02", tmp_path / "boot-a"),
                           ("03", tmp_path / "boot-b")):
        conf = conf.replace(f"/dev/disk/by-partuuid/@DISKID@-{number}", str(device))
    unit.conf.write_text(conf)
    done = unit.run()
    assert done.returncode == 0, done.stderr
    recorded = unit.recorded()
    assert recorded.sections() == [slot]
    assert recorded[slot]["bundle.compatible"] == "pollbox-rpi"
    assert recorded[slot]["sha256"] == hashlib.sha256(SLOT_BYTES).hexdigest()
