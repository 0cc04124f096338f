"""Make a signed update bundle from the image build's root file system (docs/updates.md).

    python -m provisioning.bundle --root build/image/pollbox-amd64.root.ext4 --compatible pollbox-amd64 \\
        --version 0.2.0 --cert signer.cert.pem --key signer.key.pem --keyring ca.cert.pem --out pollbox-0.2.0.raucb

``--image pollbox-amd64.img`` instead of ``--root`` takes the root file system out of a disk
image (its partition named ``root-a``, or ``root`` in a one-slot image). The bundle is RAUC's
``verity`` format with one image, ``rootfs``; it is checked with ``rauc info`` against the
keyring (the CEC's update CA) before it is named as written, and its SHA-256 is printed for
the CEC's software list. ``write_system_conf`` writes a unit's RAUC config (the image recipe
and the tests use it).
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


def root_from_image(image: Path, out: Path) -> Path:
    """Copy the root partition (``root-a``, or ``root``) of a GPT disk image to ``out``."""
    done = subprocess.run([_tool("sfdisk", "fdisk"), "--json", str(image)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BundleError(f"{image} has no readable partition table: {done.stderr.strip()}")
    parts = json.loads(done.stdout)["partitiontable"]["partitions"]
    by_name = {p.get("name"): p for p in parts}
    part = next((by_name[n] for n in ROOT_PARTITIONS if n in by_name), None)
    if part is None:
        raise BundleError(f"{image} has no partition named {' or '.join(ROOT_PARTITIONS)}")
    with image.open("rb") as src, out.open("wb") as dst:
        src.seek(int(part["start"]) * SECTOR)
        left = int(part["size"]) * SECTOR
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise BundleError(f"{image} ends inside its root partition")
            dst.write(chunk)
            left -= len(chunk)
    return out


def make_bundle(*, root: Path, compatible: str, version: str, cert: Path, key: Path, out: Path,
                keyring: Path | None, work: Path | None = None, mksquashfs_args: str = "") -> str:
    """Write the signed bundle ``out``; returns its SHA-256. Checked with ``rauc info`` against ``keyring``.

    ``mksquashfs_args`` go to mksquashfs (``-comp lz4``: much faster to make, larger; RAUC's default is gzip)."""
    if compatible not in COMPATIBLES:
        raise BundleError(f"unknown compatible {compatible!r}: {' or '.join(COMPATIBLES)}")
    check_root(root)
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
        (content / "manifest.raucm").write_text(
            f"[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n"
            "[image.rootfs]\nfilename=root.ext4\n", encoding="utf-8")
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
    src.add_argument("--image", type=Path, help="a disk image to take the root partition from")
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
            digest = make_bundle(root=root, compatible=args.compatible, version=args.version, cert=args.cert,
                                 key=args.key, out=args.out, keyring=args.keyring,
                                 mksquashfs_args=args.mksquashfs_args)
    except (BundleError, OSError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    print(f"written {args.out} ({args.out.stat().st_size / 1e6:,.1f} MB), sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
