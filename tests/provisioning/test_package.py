"""Station packages: built and signed on the CEC side, refused by a unit when tampered, foreign or expired."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov_helpers import ELECTION, NOW, STATION

from device.package import PackageError, load_package, sign_package
from provisioning.cec import load_cec_key
from provisioning.election import load_plan
from provisioning.errors import ProvisionError
from provisioning.package import payload_from_plan, write_package
from provisioning.voterlist import import_csv


@pytest.fixture
def built(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
          voters: tuple[Path, list[list[str]]], list_key: bytes) -> tuple[Path, Ed25519PrivateKey, dict[str, Any]]:
    key = load_cec_key(cec[0])
    result = import_csv(voters[0], STATION, list_key)
    payload = payload_from_plan(load_plan(plan), STATION, result, list_key, key, NOW)
    path = tmp_path / "stick" / "station.pkg"
    write_package(path, payload, key, NOW)
    return path, key, payload


def test_package_loads_with_every_section(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]], list_key: bytes,
                                          receiver_url: str) -> None:
    path, key, _ = built
    package = load_package(path, key.public_key(), ELECTION, NOW)
    assert package.station_id == STATION and package.registered == 300
    assert package.payload["station"]["name"] == "School No. 5"
    assert package.payload["election"]["opens"] == "08:00"
    assert package.receiver["url"] == receiver_url and package.receiver["public_key"]
    assert package.list_key_matches(list_key) and not package.list_key_matches(bytes(32))
    text = path.read_text()
    assert "personal_number" not in text


def test_one_changed_byte_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, _ = built
    data = bytearray(path.read_bytes())
    at = data.index(b'"School No. 5"') + 8
    data[at] = ord("7")
    path.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="altered"):
        load_package(path, key.public_key(), ELECTION, NOW)


def test_every_single_byte_flip_in_the_voter_list_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, _ = built
    original = path.read_bytes()
    start = original.index(b'"entries"')
    for offset in range(start + 20, start + 400, 37):
        data = bytearray(original)
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(PackageError):
            load_package(path, key.public_key(), ELECTION, NOW)


def test_wrong_signature_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, payload = built
    path.write_bytes(sign_package(payload, Ed25519PrivateKey.generate()))
    with pytest.raises(PackageError, match="signed by another key"):
        load_package(path, key.public_key(), ELECTION, NOW)


def test_unsigned_package_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, _ = built
    doc = json.loads(path.read_bytes())
    doc["signature"] = ""
    path.write_text(json.dumps(doc))
    with pytest.raises(PackageError, match="unsigned"):
        load_package(path, key.public_key(), ELECTION, NOW)


def test_other_election_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, _ = built
    with pytest.raises(PackageError, match="for election 'kg-2026-test'"):
        load_package(path, key.public_key(), "kg-2027-other", NOW)


def test_expired_package_is_refused(built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    path, key, _ = built
    with pytest.raises(PackageError, match="expired"):
        load_package(path, key.public_key(), ELECTION, 4_102_531_200.0)  # 2100-01-01


def test_writer_refuses_an_expired_package_and_leaves_nothing(tmp_path: Path,
                                                             built: tuple[Path, Ed25519PrivateKey, dict[str, Any]]) -> None:
    _, key, payload = built
    target = tmp_path / "late" / "station.pkg"
    with pytest.raises(ProvisionError) as err:
        write_package(target, payload, key, 4_102_531_200.0)
    assert err.value.code == "E022"
    assert not any(target.parent.iterdir())


def test_list_with_bad_rows_is_not_packaged(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
                                            voters: tuple[Path, list[list[str]]], list_key: bytes) -> None:
    path = voters[0]
    path.write_text(path.read_text().replace(voters[1][5][0], "123"))
    result = import_csv(path, STATION, list_key)
    with pytest.raises(ProvisionError) as err:
        payload_from_plan(load_plan(plan), STATION, result, list_key, cec[1], NOW)
    assert err.value.code == "E012"


def test_plan_problems_are_all_reported(tmp_path: Path, plan: Path, receiver_url: str) -> None:
    text = plan.read_text().replace('opens = "08:00"', 'opens = "8am"').replace('timezone = "Asia/Bishkek"',
                                                                              'timezone = "Mars/Olympus"')
    plan.write_text(text.replace(f'url = "{receiver_url}"', 'url = "http://cec.example"'))
    with pytest.raises(ProvisionError) as err:
        load_plan(plan)
    message = str(err.value)
    assert err.value.code == "E021" and "3 problem(s)" in message
    for key in ("election.opens", "election.timezone", "receiver.url"):
        assert key in message


def test_cec_key_file_is_private_and_public_half_matches(cec: tuple[Path, Ed25519PrivateKey]) -> None:
    path, key = cec
    assert path.stat().st_mode & 0o777 == 0o600
    assert base64.b64decode(path.with_name("cec.key.pub").read_text()) == key.public_key().public_bytes_raw()
    path.chmod(0o644)
    with pytest.raises(ProvisionError, match="readable by others"):
        load_cec_key(path)
