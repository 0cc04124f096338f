"""P-256 as the second record algorithm: envelope, key ids, the registry's ``alg`` and the receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from keys_kit import AnyUnit, P256Key, receiver_app, receiver_setup
from rx_kit import post

from device.hardware.clock import FakeClock
from protocol.canonical import canonical
from protocol.chain import ZERO_HASH
from protocol.envelope import EnvelopeError, SignedRecord, b64u, make_record, parse_line
from protocol.keys import P256, RAW_LENGTH, KeyFormatError, decode_any_public_key, key_id, public_b64, raw_public
from receiver.registry import DeviceEntry, Registry, RegistryError

KEY = P256Key()


def record(key: object, seq: int = 1) -> SignedRecord:
    return make_record(key=key, station="KG-0001", seq=seq, prev=ZERO_HASH, at=1_800_000_000.0,  # type: ignore[arg-type]
                       type_="annotation", body={"topic": "t", "text": "x", "journal_seq": 2,
                                                  "journal_hash": "ab" * 32})


def test_a_p256_record_names_its_alg_and_verifies() -> None:
    rec = parse_line(record(KEY).line())
    assert rec.alg == P256 and rec.fields["alg"] == P256 and b'"alg":"p256"' in rec.data
    assert len(rec.line().split(" ")[0]) == 86
    rec.verify(KEY.public_key())
    assert rec.key == key_id(KEY.public_key())


def test_an_ed25519_record_has_no_alg_so_its_bytes_are_as_before() -> None:
    key = Ed25519PrivateKey.generate()
    rec = parse_line(record(key).line())
    assert "alg" not in rec.fields and rec.alg == "ed25519"
    rec.verify(key.public_key())


def test_a_record_checked_with_a_key_of_the_other_alg_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="signed with p256, but the key is ed25519"):
        parse_line(record(KEY).line()).verify(Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize("alg", ["ed25519", "P256", "", 1, None])
def test_alg_is_written_only_as_p256(alg: object) -> None:
    fields = dict(record(KEY).fields, alg=alg)
    with pytest.raises(EnvelopeError, match='alg must be "p256"'):
        parse_line(f"{b64u(bytes(64))} {canonical(fields).decode()}")


@given(st.binary(min_size=0, max_size=200))
def test_a_p256_signature_holds_only_over_its_own_bytes(tail: bytes) -> None:
    rec = record(KEY)
    altered = SignedRecord(rec.data + tail, rec.signature, rec.fields)
    if tail:
        with pytest.raises(EnvelopeError, match="does not verify"):
            altered.verify(KEY.public_key())
    else:
        altered.verify(KEY.public_key())


def test_p256_public_key_text_and_key_id_rule() -> None:
    public = KEY.public_key()
    raw = raw_public(public)
    assert len(raw) == RAW_LENGTH[P256] and raw[0] == 4
    assert raw_public(decode_any_public_key(public_b64(public), P256)) == raw
    with pytest.raises(KeyFormatError, match="65-byte uncompressed P-256"):
        decode_any_public_key(public_b64(Ed25519PrivateKey.generate().public_key()), P256)
    with pytest.raises(KeyFormatError, match="unknown key algorithm"):
        decode_any_public_key(public_b64(public), "rsa")


def test_the_registry_writes_alg_only_for_a_p256_key(tmp_path: Path) -> None:
    cec = Ed25519PrivateKey.generate()
    old, new = AnyUnit("KG-0001"), AnyUnit("KG-0002", key=P256Key())
    registry = Registry([old.entry(), new.entry()])
    path = tmp_path / "registry.json"
    registry.sign_and_save(path, cec)
    devices = {d["station"]: d for d in json.loads(path.read_bytes())["devices"]}
    assert "alg" not in devices["KG-0001"] and devices["KG-0002"]["alg"] == P256
    loaded = Registry.load(path, cec.public_key())
    assert loaded.for_key(new.key_id) == new.entry() and loaded.for_key(old.key_id) == old.entry()
    assert Registry([old.entry()]).devices_json() == [{k: v for k, v in old.entry().as_json().items()}]


def test_the_registry_refuses_an_alg_that_does_not_match_the_key() -> None:
    unit = AnyUnit("KG-0001", key=P256Key())
    wrong = DeviceEntry(**{**unit.entry().as_json(), "alg": "ed25519"})
    with pytest.raises(RegistryError, match="not a base64 32-byte Ed25519"):
        Registry([wrong])
    raw = {**AnyUnit("KG-0002").entry().as_json(), "alg": "ed25519"}
    with pytest.raises(RegistryError, match='alg is written only as "p256"'):
        DeviceEntry.from_dict(raw, 0)


def test_the_receiver_takes_p256_and_ed25519_stations_side_by_side(tmp_path: Path, clock: FakeClock) -> None:
    tpm_unit, file_unit = AnyUnit("KG-0001", key=P256Key()), AnyUnit("KG-0002")
    setup = receiver_setup(tmp_path, {"KG-0001": tpm_unit, "KG-0002": file_unit})
    with receiver_app(setup, clock) as app:
        client = app.test_client()
        for unit in (tpm_unit, file_unit):
            reply = post(client, unit.records(3))
            assert reply.status_code == 200, reply.get_json()
            assert reply.get_json()["accepted"] == 3
        tampered = tpm_unit.record()
        forged = SignedRecord(tampered.data, tampered.signature[:32] + bytes(32), tampered.fields)
        reply = post(client, [forged])
        assert (reply.status_code, reply.get_json()["error"]) == (400, "bad_signature")


def test_the_receiver_refuses_a_record_whose_alg_is_not_its_keys(tmp_path: Path, clock: FakeClock) -> None:
    unit = AnyUnit("KG-0001")
    setup = receiver_setup(tmp_path, {"KG-0001": unit})
    first = unit.record()
    fields = dict(first.fields, alg=P256)
    data = canonical(fields)
    lying = SignedRecord(data, unit.key.sign(data), fields)  # type: ignore[attr-defined]
    with receiver_app(setup, clock) as app:
        reply = post(app.test_client(), [parse_line(lying.line())])
    assert reply.status_code == 400
    assert "signed as p256" in reply.get_json()["reason"] and "enrolled as a ed25519 key" in reply.get_json()["reason"]


def test_the_report_checking_tool_takes_a_p256_device_key(tmp_path: Path) -> None:
    from tools.verify_report import InputProblem, load_key, verify_line
    unit = AnyUnit("KG-0001", key=P256Key())
    line = unit.record("polls_closed", {"identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2,
                                        "alarms_open": 0, "journal_seq": 1711, "journal_hash": "5e" * 32},
                       journal=False).line()
    (tmp_path / "device.pub").write_text(public_b64(unit.key.public_key()) + "\n")  # type: ignore[attr-defined]
    assert verify_line(line, load_key(str(tmp_path / "device.pub"))).valid
    assert not verify_line(line.replace('"ballots":811', '"ballots":810'), load_key(str(tmp_path / "device.pub"))).valid
    with pytest.raises(InputProblem, match="65-byte P-256 point"):
        load_key("AAAA")
