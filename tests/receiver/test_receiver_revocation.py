"""Revoking a unit's key: the registry format, ingest (revoked_key), the CLI, reload in a running receiver, pages."""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from rx_kit import Setup, Unit, post, stored

from device.hardware.clock import FakeClock
from device.keys import write_private
from protocol.canonical import canonical
from protocol.receipts import verify_receipt
from receiver.app import create_app
from receiver.cli import main as cli_main
from receiver.ingest import authenticate
from receiver.registry import DeviceEntry, Registry, RegistryError, RegistryFile, Revocation
from receiver.service import ReceiverConfigError, build_receiver

REVOCATION = Revocation(at="2026-11-27T11:00:00.000000Z", reason="stolen", by="duty officer", last_seq=3)


def receipt_seq(setup: Setup, doc: dict[str, Any], station: str = "KG-0001") -> int:
    return verify_receipt(str(doc["receipt"]), setup.receiver_key.public_key(), station)


def page(client: FlaskClient, url: str) -> str:
    reply = client.get(url)
    assert reply.status_code == 200, reply.data[:300]
    return reply.get_data(as_text=True)


def rejection_codes(app: Flask) -> list[str]:
    return [r["code"] for r in app.extensions["pollbox_receiver"].storage.rejections()]


# The registry format ------------------------------------------------------------------------------------------

def test_old_format_registry_without_revocations_loads_unchanged(tmp_path: Path) -> None:
    cec, unit = Ed25519PrivateKey.generate(), Unit("KG-0001")
    devices = [unit.entry().as_json()]
    signature = base64.b64encode(cec.sign(canonical(devices))).decode()
    old = canonical({"format": "pollbox-device-registry/1", "devices": devices, "signature": signature}) + b"\n"
    (tmp_path / "r.json").write_bytes(old)
    registry = Registry.load(tmp_path / "r.json", cec.public_key())
    assert registry.for_key(unit.key_id) == unit.entry() and registry.revocation_of(unit.key_id) is None
    registry.sign_and_save(tmp_path / "again.json", cec)
    assert (tmp_path / "again.json").read_bytes() == old


def test_revocation_round_trips_inside_the_signed_device_list(tmp_path: Path) -> None:
    cec, unit, other = Ed25519PrivateKey.generate(), Unit("KG-0001"), Unit("KG-0002")
    registry = Registry([unit.entry(), other.entry()])
    registry.revoke(unit.key_id, "KG-0001", REVOCATION)
    registry.sign_and_save(tmp_path / "r.json", cec)
    doc = json.loads((tmp_path / "r.json").read_bytes())
    revoked = [d for d in doc["devices"] if d["key_id"] == unit.key_id][0]
    assert revoked["revocation"] == {"at": REVOCATION.at, "reason": "stolen", "by": "duty officer", "last_seq": 3}
    assert all("revocation" not in d for d in doc["devices"] if d["key_id"] == other.key_id)
    loaded = Registry.load(tmp_path / "r.json", cec.public_key())
    assert loaded.revocation_of(unit.key_id) == REVOCATION and loaded.revocation_of(other.key_id) is None
    assert loaded.revoked_stations() == {"KG-0001"}


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("by"), "fields must be exactly"),
    (lambda r: r.update(last_seq=-1), "whole number"),
    (lambda r: r.update(last_seq="3"), "whole number"),
    (lambda r: r.update(last_seq=True), "whole number"),
    (lambda r: r.update(at="yesterday"), "must be UTC"),
    (lambda r: r.update(reason=" "), "'reason' must be"),
    (lambda r: r.update(by="a\nb"), "'by' must be"),
    (lambda r: r.update(reason=7), "are strings"),
])
def test_a_validly_signed_but_malformed_revocation_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    cec, unit = Ed25519PrivateKey.generate(), Unit("KG-0001")
    entry = unit.entry().as_json()
    revocation = {"at": REVOCATION.at, "reason": "stolen", "by": "x", "last_seq": 2}
    change(revocation)
    devices = [entry | {"revocation": revocation}]
    signature = base64.b64encode(cec.sign(canonical(devices))).decode()
    (tmp_path / "r.json").write_bytes(canonical({"format": "pollbox-device-registry/1", "devices": devices,
                                                 "signature": signature}))
    with pytest.raises(RegistryError, match=message):
        Registry.load(tmp_path / "r.json", cec.public_key())


def test_a_revoked_key_cannot_be_enrolled_again_nor_revoked_twice() -> None:
    unit = Unit("KG-0001")
    registry = Registry([unit.entry()])
    registry.revoke(unit.key_id, "KG-0001", REVOCATION)
    with pytest.raises(RegistryError, match="is revoked; a revoked key cannot be enrolled again"):
        registry.add(DeviceEntry(**dict(unit.entry().__dict__, enrolled_at="2026-11-28T10:00:00.000000Z")))
    with pytest.raises(RegistryError, match="already revoked"):
        registry.revoke(unit.key_id, "KG-0001", REVOCATION)


def test_removing_a_revocation_breaks_the_signature(setup: Setup) -> None:
    setup.revoke(setup.units["KG-0001"], 3)
    doc = json.loads(setup.registry_path.read_bytes())
    for device in doc["devices"]:
        device.pop("revocation", None)
    setup.registry_path.write_bytes(canonical(doc))
    with pytest.raises(RegistryError, match="does not verify"):
        Registry.load(setup.registry_path, setup.cec.public_key())


# Ingest -------------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(last_seq=st.integers(0, 40), seq=st.integers(1, 60))
def test_authentication_refuses_exactly_the_seqs_beyond_last_seq(last_seq: int, seq: int) -> None:
    unit = Unit("KG-0001", seq=seq - 1)
    registry = Registry([unit.entry()])
    registry.revoke(unit.key_id, "KG-0001", Revocation(REVOCATION.at, "lost", "cec", last_seq))
    authentic, rejection = authenticate([unit.record()], registry)
    if seq <= last_seq:
        assert (authentic, rejection) == (1, None)
    else:
        assert authentic == 0 and rejection is not None
        assert (rejection.code, rejection.seq, rejection.key, rejection.http_status) == (
            "revoked_key", seq, unit.key_id, 403)


@settings(max_examples=15, deadline=None)
@given(sent=st.integers(1, 12), last_seq=st.integers(0, 14))
def test_a_revoked_key_stores_up_to_last_seq_and_not_one_record_more(sent: int, last_seq: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        setup = Setup(Path(directory), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(),
                      {"KG-0001": Unit("KG-0001")})
        write_private(setup.key_path, setup.receiver_key)
        setup.enroll(*setup.units.values())
        setup.revoke(setup.units["KG-0001"], last_seq)
        receiver = build_receiver(setup.config(str(Path(directory) / "rx.db"), FakeClock()))
        records = setup.units["KG-0001"].records(sent)
        outcome = receiver.ingestor.ingest_records(records, "test")
        kept = min(sent, last_seq)
        assert (outcome.accepted, receiver.storage.count_records(), receiver.storage.tree()[0]) == (kept, kept, kept)
        assert (outcome.rejection.code if outcome.rejection else None) == ("revoked_key" if sent > last_seq else None)
        again = receiver.ingestor.ingest_records(records[:kept] or records[:1], "test")
        assert again.accepted == 0 and again.duplicates == kept
        receiver.storage.close()


def test_records_up_to_last_seq_stay_valid_and_resends_are_idempotent(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    records = unit.records(6)
    assert post(client, records[:3]).status_code == 200
    setup.revoke(unit, 4)
    again = post(client, records[:3])
    assert (again.status_code, again.get_json()["duplicates"], receipt_seq(setup, again.get_json())) == (200, 3, 3)
    late = post(client, records[3:4])  # signed before the loss, delivered after: within last_seq, accepted
    assert (late.status_code, late.get_json()["accepted"], receipt_seq(setup, late.get_json())) == (200, 1, 4)
    assert post(client, records[:4]).get_json() | {"receipt": None} == {
        "receipt": None, "accepted": 0, "duplicates": 4}
    assert stored(app) == (4, 4)


def test_a_record_beyond_last_seq_is_refused_and_nothing_is_stored(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, unit.records(3))
    setup.revoke(unit, 3)
    reply = post(client, unit.records(2))
    doc = reply.get_json()
    assert (reply.status_code, doc["error"], doc["seq"], doc["accepted"]) == (403, "revoked_key", 4, 0)
    assert "accepted only up to seq 3" in doc["reason"] and receipt_seq(setup, doc) == 3
    assert stored(app) == (3, 3)
    assert rejection_codes(app) == ["revoked_key"]
    assert app.extensions["pollbox_receiver"].storage.conflicts_of("KG-0001") == []


def test_a_batch_crossing_last_seq_stores_the_records_before_it(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    records = unit.records(5)
    setup.revoke(unit, 2)
    doc = post(client, records).get_json()
    assert (doc["error"], doc["seq"], doc["accepted"], receipt_seq(setup, doc)) == ("revoked_key", 3, 2, 2)
    assert stored(app) == (2, 2)


def test_a_replacement_unit_continues_the_chain_with_its_new_key(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    failed = setup.units["KG-0001"]
    post(client, failed.records(3))
    setup.revoke(failed, 3, reason="unit lost in transport")
    spare = Unit("KG-0001", seq=failed.seq, prev=failed.prev)  # the journal restored from the failed unit's backup
    setup.enroll(spare)
    reply = post(client, spare.records(2))
    assert (reply.status_code, receipt_seq(setup, reply.get_json())) == (200, 5)
    thief = post(client, failed.records(1))  # the lost key signs seq 4 again: refused before any conflict
    assert (thief.status_code, thief.get_json()["error"]) == (403, "revoked_key")
    assert stored(app) == (5, 5) and app.extensions["pollbox_receiver"].storage.conflicts_of("KG-0001") == []


# A running receiver -------------------------------------------------------------------------------------------

def test_a_running_receiver_picks_up_a_revocation_without_restart(
        app: Flask, client: FlaskClient, setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    unit = setup.units["KG-0001"]
    assert post(client, unit.records(2)).status_code == 200
    with caplog.at_level(logging.WARNING, logger="pollbox.receiver.registry"):
        setup.revoke(unit, 2)
        reply = post(client, unit.records(1))
    assert reply.get_json()["error"] == "revoked_key"
    assert f"key {unit.key_id} of station KG-0001" in caplog.text and "after seq 2 are refused" in caplog.text
    recorded = app.extensions["pollbox_receiver"].storage.revocations()
    assert [(r["key_id"], r["last_seq"], r["revoked_by"]) for r in recorded] == [
        (unit.key_id, 2, "CEC duty officer")]


def test_a_tampered_registry_is_refused_and_the_revocation_stays_in_force(
        app: Flask, client: FlaskClient, setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    unit = setup.units["KG-0001"]
    post(client, unit.records(2))
    setup.revoke(unit, 2)
    assert post(client, unit.records(1)).get_json()["error"] == "revoked_key"
    doc = json.loads(setup.registry_path.read_bytes())
    for device in doc["devices"]:
        device.pop("revocation", None)
    setup.registry_path.write_bytes(canonical(doc))
    with caplog.at_level(logging.ERROR, logger="pollbox.receiver.registry"):
        reply = post(client, [unit.record()])
    assert reply.get_json()["error"] == "revoked_key" and stored(app) == (2, 2)
    assert "keeping the previous one" in caplog.text and "does not verify" in caplog.text


def test_an_older_validly_signed_registry_cannot_undo_a_revocation(
        app: Flask, client: FlaskClient, setup: Setup, caplog: pytest.LogCaptureFixture,
        db_url: str, clock: FakeClock) -> None:
    unit = setup.units["KG-0001"]
    before = setup.registry_path.read_bytes()
    post(client, unit.records(1))
    setup.revoke(unit, 1)
    post(client, unit.records(1))
    setup.registry_path.write_bytes(before)  # the CEC-signed registry of this morning, put back
    with caplog.at_level(logging.ERROR, logger="pollbox.receiver.registry"):
        assert post(client, unit.records(1)).get_json()["error"] == "revoked_key"
    assert "a revocation is never undone" in caplog.text
    with pytest.raises(ReceiverConfigError, match=f"does not revoke key {unit.key_id} of station KG-0001"):
        build_receiver(setup.config(db_url, clock))


def test_registry_file_refuses_to_drop_a_revoked_device(tmp_path: Path) -> None:
    cec, unit = Ed25519PrivateKey.generate(), Unit("KG-0001")
    registry = Registry([unit.entry()])
    registry.revoke(unit.key_id, "KG-0001", REVOCATION)
    registry.sign_and_save(tmp_path / "r.json", cec)
    watched = RegistryFile(tmp_path / "r.json", cec.public_key())
    Registry().sign_and_save(tmp_path / "r.json", cec)
    assert watched.current().revocation_of(unit.key_id) == REVOCATION


# Pages and API ------------------------------------------------------------------------------------------------

def test_pages_and_api_show_the_revocation(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, unit.records(2))
    setup.revoke(unit, 2, reason="stolen <at night>", by="A. Chair")
    overview = page(client, "/")
    assert "<b>1</b> revoked keys" in overview
    rows = overview.split("<tbody>")[1].split("</tr>")
    assert "key revoked" in [r for r in rows if "KG-0001" in r][0]
    assert "key revoked" not in [r for r in rows if "KG-0002" in r][0]
    detail = page(client, "/stations/KG-0001")
    assert "<b>revoked</b> 2026-11-27T11:00:00.000000Z by A. Chair: stolen &lt;at night&gt;" in detail
    assert "accepted up to seq 2" in detail and "lie beyond" not in detail
    assert "in force" in page(client, "/stations/KG-0002")
    devices = client.get("/api/v1/stations/KG-0001/devices").get_json()["devices"]
    assert devices[0]["revocation"] == {"at": "2026-11-27T11:00:00.000000Z", "reason": "stolen <at night>",
                                        "by": "A. Chair", "last_seq": 2}
    assert client.get("/api/v1/stations/KG-9999/devices").status_code == 404
    signed = client.get("/api/v1/registry").data
    assert signed == setup.registry_path.read_bytes()
    assert Registry.from_bytes(signed, setup.cec.public_key()).revocation_of(unit.key_id) is not None


def test_station_page_flags_stored_records_beyond_last_seq(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, unit.records(5))  # received before the CEC decided to trust only the first two
    setup.revoke(unit, 2)
    detail = page(client, "/stations/KG-0001")
    assert "3 stored record(s) signed by this key lie beyond seq 2" in detail and "(seq 3 to 5)" in detail
    assert stored(app) == (5, 5)  # nothing already stored is ever removed


# The CLI ------------------------------------------------------------------------------------------------------

@pytest.fixture
def cli_setup(setup: Setup) -> Setup:
    write_private(setup.directory / "cec.key", setup.cec)
    return setup


def revoke_args(setup: Setup, station: str, key: str, *more: str) -> list[str]:
    return ["revoke", "--registry", str(setup.registry_path), "--cec-key", str(setup.directory / "cec.key"),
            "--station", station, "--key-id", key, "--reason", "stolen", "--by", "duty officer", *more]


def test_cli_revoke_with_db_freezes_what_the_receiver_stores(
        cli_setup: Setup, db_url: str, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    failed, spare = cli_setup.units["KG-0001"], Unit("KG-0001")
    app = create_app(cli_setup.config(db_url, clock))
    client = app.test_client()
    post(client, failed.records(3))
    spare.seq, spare.prev = failed.seq, failed.prev
    cli_setup.enroll(spare)
    post(client, spare.records(2))  # seqs 4-5 signed by the spare: the failed key's last stored seq stays 3
    assert cli_main(revoke_args(cli_setup, "KG-0001", failed.key_id, "--db", db_url)) == 0
    assert f"revoked key {failed.key_id} of station KG-0001" in capsys.readouterr().out
    revocation = Registry.load(cli_setup.registry_path, cli_setup.cec.public_key()).revocation_of(failed.key_id)
    assert revocation is not None and (revocation.last_seq, revocation.reason, revocation.by) == (
        3, "stolen", "duty officer")
    failed.seq, failed.prev = spare.seq, spare.prev
    assert post(client, failed.records(1)).get_json()["error"] == "revoked_key"  # the running app reloaded
    assert post(client, spare.records(1)).status_code == 200
    app.extensions["pollbox_receiver"].storage.close()


def test_cli_revoke_with_db_of_a_key_that_stored_nothing_accepts_none(
        cli_setup: Setup, tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "rx.db")
    build_receiver(cli_setup.config(db, clock)).storage.close()
    assert cli_main(revoke_args(cli_setup, "KG-0002", cli_setup.units["KG-0002"].key_id, "--db", db)) == 0
    assert "records up to seq 0 are accepted" in capsys.readouterr().out


def test_cli_revoke_with_last_seq(cli_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    unit = cli_setup.units["KG-0002"]
    assert cli_main(revoke_args(cli_setup, "KG-0002", unit.key_id, "--last-seq", "17")) == 0
    assert "records up to seq 17 are accepted" in capsys.readouterr().out
    registry = Registry.load(cli_setup.registry_path, cli_setup.cec.public_key())
    assert registry.revocation_of(unit.key_id).last_seq == 17  # type: ignore[union-attr]
    assert registry.revocation_of(cli_setup.units["KG-0001"].key_id) is None


@pytest.mark.parametrize("station, key, more, message", [
    ("KG-0001", "KG-0001", [], "give exactly one of --last-seq N"),
    ("KG-0001", "KG-0001", ["--last-seq", "2", "--db", "x.db"], "give exactly one of --last-seq N"),
    ("KG-0001", "0123456789abcdef", ["--last-seq", "2"], "key 0123456789abcdef is not enrolled"),
    ("KG-0002", "KG-0001", ["--last-seq", "2"], "is enrolled for station KG-0001, not KG-0002"),
    ("KG-0001", "KG-0001", ["--last-seq", "-1"], "--last-seq must be 0 or more"),
    ("KG-0001", "KG-0001", ["--db", "MISSING"], "no receiver database at"),
])
def test_cli_revoke_errors_are_one_line_and_change_nothing(
        cli_setup: Setup, capsys: pytest.CaptureFixture[str], station: str, key: str, more: list[str],
        message: str) -> None:
    before = cli_setup.registry_path.read_bytes()
    key_id = cli_setup.units[key].key_id if key in cli_setup.units else key
    more = [str(cli_setup.directory / "missing.db") if m == "MISSING" else m for m in more]
    assert cli_main(revoke_args(cli_setup, station, key_id, *more)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert cli_setup.registry_path.read_bytes() == before
    assert not (cli_setup.directory / "missing.db").exists()


def test_cli_revoking_an_already_revoked_key_is_refused(cli_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    key_id = cli_setup.units["KG-0001"].key_id
    assert cli_main(revoke_args(cli_setup, "KG-0001", key_id, "--last-seq", "2")) == 0
    after_first = cli_setup.registry_path.read_bytes()
    assert cli_main(revoke_args(cli_setup, "KG-0001", key_id, "--last-seq", "9")) == 2
    err = capsys.readouterr().err
    assert "is already revoked" in err and "records up to seq 2 accepted" in err and err.count("\n") == 1
    assert cli_setup.registry_path.read_bytes() == after_first


def test_cli_revoke_refuses_a_registry_signed_by_another_key(
        cli_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    write_private(cli_setup.directory / "cec.key", Ed25519PrivateKey.generate())
    assert cli_main(revoke_args(cli_setup, "KG-0001", cli_setup.units["KG-0001"].key_id, "--last-seq", "1")) == 2
    assert "does not verify" in capsys.readouterr().err


def test_cli_revoke_refuses_an_empty_reason(cli_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    args = revoke_args(cli_setup, "KG-0001", cli_setup.units["KG-0001"].key_id, "--last-seq", "1")
    args[args.index("--reason") + 1] = "  "
    assert cli_main(args) == 2
    assert "'reason' must be 1-200 printable characters" in capsys.readouterr().err
