"""The receiver keeps training stations apart: stored with their signed flag, shown apart, never counted.

Also the flag's integrity: stripping it, flipping it or adding it to a live
record breaks the signature (``bad_signature``), and a flag that disagrees
with the station's id is refused (``training_mismatch``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient

from device.hardware.clock import FakeClock
from device.keys import write_private
from protocol.canonical import canonical
from protocol.envelope import SignedRecord, make_record, parse_line
from protocol.training import TRAINING_PREFIX, is_training, record_training_problem, training_station_id
from receiver.app import create_app
from receiver.storage import open_storage
from receiver.store.overview import OverviewQuery
from tests.receiver.rx_kit import Setup, Unit, post

LIVE, TRAINING = "KG-0001", training_station_id("KG-0001")
OPENED = ("polls_opened", {"identified": 0, "ballots": 0})
CLOSED = ("polls_closed", {"identified": 7, "ballots": 7, "difference": 0, "alarms_total": 0, "alarms_open": 0})
SNAPSHOT = ("turnout_snapshot", {"identified": 7, "ballots": 7, "registered": 900})


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path, Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(),
              {name: Unit(name) for name in (LIVE, TRAINING)})
    write_private(s.key_path, s.receiver_key)
    s.enroll(*s.units.values())
    return s


@pytest.fixture
def app(setup: Setup, db_url: str) -> Iterator[Flask]:
    flask_app = create_app(setup.config(db_url, FakeClock(wall=1_800_000_600.0)))
    yield flask_app
    flask_app.extensions["pollbox_receiver"].storage.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def resigned(record: SignedRecord, key: Ed25519PrivateKey, **changes: object) -> SignedRecord:
    """``record`` with its fields changed and signed again by ``key`` (the device's own key)."""
    fields = {**record.fields, **changes}
    fields = {k: v for k, v in fields.items() if v is not None}
    data = canonical(fields)
    return SignedRecord(data, key.sign(data), fields)


def altered(record: SignedRecord, **changes: object) -> SignedRecord:
    """``record`` with its fields changed but the old signature kept: what an attacker on the path can do."""
    fields = {k: v for k, v in {**record.fields, **changes}.items() if v is not None}
    return SignedRecord(canonical(fields), record.signature, fields)


def test_a_training_unit_signs_the_flag_into_the_record_bytes(setup: Setup) -> None:
    record = setup.units[TRAINING].record(*OPENED)
    assert b'"training":true' in record.data and record.training and is_training(record.fields)
    again = parse_line(record.line())
    assert again.training and again.data == record.data
    live = setup.units[LIVE].record(*OPENED)
    assert b"training" not in live.data and not live.training


def test_training_records_are_stored_flagged_and_never_counted(app: Flask, client: FlaskClient,
                                                               setup: Setup) -> None:
    live, training = setup.units[LIVE], setup.units[TRAINING]
    assert post(client, [live.record(*OPENED), live.record(*SNAPSHOT)]).status_code == 200
    assert post(client, [training.record(*OPENED), training.record(*SNAPSHOT), training.record(*CLOSED)]
                ).status_code == 200
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.status(TRAINING).training == 1 and storage.status(LIVE).training == 0
    flags = dict(storage._q("SELECT station, MIN(training) FROM records GROUP BY station").fetchall())
    assert flags == {LIVE: 0, TRAINING: 1}
    tallies = storage.tallies()
    assert tallies == storage.counted_tallies()
    assert (tallies["stations"], tallies["reported"], tallies["closed"], tallies["identified"]) == (1, 1, 0, 7)
    summary = storage.summary(0.0, 1_800_000_600.0)
    assert summary.training == 1 and summary.matching("training") == 1
    everyone = [r.station for r in storage.overview(OverviewQuery(), 0.0).rows]
    apart = [r.station for r in storage.overview(OverviewQuery(status="training"), 0.0).rows]
    closed = [r.station for r in storage.overview(OverviewQuery(status="closed"), 0.0).rows]
    assert everyone == [LIVE] and apart == [TRAINING] and closed == []
    page = client.get("/").get_data(as_text=True)
    assert "<b>1</b> training stations" in page and "<b>1</b> stations" in page
    assert TRAINING not in page  # the live overview does not list it ...
    assert TRAINING in client.get("/?status=training").get_data(as_text=True)  # ... its own filter does
    assert "TRAINING station" in client.get(f"/stations/{TRAINING}").get_data(as_text=True)


@pytest.mark.parametrize("how", ["stripped", "flipped to false", "added to a live record"])
def test_changing_the_flag_breaks_the_signature(client: FlaskClient, setup: Setup, how: str) -> None:
    unit = setup.units[LIVE if how == "added to a live record" else TRAINING]
    record = unit.record(*OPENED)
    change = {"stripped": None, "flipped to false": False, "added to a live record": True}[how]
    forged = altered(record, training=change)
    assert forged.data != record.data
    reply = post(client, [forged])
    assert reply.status_code == 400 and reply.get_json()["error"] == "bad_signature", reply.get_json()
    assert post(client, [record]).status_code == 200  # the genuine record still goes in


@pytest.mark.parametrize("station, flag", [(LIVE, True), (TRAINING, None)])
def test_a_flag_that_disagrees_with_the_station_id_is_refused(client: FlaskClient, setup: Setup, station: str,
                                                              flag: bool | None) -> None:
    """Even when the device key signs it (a unit with altered software): live and training never mix."""
    unit = setup.units[station]
    record = resigned(unit.record(*OPENED), unit.key, training=flag)
    reply = post(client, [record])
    assert reply.status_code == 400 and reply.get_json()["error"] == "training_mismatch", reply.get_json()
    assert TRAINING_PREFIX in reply.get_json()["reason"]


def test_the_flag_and_the_station_id_go_together() -> None:
    assert record_training_problem({"station": "KG-1", "training": True}) is not None
    assert record_training_problem({"station": "TRAINING-KG-1"}) is not None
    assert record_training_problem({"station": "TRAINING-KG-1", "training": True}) is None
    assert record_training_problem({"station": "KG-1", "training": False}) is None
    assert training_station_id("TRAINING-KG-1") == "TRAINING-KG-1"


def test_a_flag_that_is_not_a_boolean_is_malformed(setup: Setup) -> None:
    record = setup.units[TRAINING].record(*OPENED)
    fields = {**record.fields, "training": 1}
    line = f"{record.line().split(' ', 1)[0]} {canonical(fields).decode()}"
    with pytest.raises(Exception, match="training must be true or false"):
        parse_line(line)


def test_an_earlier_database_gains_the_training_columns(db_url: str, setup: Setup) -> None:
    """A receiver database made before training existed: columns added, training ids flagged, counts kept."""
    url = db_url
    storage = open_storage(url)
    storage._q("DROP INDEX stations_training")
    storage._q("ALTER TABLE stations DROP COLUMN training")
    storage._q("ALTER TABLE records DROP COLUMN training")
    storage._q("INSERT INTO stations (station) VALUES (?)", (LIVE,))
    storage._q("INSERT INTO stations (station) VALUES (?)", (TRAINING,))
    storage._q("UPDATE station_counts SET stations = 2 WHERE id = 1")  # as an earlier receiver counted them
    storage.close()
    upgraded = open_storage(url)
    try:
        training, live = upgraded.status(TRAINING), upgraded.status(LIVE)
        assert training is not None and live is not None and training.training == 1 and live.training == 0
        assert "training" in upgraded._columns("records")
        assert upgraded.counted_tallies()["stations"] == 1
        assert upgraded.tallies() == upgraded.counted_tallies()  # counted again once, the training one left out
    finally:
        upgraded.close()


def test_the_record_line_keeps_the_flag_in_json(setup: Setup) -> None:
    line = setup.units[TRAINING].record(*OPENED).line()
    assert json.loads(line.split(" ", 1)[1])["training"] is True
    assert make_record(key=setup.units[LIVE].key, station=LIVE, seq=1, prev="0" * 64, at=0.0, type_="annotation",
                       body={}).fields.get("training") is None
