"""The RAUC backend against real bundles: ``rauc bundle`` with a test CA, ``rauc info`` on good and bad ones.

What is exercised for real: bundle building (``provisioning.bundle``), the CMS
signature check against the unit's keyring (a CA-issued signer passes, an
impostor's self-signed key and a bundle signed by nobody the keyring knows fail),
the signature-size check at the end of the file (cut-short bundles, a file that
is not a bundle), the compatible check, the size budget. ``rauc install`` is not
run here: it needs the RAUC service on the system D-Bus and the kernel's
device-mapper (dm-verity), which this test host does not have; the booted image's
test (``tests/image/test_update.py``) is where it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from device.core.update import UpdateRefusal
from device.updates import BundleRefused, UpdateError
from device.updates.rauc import RaucUpdater
from provisioning.bundle import BundleError, make_bundle
from tests.updates.kit import UpdateKit, make_kit, needs_rauc

pytestmark = needs_rauc


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> UpdateKit:
    return make_kit(tmp_path_factory.mktemp("update-kit"))


@pytest.fixture(scope="module")
def good(kit: UpdateKit) -> Path:
    return kit.bundle("good")


def refusal(updater: RaucUpdater, path: Path) -> BundleRefused:
    with pytest.raises(BundleRefused) as caught:
        updater.inspect(path)
    return caught.value


def test_a_bundle_signed_by_the_cec_for_this_hardware_is_taken(kit: UpdateKit, good: Path) -> None:
    bundle = RaucUpdater(kit.system_conf).inspect(good)
    assert (bundle.version, bundle.compatible, bundle.size) == ("0.2.0", "pollbox-amd64", good.stat().st_size)
    assert "pollbox update signer" in bundle.signer


def test_an_impostors_signature_is_refused(kit: UpdateKit) -> None:
    refused = refusal(RaucUpdater(kit.system_conf), kit.bundle("foreign", impostor=True))
    assert refused.reason is UpdateRefusal.BAD_SIGNATURE
    assert "not signed by the CEC's update key" in str(refused) and "nothing was written" in str(refused)


def test_a_bundle_for_other_hardware_is_refused(kit: UpdateKit) -> None:
    refused = refusal(RaucUpdater(kit.system_conf), kit.bundle("pi", compatible="pollbox-rpi"))
    assert refused.reason is UpdateRefusal.WRONG_COMPATIBLE
    assert "'pollbox-rpi'" in refused.detail and "'pollbox-amd64'" in refused.detail and refused.version == "0.2.0"


@pytest.mark.parametrize("keep", [0, 5, 4096, -1, -100])
def test_a_cut_short_bundle_is_refused_as_truncated(kit: UpdateKit, good: Path, tmp_path: Path, keep: int) -> None:
    data = good.read_bytes()
    cut = tmp_path / "cut.raucb"
    cut.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    assert refusal(RaucUpdater(kit.system_conf), cut).reason is UpdateRefusal.TRUNCATED


def test_a_file_that_is_not_a_bundle_is_refused(kit: UpdateKit, tmp_path: Path) -> None:
    junk = tmp_path / "junk.raucb"
    junk.write_bytes(os.urandom(50_000))
    assert refusal(RaucUpdater(kit.system_conf), junk).reason is UpdateRefusal.TRUNCATED


def test_a_bundle_over_the_budget_is_refused_before_rauc_reads_it(kit: UpdateKit, good: Path) -> None:
    refused = refusal(RaucUpdater(kit.system_conf, rauc="/nonexistent/rauc", budget=good.stat().st_size - 1), good)
    assert refused.reason is UpdateRefusal.TOO_LARGE and "budget" in refused.detail


def test_a_missing_bundle_and_a_unit_without_rauc_config_say_so(kit: UpdateKit, good: Path, tmp_path: Path) -> None:
    assert refusal(RaucUpdater(kit.system_conf), tmp_path / "nothing.raucb").reason is UpdateRefusal.UNREADABLE
    with pytest.raises(UpdateError, match="cannot read the RAUC config"):
        RaucUpdater(tmp_path / "system.conf").inspect(good)
    with pytest.raises(UpdateError, match="RAUC is not installed"):
        RaucUpdater(kit.system_conf, rauc="/nonexistent/rauc").inspect(good)


def test_the_bundle_tool_refuses_what_is_not_a_pollbox_root(kit: UpdateKit, tmp_path: Path) -> None:
    cert, key = kit.signer
    other = tmp_path / "other.img"
    other.write_bytes(os.urandom(8192))
    with pytest.raises(BundleError, match="not an ext4"):
        make_bundle(root=other, compatible="pollbox-amd64", version="1", cert=cert, key=key,
                    out=tmp_path / "x.raucb", keyring=kit.ca)
    with pytest.raises(BundleError, match="unknown compatible"):
        make_bundle(root=kit.root_fs(), compatible="pollbox-x", version="1", cert=cert, key=key,
                    out=tmp_path / "x.raucb", keyring=kit.ca)
    impostor_cert, impostor_key = kit.impostor
    with pytest.raises(BundleError, match="does not verify"):
        make_bundle(root=kit.root_fs(), compatible="pollbox-amd64", version="1", cert=impostor_cert,
                    key=impostor_key, out=tmp_path / "x.raucb", keyring=kit.ca)
    assert not (tmp_path / "x.raucb").exists() and not list(tmp_path.glob("*.part"))


def test_the_bundle_command_takes_the_root_out_of_a_disk_image(kit: UpdateKit, tmp_path: Path) -> None:
    """A GPT disk laid out as build.sh lays it out (esp, root, data): the bundle holds the root partition's bytes."""
    from provisioning.bundle import main

    root = kit.root_fs("disk-root.ext4").read_bytes()
    disk = tmp_path / "pollbox-amd64.img"
    mib = 1 << 20
    disk.write_bytes(b"\0" * (1 + 2 + 4 + 2 + 1) * mib)
    table = "label: gpt\nstart=1MiB, size=2MiB, type=uefi, name=esp\nsize=4MiB, type=linux, name=root\n" \
            "size=2MiB, type=linux, name=data\n"
    done = subprocess.run(["sfdisk", "--quiet", str(disk)], input=table, text=True, capture_output=True, check=False,
                          env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    assert done.returncode == 0, done.stderr
    with disk.open("r+b") as f:
        f.seek(3 * mib)
        f.write(root)
    cert, key = kit.signer
    out = tmp_path / "from-image.raucb"
    assert main(["--image", str(disk), "--compatible", "pollbox-amd64", "--version", "0.4.0", "--cert", str(cert),
                 "--key", str(key), "--keyring", str(kit.ca), "--out", str(out)]) == 0
    bundle = RaucUpdater(kit.system_conf).inspect(out)
    assert bundle.version == "0.4.0"
    info = subprocess.run(["rauc", "info", "--keyring", str(kit.ca), "--output-format=json", str(out)],
                          capture_output=True, text=True, check=True)
    assert json.loads(info.stdout)["images"][0]["rootfs"]["checksum"] == hashlib.sha256(root).hexdigest()
