"""The first boot makes a TPM-held key and puts its enrollment request on the stick, through the real process.

The station stick says ``[key] store = "tpm"`` (the TCTI naming a host-side ``swtpm``) and carries no
key; the import runs as the image's ``pollbox-station-import`` runs it (``python -m device.firstboot
import``), with a folder as the mounted stick. The request it writes must be accepted by the CEC's
``pollbox-provision cec enroll`` (a subprocess too), and the installed station must load its key from
the TPM. A read-only or full stick (a tmpfs mounted for the test; skipped where mounting is not
allowed), a stick carrying a key file, and a data partition already holding a TPM key are refused
with nothing installed. The booted image's service is not exercised here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from device.signing import load_signer
from protocol.keys import P256, key_id
from tests.image.test_firstboot_stick import settings_file, stick_of
from tests.image.vm import STICK_FILES, TEST_CEC, demo_station
from tests.keys.swtpm import SoftTpm, needs_swtpm

pytestmark = needs_swtpm
REPO = Path(__file__).resolve().parents[2]
TPM_STICK_FILES = tuple(n for n in STICK_FILES if n not in ("data/device.key", "data/device.pub"))


def tpm_station(tmp_path: Path, tpm: SoftTpm) -> Path:
    station = demo_station(tmp_path)
    toml = station / "station.toml"
    toml.write_text(toml.read_text() + f'\n[key]\nstore = "tpm"\ntcti = "{tpm.tcti}"\n')
    return station


def firstboot_import(tmp_path: Path, stick: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """The import as the image's service runs it (without --owner: the test is not the appliance's user)."""
    return subprocess.run([sys.executable, "-m", "device.firstboot", "--settings", str(settings_file(tmp_path /
                           "image.toml")), "--refusal", str(tmp_path / "run" / "refusal.json"), "import",
                           "--stick", str(stick), "--dest", str(dest), "--serial", "SN-FIRSTBOOT-1"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=120, check=False)


def refusal(tmp_path: Path) -> dict[str, str]:
    return dict(json.loads((tmp_path / "run" / "refusal.json").read_text()))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data" / "station"


def test_first_boot_makes_the_key_in_the_tpm_and_the_cec_enrolls_its_request(
        tmp_path: Path, soft_tpm: SoftTpm, dest: Path) -> None:
    stick = stick_of(tpm_station(tmp_path, soft_tpm), TPM_STICK_FILES, tmp_path / "stick")
    done = firstboot_import(tmp_path, stick, dest)
    assert done.returncode == 0, done.stdout + done.stderr
    requests = sorted(stick.glob("enrollment-request-*.json"))
    station_id = json.loads((stick / "station" / "station-package.json").read_bytes())["payload"]["station"]["id"]
    assert [p.name for p in requests] == [f"enrollment-request-{station_id}-SN-FIRSTBOOT-1.json"]
    request = json.loads(requests[0].read_text())
    assert request["alg"] == P256 and request["serial"] == "SN-FIRSTBOOT-1"
    data = dest / "data"
    assert (data / "device.tpm").is_file() and not (data / "device.key").exists()
    assert not (stick / "station" / "data" / "device.tpm").exists() and not list(stick.glob("*.tmp"))
    assert f"device key {request['key_id']} made inside this unit's TPM" in done.stdout
    assert "take the USB stick to the CEC" in done.stdout
    signer = load_signer(data, "tpm", soft_tpm.tcti)  # the installed blob loads in this TPM: the key is there
    try:
        assert key_id(signer.public_key()) == request["key_id"]
    finally:
        signer.close()
    cec_key = tmp_path / "cec.key"
    cec_key.write_bytes(TEST_CEC.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    cec_key.chmod(0o600)
    (tmp_path / "certs").mkdir()
    enrolled = subprocess.run([sys.executable, "-m", "provisioning.cli", "cec", "enroll", "--cec-key", str(cec_key),
                               "--registry", str(tmp_path / "registry.json"), "--out", str(tmp_path / "certs"),
                               str(requests[0])], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    entries = json.loads((tmp_path / "registry.json").read_text())
    assert request["key_id"] in json.dumps(entries) and '"p256"' in json.dumps(entries)


def test_a_stick_carrying_a_key_file_is_refused_for_a_tpm_config(
        tmp_path: Path, soft_tpm: SoftTpm, dest: Path) -> None:
    stick = stick_of(tpm_station(tmp_path, soft_tpm), STICK_FILES, tmp_path / "stick")
    done = firstboot_import(tmp_path, stick, dest)
    assert done.returncode == 1 and refusal(tmp_path)["kind"] == "bad_config", done.stdout
    assert "never uses a key file" in done.stdout and not dest.exists()


def test_an_existing_tpm_key_on_the_data_partition_is_not_replaced(
        tmp_path: Path, soft_tpm: SoftTpm, dest: Path) -> None:
    stick = stick_of(tpm_station(tmp_path, soft_tpm), TPM_STICK_FILES, tmp_path / "stick")
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "device.tpm").write_text("kept")
    done = firstboot_import(tmp_path, stick, dest)
    assert done.returncode == 1 and refusal(tmp_path)["kind"] == "tpm_key", done.stdout
    assert (dest / "data" / "device.tpm").read_text() == "kept" and not list(stick.glob("enrollment-request-*"))


def test_a_tpm_that_cannot_be_reached_is_refused_with_nothing_installed(tmp_path: Path, dest: Path) -> None:
    absent = SoftTpm(tmp_path / "never-started")  # its ports are free: nothing answers there
    stick = stick_of(tpm_station(tmp_path, absent), TPM_STICK_FILES, tmp_path / "stick")
    done = firstboot_import(tmp_path, stick, dest)
    assert done.returncode == 1 and refusal(tmp_path)["kind"] == "tpm_key", done.stdout
    assert "cannot reach the TPM" in done.stdout and not dest.exists()
    assert not dest.with_name("station.new").exists() and not list(stick.glob("enrollment-request-*"))


@pytest.fixture
def small_stick(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs as the stick (root and mount needed; skipped otherwise)."""
    mount = tmp_path / "stick"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=1000", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs as the stick: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_read_only_stick_is_refused_with_nothing_installed(
        tmp_path: Path, soft_tpm: SoftTpm, dest: Path, small_stick: Path) -> None:
    stick_of(tpm_station(tmp_path, soft_tpm), TPM_STICK_FILES, small_stick)
    subprocess.run(["mount", "-o", "remount,ro", str(small_stick)], check=True)
    done = firstboot_import(tmp_path, small_stick, dest)
    assert done.returncode == 1 and refusal(tmp_path)["kind"] == "stick_readonly", done.stdout
    assert "read-only" in done.stdout and not dest.exists()


def test_a_full_stick_is_refused_with_nothing_installed(
        tmp_path: Path, soft_tpm: SoftTpm, dest: Path, small_stick: Path) -> None:
    stick_of(tpm_station(tmp_path, soft_tpm), TPM_STICK_FILES, small_stick)
    with (small_stick / "filler").open("wb", buffering=0) as out:  # unbuffered: close() has nothing left to write
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    done = firstboot_import(tmp_path, small_stick, dest)
    assert done.returncode == 1 and refusal(tmp_path)["kind"] == "stick_full", done.stdout
    assert "is full" in done.stdout and not dest.exists() and not (small_stick / ".pollbox-write-check").exists()
