"""The record key held in a TPM, against a real software TPM (swtpm): made there, used there, lost with it.

Enrollment carries the P-256 public key, every record the unit signs verifies
at a real receiver, a copy of the data partition used with another TPM
cannot sign (the key is not on the card), and a cleared TPM is refused at
start with the technician's way out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keys_kit import AnyUnit, receiver_app, receiver_setup
from rx_kit import post

from device.hardware.clock import FakeClock
from device.keys import KeyError_
from device.signing import create_signer, load_signer
from protocol.envelope import parse_line
from protocol.keys import P256, key_id, public_b64, signature_holds
from provisioning.enrollment import check_request, create_unit_keys, enroll, make_request
from provisioning.errors import ProvisionError
from receiver.registry import Registry
from tests.keys.swtpm import SoftTpm, needs_swtpm

pytestmark = needs_swtpm


def data_dir(tmp_path: Path, name: str = "data") -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_the_key_is_made_in_the_tpm_and_signs_after_a_restart(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    made = create_signer(data, "tpm", soft_tpm.tcti)
    first = made.sign(b"record bytes")
    made.close()
    doc = json.loads((data / "device.tpm").read_bytes())
    assert (data / "device.tpm").stat().st_mode & 0o777 == 0o600 and not (data / "device.key").exists()
    assert doc["public_key"] == public_b64(made.public_key()) == (data / "device.pub").read_text().strip()
    again = load_signer(data, "tpm", soft_tpm.tcti)
    try:
        assert again.alg == P256 and key_id(again.public_key()) == key_id(made.public_key())
        second = again.sign(b"record bytes")
        assert signature_holds(again.public_key(), first, b"record bytes")
        assert signature_holds(again.public_key(), second, b"record bytes")
        assert not signature_holds(again.public_key(), second, b"other bytes")
    finally:
        again.close()


def test_a_unit_keeps_its_key_until_zeroized(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    create_signer(data, "tpm", soft_tpm.tcti).close()
    with pytest.raises(KeyError_, match="already holds a device key"):
        create_signer(data, "tpm", soft_tpm.tcti)
    with pytest.raises(KeyError_, match="already exists"):
        create_signer(data, "file")


def test_enrollment_carries_the_p256_key_and_the_receiver_takes_every_record(
        soft_tpm: SoftTpm, tmp_path: Path, clock: FakeClock) -> None:
    data = data_dir(tmp_path)
    key_id_made = create_unit_keys(data, "tpm", soft_tpm.tcti)
    request = make_request(data, "KG-0001", "SN-TPM-1", 1_800_000_000.0, "tpm", soft_tpm.tcti)
    assert request["alg"] == P256 and request["key_id"] == key_id_made
    assert check_request(request, "request")["public_key"] == request["public_key"]
    (tmp_path / "request.json").write_text(json.dumps(request))
    cec = Ed25519PrivateKey.generate()
    enroll([tmp_path / "request.json"], tmp_path / "registry.json", cec, data_dir(tmp_path, "certs"), 1_800_000_000.0)
    entry = Registry.load(tmp_path / "registry.json", cec.public_key()).for_key(key_id_made)
    assert entry is not None and entry.alg == P256 and entry.station == "KG-0001"

    signer = load_signer(data, "tpm", soft_tpm.tcti)
    try:
        unit = AnyUnit("KG-0001", key=signer)
        setup = receiver_setup(data_dir(tmp_path, "rx"), {"KG-0001": unit})
        records = unit.records(20)
    finally:
        signer.close()
    assert all(parse_line(r.line()).alg == P256 and r.key == key_id_made for r in records)
    with receiver_app(setup, clock) as app:
        reply = post(app.test_client(), records)
    assert (reply.status_code, reply.get_json()["accepted"]) == (200, 20), reply.get_json()


def test_an_altered_request_is_refused(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    create_unit_keys(data, "tpm", soft_tpm.tcti)
    request = make_request(data, "KG-0001", "SN-TPM-1", 1_800_000_000.0, "tpm", soft_tpm.tcti)
    with pytest.raises(ProvisionError, match="signature does not verify"):
        check_request({**request, "station": "KG-0002"}, "request")
    with pytest.raises(ProvisionError, match="signature does not verify"):
        check_request({k: v for k, v in request.items() if k != "alg"}, "request")


def test_a_copied_card_cannot_sign_with_another_tpm(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    create_signer(data, "tpm", soft_tpm.tcti).close()
    copy = tmp_path / "copied-card"
    shutil.copytree(data, copy)
    other = SoftTpm.start(tmp_path / "other-tpm-state")
    try:
        with pytest.raises(KeyError_) as refused:
            load_signer(copy, "tpm", other.tcti)
    finally:
        other.stop()
    message = str(refused.value)
    assert type(refused.value).__name__ == "WrongTpmError"
    assert "made by another TPM" in message and "cannot sign records" in message and "docs/keys.md" in message
    load_signer(data, "tpm", soft_tpm.tcti).close()  # the unit's own TPM still has it


def test_a_cleared_tpm_is_detected_at_start(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    create_signer(data, "tpm", soft_tpm.tcti).close()
    soft_tpm.clear()
    with pytest.raises(KeyError_) as refused:
        load_signer(data, "tpm", soft_tpm.tcti)
    message = str(refused.value)
    assert type(refused.value).__name__ == "TpmClearedError"
    assert "TPM was cleared" in message and "gone for good" in message
    assert "zeroize" in message and "revoke the old one" in message and "'The TPM was cleared'" in message


def test_an_unreachable_tpm_and_a_missing_key_file_say_so(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    with pytest.raises(KeyError_, match="no TPM device key at .*provision the unit first"):
        load_signer(data, "tpm", soft_tpm.tcti)
    create_signer(data, "tpm", soft_tpm.tcti).close()
    soft_tpm.stop()
    with pytest.raises(KeyError_, match="cannot reach the TPM through"):
        load_signer(data, "tpm", soft_tpm.tcti)


def test_two_users_of_the_key_at_once_and_a_full_tpm_is_not_called_cleared(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    """The running unit and a technician's command each load the key; a TPM out of room says so, not 'cleared'."""
    data = data_dir(tmp_path)
    signers = [create_signer(data, "tpm", soft_tpm.tcti)]
    refused: KeyError_ | None = None
    try:
        for _ in range(8):  # swtpm, with no resource manager in front, has room for a few loaded objects only
            try:
                signers.append(load_signer(data, "tpm", soft_tpm.tcti))
            except KeyError_ as exc:
                refused = exc
                break
        assert len(signers) >= 2
        assert all(signature_holds(s.public_key(), s.sign(b"both"), b"both") for s in signers)
    finally:
        for signer in signers:
            signer.close()
    assert refused is not None and type(refused).__name__ == "TpmError", refused
    assert "cleared" not in str(refused)
    load_signer(data, "tpm", soft_tpm.tcti).close()  # room again once the others let go


def test_a_tpm_unit_refuses_a_package_of_several_units_that_enrolled_another_key(soft_tpm: SoftTpm,
                                                                                  tmp_path: Path) -> None:
    """A unit whose key is in its TPM joins a station of several units only with the key the package enrolled
    for it (tests/units/test_units_tpm.py); here the package lists desk-1's old key file."""
    from device.compose import build_appliance
    from device.config import load_config
    from device.package import PackageError
    from device.sync.demo import make_demo_units

    config = make_demo_units(tmp_path / "units")["desk-1"]
    data = config.parent / "data"
    for name in ("device.key", "device.pub"):
        (data / name).unlink()
    create_signer(data, "tpm", soft_tpm.tcti).close()
    config.write_text(config.read_text() + f'\n[key]\nstore = "tpm"\ntcti = "{soft_tpm.tcti}"\n')
    with pytest.raises(PackageError, match="this unit's device key is not the key the package enrolled"):
        build_appliance(load_config(config))
    assert not (data / "journal.db").exists()  # refused before anything was opened
    load_signer(data, "tpm", soft_tpm.tcti).close()  # and the TPM was let go


def test_a_software_tpm_that_ended_by_itself_is_reported_when_stopped(tmp_path: Path) -> None:
    """The rig's own check: a test whose swtpm died under it fails naming that, not only "Connection refused"."""
    tpm = SoftTpm.start(tmp_path / "tpm-state")
    assert tpm.proc is not None
    tpm.proc.kill()
    tpm.proc.wait(timeout=10)
    with pytest.raises(AssertionError, match=r"had ended by itself \(exit status -9\)"):
        tpm.stop()
    tpm.stop()  # stopped once: nothing more to do
