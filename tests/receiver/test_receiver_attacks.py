"""Attacks on the receiver: each is rejected with its code and reason, logged, and nothing is stored.

Every test runs on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import gzip
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from rx_kit import Setup, Unit, post, stored

from protocol.batch import MAX_BYTES, MAX_RECORDS, encode_batch
from protocol.canonical import canonical
from protocol.envelope import SignedRecord, b64u, make_record
from receiver.ingest import BatchRejected, decode, gunzip


def rejected(app: Flask, client: FlaskClient, body: list[SignedRecord] | bytes, code: str, status: int,
             seq: int | None = None, headers: dict[str, str] | None = None) -> dict[str, object]:
    """Post ``body``, check the rejection and that nothing was stored; returns the answer."""
    before = stored(app)
    reply = post(client, body, **(headers or {}))
    doc: dict[str, object] = reply.get_json()
    assert (reply.status_code, doc["error"], doc["seq"]) == (status, code, seq), doc
    assert doc["reason"] and isinstance(doc["reason"], str)
    assert stored(app) == before
    logged = app.extensions["pollbox_receiver"].storage.rejections()
    assert logged and logged[0]["code"] == code and logged[0]["reason"] == doc["reason"]
    return doc


def test_forged_signature_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    record = setup.units["KG-0001"].record()
    forged = SignedRecord(record.data, bytes(64), record.fields)
    rejected(app, client, [forged], "bad_signature", 400, seq=1)


def test_record_signed_by_a_key_never_enrolled_is_unknown(app: Flask, client: FlaskClient) -> None:
    stranger = Unit("KG-0001")
    rejected(app, client, [stranger.record()], "unknown_key", 403, seq=1)


def test_another_stations_key_cannot_report_for_this_station(app: Flask, client: FlaskClient, setup: Setup) -> None:
    thief = Unit("KG-0001", key=setup.units["KG-0002"].key)
    doc = rejected(app, client, [thief.record()], "wrong_station", 403, seq=1)
    assert "KG-0002" in str(doc["reason"])


def test_record_naming_this_stations_key_but_signed_by_another_is_forged(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    genuine = setup.units["KG-0001"].record()
    other = setup.units["KG-0002"].key
    rejected(app, client, [SignedRecord(genuine.data, other.sign(genuine.data), genuine.fields)],
             "bad_signature", 400, seq=1)


def test_replay_with_an_altered_body_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    first = unit.record("polls_closed", {"identified": 10, "ballots": 10, "difference": 0, "alarms_total": 0,
                                         "alarms_open": 0})
    assert post(client, [first]).status_code == 200
    altered = dict(first.fields, body=dict(first.fields["body"], ballots=9))
    rejected(app, client, [SignedRecord(canonical(altered), first.signature, altered)], "bad_signature", 400, seq=1)
    assert app.extensions["pollbox_receiver"].storage.conflicts_of("KG-0001") == []


def test_sequence_gap_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(3)
    doc = rejected(app, client, [records[2]], "gap", 409, seq=3)
    assert "1-2" in str(doc["reason"])


def test_broken_chain_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    assert post(client, unit.records(1)).status_code == 200
    unit.prev = "ab" * 32
    doc = rejected(app, client, [unit.record()], "chain_broken", 409, seq=2)
    assert doc["receipt"] is not None


def test_truncated_batch_is_rejected_whole(app: Flask, client: FlaskClient, setup: Setup) -> None:
    body = encode_batch(setup.units["KG-0001"].records(3))
    doc = rejected(app, client, body[:-20], "malformed", 400)
    assert "line 3" in str(doc["reason"])


def test_truncated_gzip_body_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    body = gzip.compress(encode_batch(setup.units["KG-0001"].records(3)))
    rejected(app, client, body[:-8], "malformed", 400, headers={"Content-Encoding": "gzip"})


def test_too_many_records_are_oversized(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(1)
    body = b"\n".join([encode_batch(records)] * (MAX_RECORDS + 1))
    rejected(app, client, body, "oversized", 413)


def test_body_over_the_byte_limit_is_oversized(app: Flask, client: FlaskClient) -> None:
    rejected(app, client, b"x" * (MAX_BYTES + 1), "oversized", 413)


def test_gzip_bomb_is_oversized_without_inflating_it(app: Flask, client: FlaskClient) -> None:
    bomb = gzip.compress(b"\n" * (64 * MAX_BYTES))
    assert len(bomb) < MAX_BYTES // 8
    rejected(app, client, bomb, "oversized", 413, headers={"Content-Encoding": "gzip"})


def test_malformed_json_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    sig = b64u(setup.units["KG-0001"].key.sign(b"{not json"))
    rejected(app, client, f"{sig} {{not json".encode(), "malformed", 400)


def test_json_that_is_not_canonical_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    record = setup.units["KG-0001"].record()
    loose = json.dumps(record.fields, indent=1).replace("\n", " ").encode()
    signed = f"{b64u(setup.units['KG-0001'].key.sign(loose))} {loose.decode()}".encode()
    doc = rejected(app, client, signed, "malformed", 400)
    assert "canonical" in str(doc["reason"])


def test_record_missing_a_field_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    fields = dict(setup.units["KG-0001"].record().fields)
    del fields["prev"]
    data = canonical(fields)
    rejected(app, client, f"{b64u(setup.units['KG-0001'].key.sign(data))} {data.decode()}".encode(), "malformed", 400)


def test_binary_garbage_is_rejected(app: Flask, client: FlaskClient) -> None:
    rejected(app, client, b"\xff\xfe\x00garbage", "malformed", 400)


def test_empty_batch_is_rejected(app: Flask, client: FlaskClient) -> None:
    rejected(app, client, b"\n\n", "malformed", 400)


def test_batch_mixing_stations_is_rejected_whole(app: Flask, client: FlaskClient, setup: Setup) -> None:
    body = [setup.units["KG-0001"].record(), setup.units["KG-0002"].record()]
    doc = rejected(app, client, body, "malformed", 400)
    assert "KG-0002" in str(doc["reason"])


def test_receipt_posing_as_a_record_is_rejected(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    fields = {"v": 1, "type": "receipt", "station": unit.station, "key": unit.key_id, "seq": 0, "prev": "0" * 64,
              "at": "2026-11-27T08:00:00.000000Z", "body": {}}
    data = canonical(fields)
    rejected(app, client, f"{b64u(unit.key.sign(data))} {data.decode()}".encode(), "malformed", 400)
    fields["seq"] = 1
    data = canonical(fields)
    doc = rejected(app, client, f"{b64u(unit.key.sign(data))} {data.decode()}".encode(), "malformed", 400, seq=1)
    assert "receipt" in str(doc["reason"])


def test_wrong_content_type_is_malformed(app: Flask, client: FlaskClient, setup: Setup) -> None:
    reply = client.post("/api/v1/records", data=encode_batch(setup.units["KG-0001"].records(1)),
                        headers={"Content-Type": "application/json"})
    assert (reply.status_code, reply.get_json()["error"]) == (400, "malformed")
    assert stored(app) == (0, 0)


def test_unknown_content_encoding_is_malformed(app: Flask, client: FlaskClient, setup: Setup) -> None:
    rejected(app, client, setup.units["KG-0001"].records(1), "malformed", 400, headers={"Content-Encoding": "br"})


def test_revoked_registry_signature_keeps_the_old_registry(app: Flask, client: FlaskClient, setup: Setup) -> None:
    """A registry file replaced by one not signed by the CEC does not enroll anybody."""
    intruder = Unit("KG-0001")
    doc = json.loads(setup.registry_path.read_bytes())
    doc["devices"].append(intruder.entry().as_json())
    setup.registry_path.write_bytes(canonical(doc))
    rejected(app, client, [intruder.record()], "unknown_key", 403, seq=1)


def test_record_signed_with_an_unenrolled_key_claiming_an_enrolled_key_id(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    record = make_record(key=Ed25519PrivateKey.generate(), station=unit.station, seq=1, prev="0" * 64,
                         at=1.8e9, type_="annotation", body={})
    fields = dict(record.fields, key=unit.key_id)
    data = canonical(fields)
    rejected(app, client, [SignedRecord(data, record.signature, fields)], "bad_signature", 400, seq=1)


LINE = ("A" * 86 + ' {"at":"2026-11-27T08:00:00.000000Z","body":{},"key":"00","prev":"' + "0" * 64
        + '","seq":1,"station":"S","type":"annotation","v":1}')


@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode),
                 st.tuples(st.integers(0, len(LINE)), st.text(max_size=5)).map(
                     lambda cut: (LINE[:cut[0]] + cut[1] + LINE[cut[0]:]).encode())))
def test_decoder_answers_any_body_with_records_or_a_rejection(body: bytes) -> None:
    try:
        records = decode(body)
    except BatchRejected as exc:
        assert exc.rejection.code in ("malformed", "oversized") and exc.rejection.reason
    else:
        assert records and all(r.station == records[0].station for r in records)


@given(st.binary(max_size=300))
def test_gunzip_answers_any_bytes_with_data_or_a_rejection(body: bytes) -> None:
    try:
        gunzip(body)
    except BatchRejected as exc:
        assert exc.rejection.code in ("malformed", "oversized")
