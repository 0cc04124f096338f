"""The TPM library in the Raspberry Pi (arm64) image: its Python drives a TPM and signs a record.

The arm64 image is built on this host (``build.sh``'s ``tpm-wheel.sh`` compiles ``tpm2-pytss`` in a throwaway
arm64 Debian system under qemu-user, and ``install-pollbox.sh`` imports it with the image's Python). Here the
built image's root slot A is mounted read-only on the host (a loop device at the partition's offset), and the
image's own Python, ``/opt/pollbox/bin/python``, runs in it through qemu-user (binfmt_misc):

- it imports ``tpm2_pytss`` (against the image's own libtss2 libraries) as the ``pollbox`` user would;
- the appliance's TPM backend (``device.signing.create_signer`` with ``store = "tpm"``) makes a P-256 record
  key in a host ``swtpm`` (reached through the swtpm TCTI over loopback, as the other key tests reach it) and
  signs a record with it; the record is checked on the host against the key's public part.

What this does not show: a real TPM chip on a Pi's SPI bus (the kernel's ``tpm-slb9670`` overlay and
``/dev/tpmrm0``), which nothing here has; see docs/keys.md, "TPM modules for the Raspberry Pi".
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.envelope import parse_line
from protocol.keys import P256, alg_of, decode_any_public_key, key_id
from tests.keys.swtpm import SoftTpm

from .vm import IMAGE_DIR, build_image, run

ARM64_DIR = IMAGE_DIR / "arm64-tpm"
"""Where this test builds the arm64 image: a folder of its own, so that it never replaces the image another arm64
test is booting (an image of the same key is copied from the build cache, not built again)."""
ARM64_TPM_TIMEOUT = 3 * 3600
"""pytest-timeout: a cold arm64 build under emulation (about an hour on a busy host), with the TPM wheel."""
IMAGE_PYTHON_WITHIN = 600
"""Seconds the image's Python has, under qemu-user, to load the backend, make the key and sign."""
SIGN_IN_IMAGE = """import json, sys, tempfile, time
from pathlib import Path
import tpm2_pytss
from device.signing import create_signer
from protocol.envelope import make_record
from protocol.keys import public_b64
signer = create_signer(Path(tempfile.mkdtemp()), "tpm", sys.argv[1])
record = make_record(key=signer, station="KG-ARM64-TPM", seq=1, prev="0" * 64, at=time.time(),
                     type_="polls_opened", body={"note": "signed by the arm64 image's Python"})
print(json.dumps({"module": tpm2_pytss.__file__, "public_key": public_b64(signer.public_key()), "line": record.line()}))
signer.close()
"""
"""Run by the image's Python in its mounted root: a TPM key made through the appliance's backend, one record."""

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(ARM64_TPM_TIMEOUT)]


def host_can_run_arm64() -> str:
    """Why this host cannot build the arm64 image and run its programs (a reason to skip), or ""."""
    if os.geteuid() != 0:
        return "building the image and mounting its root need root"
    if os.uname().machine not in ("aarch64", "arm64") and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "no qemu-aarch64 in binfmt_misc (qemu-user-static)"
    if shutil.which("swtpm") is None:
        return "no swtpm (Debian package swtpm)"
    return ""


def mount_root_slot(image: Path, at: Path) -> None:
    """Mount, read-only, the partition of ``image`` that holds the appliance (root slot A) at ``at``."""
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table["partitions"]:
        start, size = part["start"] * sector, part["size"] * sector
        tried = subprocess.run(["mount", "-t", "ext4", "-o", f"ro,loop,offset={start},sizelimit={size}",
                                str(image), str(at)], capture_output=True, text=True)
        if tried.returncode != 0:
            continue  # not an ext4 partition (the boot partitions, the extended partition's table)
        if (at / "opt/pollbox/bin/python").exists():
            return
        run(["umount", str(at)])
    raise AssertionError(f"no partition of {image} holds /opt/pollbox/bin/python")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = host_can_run_arm64()
    if reason:
        pytest.skip(reason)
    image = build_image("arm64", ARM64_DIR)
    root = tmp_path_factory.mktemp("arm64-root")
    mount_root_slot(image, root)
    mounted = [root]
    try:
        for fs, where in (("proc", "proc"), ("tmpfs", "tmp")):
            run(["mount", "-t", fs, fs, str(root / where)])
            mounted.append(root / where)
        run(["mount", "--bind", "/dev", str(root / "dev")])
        mounted.append(root / "dev")
        yield root
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", str(point)], capture_output=True)


def in_image(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run by the image's shell in its root as the ``pollbox`` user, through qemu-user."""
    return subprocess.run(["chroot", str(root), "runuser", "-u", "pollbox", "--", "sh", "-c", f"cd /tmp && {command}"],
                          capture_output=True, text=True, timeout=IMAGE_PYTHON_WITHIN,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def site_packages(root: Path) -> str:
    """The appliance virtualenv's ``site-packages`` as the image's own paths name it: its Python's
    version is the image's Debian suite's (3.11 on bookworm, 3.13 on trixie)."""
    found = sorted((root / "opt/pollbox/lib").glob("python3.*/site-packages"))
    assert len(found) == 1, f"expected one site-packages in the image's virtualenv, found {found}"
    return "/" + str(found[0].relative_to(root))


def test_the_arm64_image_s_python_is_arm64_and_loads_tpm2_pytss(image_root: Path) -> None:
    machine = in_image(image_root, "/opt/pollbox/bin/python -c 'import platform; print(platform.machine())'")
    assert machine.returncode == 0 and machine.stdout.strip() == "aarch64", machine.stdout + machine.stderr
    loaded = in_image(image_root, "/opt/pollbox/bin/python -c 'from tpm2_pytss import ESAPI; import tpm2_pytss; "
                                  "print(tpm2_pytss.__file__)'")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    module = f"{site_packages(image_root)}/tpm2_pytss"
    assert loaded.stdout.strip().startswith(f"{module}/"), loaded.stdout
    ldd = subprocess.run(["chroot", str(image_root), "sh", "-c", f"ldd {module}/_libtpm2_pytss*.so"],
                         capture_output=True, text=True, timeout=IMAGE_PYTHON_WITHIN)
    assert ldd.returncode == 0 and "libtss2-esys.so.0 => /lib/aarch64-linux-gnu/" in ldd.stdout.replace(
        "/usr/lib/", "/lib/"), ldd.stdout + ldd.stderr


def test_the_arm64_image_s_backend_makes_a_tpm_key_and_signs_a_record(image_root: Path, tmp_path: Path) -> None:
    tpm = SoftTpm.start(tmp_path / "swtpm")
    try:
        signed = in_image(image_root, f"/opt/pollbox/bin/python -c {shlex.quote(SIGN_IN_IMAGE)} "
                                      f"{shlex.quote(tpm.tcti)}")
    finally:
        tpm.stop()
    assert signed.returncode == 0, signed.stderr[-3000:]
    said = json.loads(signed.stdout.strip().splitlines()[-1])
    assert said["module"].startswith(f"{site_packages(image_root)}/tpm2_pytss/"), said
    record = parse_line(said["line"])
    assert record.alg == P256 and record.station == "KG-ARM64-TPM"
    key = decode_any_public_key(said["public_key"], P256)  # the 65-byte point the TPM gave for its new key
    assert alg_of(key) == P256 and key_id(key) == record.key
    record.verify(key)  # raises EnvelopeError("bad_signature") otherwise
