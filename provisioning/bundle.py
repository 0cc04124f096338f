"""Make a signed update bundle from the image build's root file system (docs/updates.md).

    python -m provisioning.bundle --root build/image/pollbox-amd64.root.ext4 --compatible pollbox-amd64 \\
        --version 0.2.0 --cert signer.cert.pem --key signer.key.pem --keyring ca.cert.pem --out pollbox-0.2.0.raucb

``--image pollbox-amd64.img`` instead of ``--root`` takes the root file system out of a disk
image (its partition named ``root-a``, or ``root`` in a one-slot image). The bundle is RAUC's
``verity`` format with one image, ``rootfs``; it is checked with ``rauc info`` against the
keyring (the CEC's update CA) before it is named as written, and its SHA-256 is printed for
the CEC's software list. ``write_system_conf`` writes a unit's RAUC config (the image recipe
and the tests use it).

A bundle for the Raspberry Pi (``pollbox-rpi``) carries a second image, ``boot``: the boot partition
with the Pi's firmware, kernel, initramfs, ``config.txt`` and ``cmdline.txt``, which RAUC writes into the
new root's own boot partition (the Pi's ``system.conf``: each root slot has its boot partition as a
child slot). ``--image pollbox-arm64.img`` takes both out of the Pi's MBR disk (root-a is partition 5,
boot-a partition 2); ``--boot`` names a boot partition image otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from protocol.errors import UserError

COMPATIBLES = ("pollbox-amd64", "pollbox-rpi")
EXT4_MAGIC_OFFSET = 1024 + 56
ROOT_PARTITIONS = ("root-a", "root")
SECTOR = 512
PI_ROOT_PARTITION = 5
"""The Pi's MBR disk (build.sh): root slot A is the first logical partition, its boot partition is 2."""
PI_BOOT_PARTITION = 2
PI_BOOT_FILES = ("start4.elf", "fixup4.dat", "vmlinuz", "initrd.img", "config.txt", "cmdline.txt")
"""What the Pi's firmware and the tryboot backend need on a boot partition an update writes."""


class BundleError(UserError):
    """A bundle could not be made; the message says why."""


def _tool(name: str, package: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise BundleError(f"{name} is missing: install the Debian package {package}")
    return found


def check_root(root: Path) -> None:
    """Refuse anything that is not an ext4 image labelled POLLBOXROOT."""
    try:
        with root.open("rb") as f:
            f.seek(EXT4_MAGIC_OFFSET)
            magic = f.read(2)
            f.seek(1024 + 120)
            label = f.read(16).rstrip(b"\0")
    except OSError as exc:
        raise BundleError(f"cannot read the root file system {root}: {exc.strerror or exc}") from None
    if magic != b"\x53\xef":
        raise BundleError(f"{root} is not an ext4 file system image")
    if label != b"POLLBOXROOT":
        raise BundleError(f"{root} is labelled {label.decode(errors='replace')!r}, not POLLBOXROOT")


def check_boot(boot: Path) -> None:
    """Refuse anything that is not a FAT file system holding what a Pi boots (``PI_BOOT_FILES``)."""
    try:
        with boot.open("rb") as f:
            sector = f.read(SECTOR)
    except OSError as exc:
        raise BundleError(f"cannot read the boot partition {boot}: {exc.strerror or exc}") from None
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa" or b"FAT" not in sector[54:90]:
        raise BundleError(f"{boot} is not a FAT file system image")
    listed = subprocess.run([_tool("mdir", "mtools"), "-b", "-i", str(boot), "::/"], capture_output=True, text=True,
                            check=False, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    if listed.returncode != 0:
        raise BundleError(f"cannot list the boot partition {boot}: {listed.stderr.strip()}")
    names = {line.removeprefix("::/").strip().lower() for line in listed.stdout.splitlines()}
    missing = [name for name in PI_BOOT_FILES if name not in names]
    if missing:
        raise BundleError(f"the boot partition {boot} lacks {', '.join(missing)}")


def _table(image: Path) -> dict[str, object]:
    done = subprocess.run([_tool("sfdisk", "fdisk"), "--json", str(image)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BundleError(f"{image} has no readable partition table: {done.stderr.strip()}")
    table: dict[str, object] = json.loads(done.stdout)["partitiontable"]
    return table


def _numbered(table: dict[str, object], number: int) -> dict[str, object] | None:
    parts = table["partitions"]
    assert isinstance(parts, list)
    return next((p for p in parts if str(p["node"]).endswith(str(number))), None)


def _copy_partition(image: Path, part: dict[str, object], out: Path, what: str) -> Path:
    with image.open("rb") as src, out.open("wb") as dst:
        src.seek(int(str(part["start"])) * SECTOR)
        left = int(str(part["size"])) * SECTOR
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise BundleError(f"{image} ends inside its {what} partition")
            dst.write(chunk)
            left -= len(chunk)
    return out


def root_from_image(image: Path, out: Path) -> Path:
    """Copy the root partition of a disk image to ``out``: ``root-a`` (or ``root``) of a GPT disk, partition 5
    of the Pi's MBR disk."""
    table = _table(image)
    if table.get("label") == "dos":
        part = _numbered(table, PI_ROOT_PARTITION)
        if part is None:
            raise BundleError(f"{image} is an MBR disk without partition {PI_ROOT_PARTITION} (the Pi's root slot A)")
        return _copy_partition(image, part, out, "root")
    parts = table["partitions"]
    assert isinstance(parts, list)
    by_name = {p.get("name"): p for p in parts}
    found = next((by_name[n] for n in ROOT_PARTITIONS if n in by_name), None)
    if found is None:
        raise BundleError(f"{image} has no partition named {' or '.join(ROOT_PARTITIONS)}")
    return _copy_partition(image, found, out, "root")


def boot_from_image(image: Path, out: Path) -> Path:
    """Copy the Pi's boot partition of slot A (partition 2 of its MBR disk) to ``out``."""
    table = _table(image)
    part = _numbered(table, PI_BOOT_PARTITION) if table.get("label") == "dos" else None
    if part is None:
        raise BundleError(f"{image} is not a Raspberry Pi image (no MBR partition {PI_BOOT_PARTITION}, its boot-a)")
    return _copy_partition(image, part, out, "boot")


def make_bundle(*, root: Path, compatible: str, version: str, cert: Path, key: Path, out: Path,
                keyring: Path | None, work: Path | None = None, mksquashfs_args: str = "",
                boot: Path | None = None) -> str:
    """Write the signed bundle ``out``; returns its SHA-256. Checked with ``rauc info`` against ``keyring``.

    ``boot``: the Pi's boot partition image, which a ``pollbox-rpi`` bundle carries and no other does.
    ``mksquashfs_args`` go to mksquashfs (``-comp lz4``: much faster to make, larger; RAUC's default is gzip)."""
    if compatible not in COMPATIBLES:
        raise BundleError(f"unknown compatible {compatible!r}: {' or '.join(COMPATIBLES)}")
    if compatible == "pollbox-rpi" and boot is None:
        raise BundleError("a pollbox-rpi bundle carries the boot partition too (the Pi's firmware, kernel and "
                          "initramfs): give --boot, or --image of a Raspberry Pi image")
    if compatible != "pollbox-rpi" and boot is not None:
        raise BundleError(f"only a pollbox-rpi bundle carries a boot partition, not a {compatible} bundle")
    check_root(root)
    if boot is not None:
        check_boot(boot)
    rauc = _tool("rauc", "rauc")
    _tool("mksquashfs", "squashfs-tools")
    with tempfile.TemporaryDirectory(prefix="pollbox-bundle-") as tmp:
        content = Path(work) if work is not None else Path(tmp) / "content"
        shutil.rmtree(content, ignore_errors=True)
        content.mkdir(parents=True)
        try:
            os.link(root, content / "root.ext4")
        except OSError:
            shutil.copyfile(root, content / "root.ext4")
        images = "[image.rootfs]\nfilename=root.ext4\n"
        if boot is not None:
            shutil.copyfile(boot, content / "boot.vfat")
            images += "\n[image.boot]\nfilename=boot.vfat\n"
        (content / "manifest.raucm").write_text(
            f"[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n{images}",
            encoding="utf-8")
        partial = out.with_name(out.name + ".part")
        partial.unlink(missing_ok=True)
        extra = [f"--mksquashfs-args={mksquashfs_args}"] if mksquashfs_args else []
        made = subprocess.run([rauc, "bundle", *extra, "--cert", str(cert), "--key", str(key), str(content),
                               str(partial)], capture_output=True, text=True, check=False)
        if work is not None:
            shutil.rmtree(content, ignore_errors=True)
        if made.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BundleError(f"rauc bundle failed: {made.stderr.strip().splitlines()[-1:]}")
    if keyring is not None:
        checked = subprocess.run([rauc, "info", "--keyring", str(keyring), str(partial)], capture_output=True,
                                 text=True, check=False)
        if checked.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BundleError(f"the bundle does not verify against {keyring}: {checked.stderr.strip()}")
    os.replace(partial, out)
    digest = hashlib.sha256()
    with out.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_system_conf(path: Path, *, compatible: str, keyring: Path, slots: dict[str, Path], backend: str,
                      data_directory: Path | None = None) -> None:
    """A unit's RAUC config: its hardware, the keyring, two root slots by boot name, the boot backend."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[system]", f"compatible={compatible}", "bootloader=custom", "bundle-formats=-plain"]
    if data_directory is not None:
        lines.append(f"data-directory={data_directory}")
    lines += ["", "[keyring]", f"path={keyring}", "", "[handlers]", f"bootloader-custom-backend={backend}"]
    for i, (bootname, device) in enumerate(sorted(slots.items())):
        lines += ["", f"[slot.rootfs.{i}]", f"device={device}", "type=ext4", f"bootname={bootname}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m provisioning.bundle", description="make a signed update bundle")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--root", type=Path, help="the root file system image (build.sh writes pollbox-ARCH.root.ext4)")
    src.add_argument("--image", type=Path, help="a disk image to take the root partition (and the Pi's boot) from")
    p.add_argument("--boot", type=Path, help="the Pi's boot partition image (pollbox-rpi only; --image takes it too)")
    p.add_argument("--compatible", required=True, choices=COMPATIBLES)
    p.add_argument("--version", required=True)
    p.add_argument("--cert", type=Path, required=True, help="the update signing certificate (PEM)")
    p.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    p.add_argument("--keyring", type=Path, required=True, help="the update CA certificate the units trust")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mksquashfs-args", default="", help="e.g. '-comp lz4' (faster to make, larger bundle)")
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="pollbox-root-", dir=args.out.parent) as tmp:
            root = args.root or root_from_image(args.image, Path(tmp) / "root.ext4")
            boot = args.boot
            if boot is None and args.image is not None and args.compatible == "pollbox-rpi":
                boot = boot_from_image(args.image, Path(tmp) / "boot.vfat")
            digest = make_bundle(root=root, compatible=args.compatible, version=args.version, cert=args.cert,
                                 key=args.key, out=args.out, keyring=args.keyring,
                                 mksquashfs_args=args.mksquashfs_args, boot=boot)
    except (BundleError, OSError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    print(f"written {args.out} ({args.out.stat().st_size / 1e6:,.1f} MB), sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
