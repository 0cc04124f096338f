"""Test bundles made with the real tools: an update CA and signing certificate (openssl), bundles (rauc bundle).

``UpdateKit`` makes, in a folder, what the CEC keeps (a CA and a signing key
issued by it, both ECDSA P-256) and an impostor's self-signed key, plus a unit's
RAUC config whose keyring is the CA. Bundles hold a small ext4 root file system
made with ``mke2fs -d``, so ``rauc bundle`` has a real squashfs to make.
Tests using it skip, naming the Debian package, where rauc, squashfs-tools,
e2fsprogs or openssl is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioning.bundle import PI_BOOT_FILES, make_bundle, write_system_conf

NEEDED = {"rauc": "rauc", "mksquashfs": "squashfs-tools", "mke2fs": "e2fsprogs", "openssl": "openssl",
          "mkfs.vfat": "dosfstools", "mcopy": "mtools"}


def _missing() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return sorted({pkg for tool, pkg in NEEDED.items() if shutil.which(tool, path=path) is None})


needs_rauc = pytest.mark.skipif(bool(_missing()), reason=f"needs the Debian packages: {' '.join(_missing())}")


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@dataclass
class UpdateKit:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.cert.pem"

    @property
    def signer(self) -> tuple[Path, Path]:
        return self.folder / "signer.cert.pem", self.folder / "signer.key.pem"

    @property
    def impostor(self) -> tuple[Path, Path]:
        return self.folder / "impostor.cert.pem", self.folder / "impostor.key.pem"

    @property
    def system_conf(self) -> Path:
        return self.folder / "unit" / "system.conf"

    def root_fs(self, name: str = "root.ext4", payload: bytes = b"") -> Path:
        """A small ext4 image labelled POLLBOXROOT holding ``payload`` (random bytes by default)."""
        tree = self.folder / f"{name}.tree"
        tree.mkdir(exist_ok=True)
        (tree / "etc").mkdir(exist_ok=True)
        (tree / "etc" / "pollbox-release").write_bytes(payload or os.urandom(200_000))
        image = self.folder / name
        image.unlink(missing_ok=True)
        done = subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "POLLBOXROOT", "-d", str(tree), str(image), "4M"],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
        assert done.returncode == 0, done.stderr
        return image

    def boot_fs(self, name: str = "boot.vfat", files: tuple[str, ...] = PI_BOOT_FILES) -> Path:
        """A small FAT image holding ``files`` (by default what a Pi bundle's boot partition must hold)."""
        image = self.folder / name
        image.unlink(missing_ok=True)
        env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        subprocess.run(["mkfs.vfat", "-C", "-n", "BOOT-A", str(image), "2048"], capture_output=True, check=True, env=env)
        for file in files:
            (self.folder / file).write_bytes(os.urandom(2000))
            subprocess.run(["mcopy", "-i", str(image), str(self.folder / file), f"::/{file}"], capture_output=True,
                           check=True, env=env)
        return image

    def bundle(self, name: str, *, compatible: str = "pollbox-amd64", version: str = "0.2.0",
               impostor: bool = False) -> Path:
        cert, key = self.impostor if impostor else self.signer
        out = self.folder / f"{name}.raucb"
        # a Pi bundle carries the Pi's boot partition beside the root
        boot = self.boot_fs(f"{name}.vfat") if compatible == "pollbox-rpi" else None
        make_bundle(root=self.root_fs(f"{name}.ext4"), compatible=compatible, version=version, cert=cert, key=key,
                    out=out, keyring=None if impostor else self.ca, work=self.folder / f"{name}.work", boot=boot)
        return out


def make_kit(folder: Path) -> UpdateKit:
    """The CEC's update CA and signer, an impostor, and a unit's RAUC config trusting the CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key.pem", "-out", "ca.cert.pem", "-days", "3650",
            "-subj", "/O=Test CEC/CN=pollbox update CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    openssl("req", *ec, "-keyout", "signer.key.pem", "-out", "signer.csr", "-subj",
            "/O=Test CEC/CN=pollbox update signer", cwd=folder)
    (folder / "signer.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    openssl("x509", "-req", "-in", "signer.csr", "-CA", "ca.cert.pem", "-CAkey", "ca.key.pem", "-CAcreateserial",
            "-days", "365", "-extfile", "signer.ext", "-out", "signer.cert.pem", cwd=folder)
    openssl("req", "-x509", *ec, "-keyout", "impostor.key.pem", "-out", "impostor.cert.pem", "-days", "365",
            "-subj", "/O=Someone Else/CN=pollbox update", cwd=folder)
    kit = UpdateKit(folder)
    write_system_conf(kit.system_conf, compatible="pollbox-amd64", keyring=kit.ca,
                      slots={"A": folder / "unit" / "slot-a.img", "B": folder / "unit" / "slot-b.img"},
                      backend="/bin/false")
    return kit
