"""A unit whose record key is held in its TPM (ECDSA P-256) at a station of several units.

Its check-in and close records are signed by the TPM and name ``"alg": "p256"``; the package lists its
key with ``"alg": "p256"``; the other units check them against that enrolled key. On the wire (software
P-256 key, the same signatures a TPM makes), in three appliances of one process with desk-2's key in a
real ``swtpm``, and through ``pollbox run`` (slow). A record naming an unknown algorithm, or one that is
not its unit's enrolled key's, is refused with that reason; a TPM unit whose key is not the one the
package enrolled for it does not start.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core import events as ev
from device.core.units import PeerCheckin, PeerClose
from device.package import PackageError, sign_package
from device.signing import create_signer
from device.sync import wire
from device.sync.units import station_units, units_section
from protocol.canonical import canonical
from protocol.keys import P256, public_b64, signature_holds
from tests.keys.keys_kit import P256Key
from tests.keys.swtpm import SoftTpm, needs_swtpm

from .stations import PINS, Station, make_template

STATION = "KG-DEMO-0001"
VOTER = "v" * 64


def _record(unit: str, seq: int = 1) -> PeerCheckin:
    return PeerCheckin(STATION, unit, seq, VOTER, 3, 1_800_000_000.0, 7 << 16)


# --- on the wire ---------------------------------------------------------------------------------------------


def test_a_p256_record_names_its_alg_and_verifies_against_the_enrolled_p256_key() -> None:
    key = P256Key()
    item = wire.sign(_record("desk-2"), key)
    assert item["alg"] == P256
    raw = base64.b64decode(item["signature"])
    assert len(raw) == 64 and signature_holds(key.public_key(), raw, wire.RECORD_LABEL + canonical(item["body"]))
    got = wire.check_record(item, {"desk-2": key.public_key()}, STATION)
    assert isinstance(got, PeerCheckin) and got.seq == 1 and got.signature == item["signature"]
    relayed = wire.relayed(got, P256)  # passed on by a third unit: the same signature, the same alg
    assert isinstance(wire.check_record(relayed, {"desk-2": key.public_key()}, STATION), PeerCheckin)


def test_an_ed25519_record_without_alg_is_read_as_before() -> None:
    key = Ed25519PrivateKey.generate()
    item = wire.sign(_record("desk-1"), key)
    assert item["alg"] == "ed25519"
    del item["alg"]  # as a unit wrote it before TPM keys could join
    assert isinstance(wire.check_record(item, {"desk-1": key.public_key()}, STATION), PeerCheckin)


@pytest.mark.parametrize(("alg", "words"), [
    ("rsa-pss", "signed with the algorithm 'rsa-pss', which units do not use (known: ed25519, p256)"),
    (7, "signed with the algorithm '7', which units do not use"),
    ("ed25519", "signed as ed25519, but the package enrolled a p256 key for unit 'desk-2'"),
])
def test_a_record_naming_an_unknown_or_another_alg_is_refused_saying_so(alg: object, words: str) -> None:
    key = P256Key()
    item = {**wire.sign(_record("desk-2"), key), "alg": alg}
    refused = wire.check_record(item, {"desk-2": key.public_key()}, STATION)
    assert isinstance(refused, wire.Refusal) and words in refused.reason, refused
    assert refused.unit == "desk-2" and refused.seq == 1


def test_a_p256_record_of_another_key_or_an_ed25519_key_posing_as_p256_is_refused() -> None:
    enrolled, other = P256Key(), P256Key()
    forged = wire.check_record(wire.sign(_record("desk-2"), other), {"desk-2": enrolled.public_key()}, STATION)
    assert isinstance(forged, wire.Refusal) and "signature does not verify" in forged.reason
    ed = Ed25519PrivateKey.generate()
    posing = {**wire.sign(_record("desk-1"), ed), "alg": P256}
    refused = wire.check_record(posing, {"desk-1": ed.public_key()}, STATION)
    assert isinstance(refused, wire.Refusal)
    assert "signed as p256, but the package enrolled a ed25519 key" in refused.reason


def test_a_p256_close_record_is_signed_and_checked_the_same_way() -> None:
    key = P256Key()
    close = PeerClose(STATION, "mobile", 4, 4, 4, 1_800_000_100.0)
    item = wire.sign_close(close, key)
    assert item["alg"] == P256
    got = wire.check_close(item, {"mobile": key.public_key()}, STATION)
    assert isinstance(got, PeerClose) and got.admissions == 4
    refused = wire.check_close({**item, "alg": "ed448"}, {"mobile": key.public_key()}, STATION)
    assert isinstance(refused, wire.Refusal) and "which units do not use" in refused.reason


# --- in the package ------------------------------------------------------------------------------------------


def _listed(keys: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(uid, "mobile" if uid == "mobile" else "desk", public_b64(k.public_key()), "") for uid, k in keys.items()]


def test_the_package_lists_a_tpm_units_key_with_its_alg_and_a_unit_reads_it() -> None:
    keys = {"desk-1": Ed25519PrivateKey.generate(), "desk-2": P256Key()}
    section = units_section(_listed(keys), [])
    assert [u.get("alg") for u in section["list"]] == [None, P256]  # an Ed25519 entry is as it was
    payload = {"station": {"id": STATION}, "units": section}
    got = station_units(payload, {}, "desk-2", keys["desk-2"].public_key())
    assert got is not None and got.keys["desk-2"].public_numbers() == keys["desk-2"].public_key().public_numbers()


@pytest.mark.parametrize(("change", "words"), [
    (lambda u: u.update(alg="rsa"), "unit desk-2 names the key algorithm 'rsa'"),
    (lambda u: u.pop("alg"), "unit desk-2 has no valid public key (ed25519: base64 of 32 bytes)"),
])
def test_a_units_entry_with_an_unknown_alg_or_none_for_a_p256_key_is_refused(change: Any, words: str) -> None:
    keys = {"desk-1": Ed25519PrivateKey.generate(), "desk-2": P256Key()}
    section = units_section(_listed(keys), [])
    change(section["list"][1])
    with pytest.raises(PackageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        station_units({"station": {"id": STATION}, "units": section}, {}, "desk-2", None)


def test_a_tpm_unit_whose_key_is_not_its_enrolled_one_is_refused() -> None:
    keys = {"desk-1": Ed25519PrivateKey.generate(), "desk-2": P256Key()}
    payload = {"station": {"id": STATION}, "units": units_section(_listed(keys), [])}
    with pytest.raises(PackageError, match="not the key the package enrolled for unit 'desk-2'"):
        station_units(payload, {}, "desk-2", P256Key().public_key())


# --- a unit whose key is in a software TPM -------------------------------------------------------------------


def tpm_unit(root: Path, uid: str, tpm: SoftTpm) -> str:
    """Give demo unit ``uid`` under ``root`` a key made in ``tpm`` instead of its key file, as a technician
    provisions a TPM unit, and have the CEC list that key for it in the station package (re-signed, given
    to every unit). Returns the key as base64."""
    data = root / uid / "data"
    for name in ("device.key", "device.pub"):
        (data / name).unlink()
    signer = create_signer(data, "tpm", tpm.tcti)
    key = public_b64(signer.public_key())
    signer.close()
    config = root / uid / "station.toml"
    config.write_text(config.read_text(encoding="utf-8") + f'\n[key]\nstore = "tpm"\ntcti = "{tpm.tcti}"\n',
                      encoding="utf-8")
    relist(root, {uid: key})
    return key


def relist(root: Path, keys: dict[str, str]) -> None:
    """The CEC's package with ``keys`` listed for their units (re-signed), written to every unit of ``root``."""
    cec = Ed25519PrivateKey.from_private_bytes((root / "desk-1" / "cec.key").read_bytes())
    payload = json.loads((root / "desk-1" / "station-package.json").read_bytes())["payload"]
    listed = [(u["id"], u["role"], keys.get(u["id"], u["public_key"]), u["address"]) for u in payload["units"]["list"]]
    payload["units"] = units_section(listed, payload["units"]["home_voting"])
    signed = sign_package(payload, cec)
    for unit in payload["units"]["list"]:
        (root / unit["id"] / "station-package.json").write_bytes(signed)


@pytest.fixture
def tpm_station(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Station]:
    """The three demo units in this process, desk-2's key held in a swtpm."""
    root = make_template(tmp_path_factory)
    tpm = SoftTpm.start(tmp_path / "tpm")
    try:
        tpm_unit(root, "desk-2", tpm)
        station = Station(root)
        try:
            yield station
        finally:
            station.close()
    finally:
        tpm.stop()


@needs_swtpm
def test_a_tpm_units_check_ins_reach_the_others_and_theirs_reach_it(tpm_station: Station) -> None:
    apps = tpm_station.apps
    assert apps["desk-1"].identify_manual(PINS[0]).outcome == "admitted"
    assert apps["desk-2"].identify_manual(PINS[1]).outcome == "admitted"
    tpm_station.sync()
    tpm_station.sync()
    assert apps["desk-2"].identify_manual(PINS[0]).outcome == "admitted_elsewhere"
    assert apps["desk-1"].identify_manual(PINS[1]).outcome == "admitted_elsewhere"
    served = apps["desk-2"].unit_sync.log.records_after("desk-2", 0, 10)  # type: ignore[union-attr]
    assert [r["alg"] for r in served] == [P256]
    tpm_key = apps["desk-1"].unit_sync.units.keys["desk-2"]  # type: ignore[union-attr]
    [applied] = [e for e in tpm_station.events("desk-1", ev.PeerCheckinApplied) if e.unit == "desk-2"]
    body = wire.body_of(PeerCheckin(STATION, "desk-2", 1, applied.voter, applied.line, applied.at, applied.hlc))
    assert signature_holds(tpm_key, base64.b64decode(applied.signature), wire.RECORD_LABEL + canonical(body))
    relayed = apps["mobile"].unit_sync.log.records_after("desk-2", 0, 10)  # type: ignore[union-attr]
    assert [r["alg"] for r in relayed] == [P256]  # the mobile unit passes desk-2's record on with its alg
    for uid, app in apps.items():
        assert not tpm_station.events(uid, ev.PeerRecordRefused)
        assert app.verify().ok


@needs_swtpm
def test_a_tpm_unit_closes_and_the_main_desk_takes_its_close(tpm_station: Station) -> None:
    apps = tpm_station.apps
    assert apps["desk-2"].identify_manual(PINS[2]).outcome == "admitted"
    tpm_station.sync()
    apps["desk-2"].close_polls()
    apps["mobile"].close_polls()
    tpm_station.sync()
    tpm_station.sync()
    closes = [e.unit for e in tpm_station.events("desk-1", ev.PeerClosed)]
    assert sorted(closes) == ["desk-2", "mobile"]
    assert apps["desk-1"].unit_sync.log.close_of("desk-2")["alg"] == P256  # type: ignore[union-attr,index]


@needs_swtpm
def test_a_tpm_unit_whose_key_the_package_did_not_enroll_does_not_start(tmp_path_factory: pytest.TempPathFactory,
                                                                        tmp_path: Path) -> None:
    from device.compose import build_appliance
    from device.config import load_config

    root = make_template(tmp_path_factory)
    tpm = SoftTpm.start(tmp_path / "tpm")
    try:
        tpm_unit(root, "desk-2", tpm)
        relist(root, {"desk-2": public_b64(P256Key().public_key())})  # the package enrolls another P-256 key
        with pytest.raises(PackageError, match="this unit's device key is not the key the package enrolled"):
            build_appliance(load_config(root / "desk-2" / "station.toml"))
        assert not (root / "desk-2" / "data" / "journal.db").exists()  # refused before the journal opened
        from device.signing import load_signer
        load_signer(root / "desk-2" / "data", "tpm", tpm.tcti).close()  # and the TPM was let go
    finally:
        tpm.stop()


# --- through pollbox run -------------------------------------------------------------------------------------


SYNCED_WITHIN = 60.0


@needs_swtpm
@pytest.mark.slow
def test_pollbox_run_a_tpm_desk_and_a_file_desk_sync_and_bad_algs_are_refused(tmp_path: Path) -> None:
    """desk-1 (key file) and desk-2 (key in a swtpm) as two ``pollbox run`` processes: each admission reaches
    the other; a stand-in at the mobile unit's address serves desk-2's next record re-signed by an Ed25519 key
    and named ed25519, and one named with an unknown alg: desk-1 refuses both, saying why, and applies nothing
    of them."""
    from tests.units.test_units_process import Units, _StandIn

    units = Units(tmp_path / "units")
    tpm = SoftTpm.start(tmp_path / "tpm")
    try:
        tpm_unit(units.root, "desk-2", tpm)
        units.start("desk-1")
        units.start("desk-2")
        units.link("desk-1", "desk-2", False)  # first, desk-1 gets desk-2's records only through the stand-in
        assert units.manual("desk-2", PINS[0]) == "admitted"
        with urllib.request.urlopen(f"http://127.0.0.1:{units.port('desk-2')}/units/records?unit=desk-2&after=0",
                                    timeout=5) as answer:
            [real] = json.loads(answer.read())["records"]
        assert real["alg"] == P256
        body = {**real["body"], "seq": 2}
        ed = Ed25519PrivateKey.generate()
        as_ed25519 = {"body": body, "alg": "ed25519",
                      "signature": base64.b64encode(ed.sign(wire.RECORD_LABEL + canonical(body))).decode()}
        unknown = {**real, "alg": "sm2"}

        def answer_(path: str) -> bytes:
            records = [real, unknown, as_ed25519] if "unit=desk-2" in path else []
            return wire.message(STATION, "mobile", time.time(), records, {"mobile": 0})
        stand_in = _StandIn(units.port("mobile"), answer_)
        try:
            deadline = time.monotonic() + SYNCED_WITHIN
            while units.sync_status("desk-1")["held"].get("desk-2", 0) < 1:
                assert time.monotonic() < deadline, "desk-1 did not take desk-2's record through the stand-in"
                time.sleep(0.1)  # polling pace against a named deadline
            assert units.manual("desk-1", PINS[0]) == "admitted_elsewhere"
        finally:
            stand_in.close()
        units.link("desk-1", "desk-2", True)
        assert units.manual("desk-1", PINS[1]) == "admitted"
        assert units.manual("desk-2", PINS[2]) == "admitted"
        deadline = time.monotonic() + SYNCED_WITHIN
        while not (units.sync_status("desk-1")["held"].get("desk-2", 0) == 2 and
                   units.sync_status("desk-2")["held"].get("desk-1", 0) == 1):
            assert time.monotonic() < deadline, "the two desks did not sync"
            time.sleep(0.1)  # polling pace against a named deadline
        assert units.manual("desk-2", PINS[1]) == "admitted_elsewhere"
        assert units.manual("desk-1", PINS[2]) == "admitted_elsewhere"
        units.stop_all()
        desk1 = units.journal("desk-1")
        applied = [(r.event.unit, r.event.unit_seq) for r in desk1 if isinstance(r.event, ev.PeerCheckinApplied)]
        assert applied == [("desk-2", 1), ("desk-2", 2)]  # the forged seq 2 was not applied; the real one was
        reasons = [r.event.reason for r in desk1 if isinstance(r.event, ev.PeerRecordRefused)]
        assert any("signed with the algorithm 'sm2', which units do not use" in r for r in reasons), reasons
        assert any("signed as ed25519, but the package enrolled a p256 key for unit 'desk-2'" in r
                   for r in reasons), reasons
        assert not [r for r in units.journal("desk-2") if isinstance(r.event, ev.PeerRecordRefused)]
    finally:
        units.stop_all()
        tpm.stop()


# --- the CEC lists a TPM unit ------------------------------------------------------------------------------


def test_cec_package_takes_a_tpm_units_base64_key_and_lists_it_with_its_alg() -> None:
    from provisioning.units import parse_unit, units_payload
    desk1, desk2 = Ed25519PrivateKey.generate(), P256Key()
    units = [parse_unit(f"desk-1,desk,{public_b64(desk1.public_key())}", STATION),
             parse_unit(f"desk-2,desk,{public_b64(desk2.public_key())},10.0.0.12:8471", STATION)]
    section = units_payload(units, [], set())
    assert section["list"][1] == {"id": "desk-2", "role": "desk", "public_key": public_b64(desk2.public_key()),
                                  "address": "10.0.0.12:8471", "alg": P256}
    assert "alg" not in section["list"][0]


def test_cec_package_refuses_a_65_byte_key_that_is_not_a_p256_point() -> None:
    from provisioning.errors import ProvisionError
    from provisioning.units import parse_unit
    not_a_point = base64.b64encode(bytes([4]) + bytes([1]) * 64).decode()
    with pytest.raises(ProvisionError, match="nor a base64 Ed25519 public key"):
        parse_unit(f"desk-2,desk,{not_a_point}", STATION)


@needs_swtpm
def test_cec_package_takes_a_tpm_units_enrollment_request(tmp_path: Path) -> None:
    from provisioning.enrollment import create_unit_keys, make_request, write_json
    from provisioning.units import parse_unit
    tpm = SoftTpm.start(tmp_path / "tpm")
    try:
        data = tmp_path / "desk-2"
        data.mkdir()
        create_unit_keys(data, "tpm", tpm.tcti)
        request = make_request(data, STATION, "SN-2", 1_800_000_000.0, "tpm", tpm.tcti)
    finally:
        tpm.stop()
    write_json(tmp_path / "desk-2.json", request)
    unit = parse_unit(f"desk-2,desk,{tmp_path / 'desk-2.json'}", STATION)
    assert request["alg"] == P256 and unit.public_key == request["public_key"]
