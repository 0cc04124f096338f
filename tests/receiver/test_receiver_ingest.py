"""Ingest: receipts, idempotent duplicates, conflict evidence, partial batches, imports, station status."""

from __future__ import annotations

import gzip

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post, stored

from protocol.batch import encode_batch
from protocol.envelope import parse_line
from protocol.export import render_export
from protocol.receipts import verify_receipt
from receiver.cli import main as cli_main


def receipt_seq(setup: Setup, doc: dict[str, object], station: str = "KG-0001") -> int:
    return verify_receipt(str(doc["receipt"]), setup.receiver_key.public_key(), station)


def test_accepted_batch_gets_a_signed_receipt(app: Flask, client: FlaskClient, setup: Setup) -> None:
    reply = post(client, setup.units["KG-0001"].records(5))
    doc = reply.get_json()
    assert (reply.status_code, doc["accepted"], doc["duplicates"]) == (200, 5, 0)
    assert receipt_seq(setup, doc) == 5
    assert stored(app) == (5, 5)


def test_gzip_batch_is_accepted(app: Flask, client: FlaskClient, setup: Setup) -> None:
    body = gzip.compress(encode_batch(setup.units["KG-0001"].records(4)))
    reply = post(client, body, **{"Content-Encoding": "gzip"})
    assert (reply.status_code, reply.get_json()["accepted"]) == (200, 4)


def test_resent_batch_is_acknowledged_again_without_storing_twice(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(3)
    post(client, records[:2])
    doc = post(client, records).get_json()
    assert (doc["accepted"], doc["duplicates"], receipt_seq(setup, doc)) == (1, 2, 3)
    doc = post(client, records).get_json()
    assert (doc["accepted"], doc["duplicates"], receipt_seq(setup, doc)) == (0, 3, 3)
    assert stored(app) == (3, 3)


def test_conflicting_record_is_kept_as_evidence_never_overwriting(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    first = unit.records(2)
    post(client, first)
    unit.seq, unit.prev = 1, first[0].hash
    second = unit.record("annotation", {"topic": "t", "text": "another story"})
    reply = post(client, [second])
    doc = reply.get_json()
    assert (reply.status_code, doc["error"], doc["seq"], receipt_seq(setup, doc)) == (409, "conflict", 2, 2)
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.record_line("KG-0001", 2) == first[1].line()
    assert [(c["seq"], c["line"]) for c in storage.conflicts_of("KG-0001")] == [(2, second.line())]
    assert stored(app) == (2, 2)


def test_records_before_the_bad_one_are_stored_and_those_after_are_not(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    good = unit.records(2)
    unit.prev = "cd" * 32
    bad_and_after = unit.records(2)
    doc = post(client, good + bad_and_after).get_json()
    assert (doc["error"], doc["seq"], doc["accepted"], receipt_seq(setup, doc)) == ("chain_broken", 3, 2, 2)
    assert stored(app) == (2, 2)


def test_signature_failure_after_good_records_keeps_the_good_ones(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(3)
    thief = Unit("KG-0001", key=setup.units["KG-0002"].key, seq=3, prev=records[-1].hash)
    doc = post(client, records + [thief.record()]).get_json()
    assert (doc["error"], doc["seq"], doc["accepted"]) == ("wrong_station", 4, 3)
    assert stored(app) == (3, 3)


def test_receipt_endpoint_tracks_the_station(app: Flask, client: FlaskClient, setup: Setup) -> None:
    assert client.get("/api/v1/stations/KG-0001/receipt").get_json() == {"receipt": None}
    post(client, setup.units["KG-0001"].records(2))
    doc = client.get("/api/v1/stations/KG-0001/receipt").get_json()
    assert receipt_seq(setup, doc) == 2
    assert client.get("/api/v1/stations/KG-0002/receipt").get_json() == {"receipt": None}


def test_stored_record_is_served_exactly(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(2)
    post(client, records)
    assert client.get("/api/v1/records/KG-0001/2").get_json() == {"line": records[1].line()}
    assert client.get("/api/v1/records/KG-0001/3").status_code == 404


def test_replacement_unit_continues_the_station_sequence(app: Flask, client: FlaskClient, setup: Setup) -> None:
    old = setup.units["KG-0001"]
    post(client, old.records(3))
    spare = Unit("KG-0001")
    setup.enroll(spare)
    receipt = client.get("/api/v1/stations/KG-0001/receipt").get_json()
    highest = receipt_seq(setup, receipt)
    last = client.get(f"/api/v1/records/KG-0001/{highest}").get_json()["line"]
    spare.seq, spare.prev = highest, parse_line(last).hash
    doc = post(client, spare.records(2)).get_json()
    assert (doc["accepted"], receipt_seq(setup, doc)) == (2, 5)


def test_station_status_follows_its_records(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record("polls_opened", {"identified": 0, "ballots": 0}),
                  unit.record("turnout_snapshot", {"identified": 40, "ballots": 40, "registered": 100}),
                  unit.record("alarm_raised", {"alarm": 1, "alarm_kind": "lid_opened", "detail": ""}),
                  unit.record("alarm_raised", {"alarm": 2, "alarm_kind": "jam", "detail": "slot"}),
                  unit.record("alarm_acknowledged", {"alarm": 1, "note_given": False}),
                  unit.record("something_new", {"x": 1})])
    status = app.extensions["pollbox_receiver"].storage.status("KG-0001")
    assert (status.phase, status.identified, status.registered, status.alarms_open) == ("open", 40, 100, 1)
    post(client, [unit.record("polls_closed", {"identified": 61, "ballots": 60, "difference": -1,
                                               "alarms_total": 2, "alarms_open": 1})])
    status = app.extensions["pollbox_receiver"].storage.status("KG-0001")
    assert (status.phase, status.identified, status.ballots, status.highest_seq) == ("closed", 61, 60, 7)
    assert status.close_body()["difference"] == -1


def export_of(unit: Unit, n: int) -> bytes:
    return render_export(unit.records(n), station=unit.station, key=unit.key_id, created_at=1.8e9)


def test_export_file_imported_over_http_goes_through_ingest(app: Flask, client: FlaskClient, setup: Setup) -> None:
    data = export_of(setup.units["KG-0001"], 3)
    doc = client.post("/api/v1/import", data=data).get_json()
    assert (doc["accepted"], doc["duplicates"], receipt_seq(setup, doc)) == (3, 0, 3)
    doc = client.post("/api/v1/import", data=data).get_json()
    assert (doc["accepted"], doc["duplicates"]) == (0, 3)


def test_import_of_a_forged_export_stores_nothing(app: Flask, client: FlaskClient, setup: Setup) -> None:
    intruder = Unit("KG-0001")
    reply = client.post("/api/v1/import", data=export_of(intruder, 2))
    assert (reply.status_code, reply.get_json()["error"]) == (403, "unknown_key")
    reply = client.post("/api/v1/import", data=b'{"format": "something else"}\n')
    assert (reply.status_code, reply.get_json()["error"]) == (400, "malformed")
    assert stored(app) == (0, 0)


def test_import_command_uses_the_same_path(setup: Setup, tmp_path: pytest.TempPathFactory, db_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = setup.directory / "pollbox-export-KG-0001-1-3.txt"
    path.write_bytes(export_of(setup.units["KG-0001"], 3))
    assert cli_main(["import", *setup.cli_args(db_url), str(path)]) == 0
    assert "3 accepted, 0 duplicates" in capsys.readouterr().out
    assert cli_main(["import", *setup.cli_args(db_url), str(path)]) == 0
    bad = setup.directory / "bad.txt"
    bad.write_bytes(export_of(Unit("KG-0001"), 1))
    assert cli_main(["import", *setup.cli_args(db_url), str(bad)]) == 1
    assert "unknown_key" in capsys.readouterr().err


def test_ingest_command_reads_gzip_batches(setup: Setup, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = setup.directory / "batch.gz"
    path.write_bytes(gzip.compress(encode_batch(setup.units["KG-0002"].records(5))))
    assert cli_main(["ingest", *setup.cli_args(db_url), str(path)]) == 0
    assert "station KG-0002: 5 accepted" in capsys.readouterr().out


def test_database_failure_answers_503_and_rolls_the_batch_back(app: Flask, client: FlaskClient, setup: Setup) -> None:
    storage = app.extensions["pollbox_receiver"].storage
    post(client, setup.units["KG-0001"].records(2))
    storage.conn().execute("ALTER TABLE merkle_nodes RENAME TO merkle_nodes_away")
    reply = post(client, setup.units["KG-0001"].records(2))
    assert (reply.status_code, reply.get_json()["error"]) == (503, "unavailable")
    storage.conn().execute("ALTER TABLE merkle_nodes_away RENAME TO merkle_nodes")
    assert stored(app) == (2, 2) and storage.highest_seq("KG-0001") == 2


def test_libsodium_verification_agrees_with_the_openssl_binding() -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from protocol.envelope import SignedRecord
    from receiver.ingest import signature_holds

    unit, other = Unit("KG-0001"), Unit("KG-0001")
    raw = unit.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    record = unit.record()
    flipped = bytearray(record.signature)
    flipped[5] ^= 1
    cases = [record,
             SignedRecord(record.data.replace(b'"t"', b'"u"'), record.signature, record.fields),
             SignedRecord(record.data, bytes(flipped), record.fields),
             SignedRecord(record.data, other.key.sign(record.data), record.fields),
             SignedRecord(record.data, record.signature[:40], record.fields)]
    for case in cases:
        try:
            unit.key.public_key().verify(case.signature, case.data)
            openssl = True
        except InvalidSignature:
            openssl = False
        assert signature_holds(case, raw) is openssl
    assert [signature_holds(c, raw) for c in cases] == [True, False, False, False, False]
