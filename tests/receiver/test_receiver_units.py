"""A station of several units at the receiver: one chain per unit, each held once, totals counted once.

The main desk's records carry no ``unit`` (the station's chain, as a one-unit station's); desk-2 and the
mobile unit sign their own chains with their own enrolled keys, from seq 1, under the same station.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post

from protocol.chain import ChainError, check_chains
from protocol.envelope import EnvelopeError, parse_line
from protocol.receipts import verify_receipt
from receiver.storage import open_storage

OPENED = {"identified": 0, "ballots": 0}


def closed(identified: int, ballots: int) -> dict[str, int]:
    return {"identified": identified, "ballots": ballots, "difference": ballots - identified, "alarms_total": 0,
            "alarms_open": 0}


RECONCILED = {"desks_identified": 7, "desks_ballots": 7, "mobile_identified": 2, "mobile_ballots": 2,
              "identified": 9, "ballots": 9, "conflicts": 1, "absent": "", "parts": "desk-1 4/4, desk-2 3/3, mobile 2/2"}
CONFLICT = {"first_unit": "desk-1", "first_seq": 3, "first_at": 1_800_000_000, "second_unit": "desk-2",
            "second_seq": 2, "second_at": 1_800_000_300}
MIRRORED = {"first_unit": "desk-2", "first_seq": 2, "first_at": 1_800_000_300, "second_unit": "desk-1",
            "second_seq": 3, "second_at": 1_800_000_000}


def station_units(setup: Setup) -> tuple[Unit, Unit, Unit]:
    """The main desk (KG-0001's enrolled unit), desk-2 and the mobile unit, each enrolled with its own key."""
    main = setup.units["KG-0001"]
    desk2, mobile = Unit("KG-0001", unit="desk-2"), Unit("KG-0001", unit="mobile")
    setup.enroll(desk2, mobile)
    return main, desk2, mobile


def a_day(client: FlaskClient, main: Unit, desk2: Unit, mobile: Unit) -> None:
    """Each unit's day, uploaded in interleaved batches (the same seqs in every chain)."""
    for unit in (main, desk2, mobile):
        assert post(client, [unit.record("polls_opened", OPENED)]).status_code == 200
    assert post(client, [main.record("unit_conflict", CONFLICT)]).status_code == 200
    assert post(client, [desk2.record("unit_conflict", MIRRORED)]).status_code == 200
    assert post(client, [mobile.record("unit_conflict", CONFLICT)]).status_code == 200
    for unit, (identified, ballots) in ((desk2, (3, 3)), (mobile, (2, 2))):
        assert post(client, [unit.record("polls_closed", closed(identified, ballots))]).status_code == 200
    answer = post(client, [main.record("units_reconciled", RECONCILED), main.record("polls_closed", closed(4, 4))])
    assert answer.status_code == 200, answer.get_data(as_text=True)


def lines(client: FlaskClient) -> list[str]:
    head = client.get("/api/v1/tree/head").get_json()
    answer = client.get(f"/api/v1/tree/entries?start=0&end={head['size']}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [str(e["line"]) for e in answer.get_json()["entries"]]


def test_each_unit_has_its_own_chain_held_once(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    a_day(client, main, desk2, mobile)
    chains = check_chains(parse_line(line) for line in lines(client))
    assert {key: len(chain) for key, chain in chains.items() if key[0] == "KG-0001"} == {
        ("KG-0001", ""): 4, ("KG-0001", "desk-2"): 3, ("KG-0001", "mobile"): 3}
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.count_records() == 10
    assert (storage.highest_seq("KG-0001"), storage.highest_seq("KG-0001", "desk-2")) == (4, 3)
    one = client.get("/api/v1/records/KG-0001/1?unit=mobile").get_json()["line"]
    assert parse_line(one).unit == "mobile" and parse_line(one).type == "polls_opened"
    assert parse_line(client.get("/api/v1/records/KG-0001/1").get_json()["line"]).unit == ""
    assert client.get("/api/v1/records/KG-0001/4?unit=mobile").status_code == 404


def test_a_unit_batch_sent_twice_is_acknowledged_as_duplicates(app: Flask, client: FlaskClient,
                                                             setup: Setup) -> None:
    main, desk2, _ = station_units(setup)
    post(client, [main.record("polls_opened", OPENED)])
    batch = [desk2.record("polls_opened", OPENED), desk2.record()]
    first, second = post(client, batch), post(client, batch)
    assert first.get_json()["accepted"] == 2 and second.get_json() | {"receipt": None} == {
        "accepted": 0, "duplicates": 2, "receipt": None}
    assert app.extensions["pollbox_receiver"].storage.count_records() == 3


def test_receipts_name_the_unit_and_count_its_chain_only(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, _ = station_units(setup)
    post(client, main.records(5))
    receipt = post(client, desk2.records(2)).get_json()["receipt"]
    public = setup.receiver_key.public_key()
    assert verify_receipt(receipt, public, "KG-0001", "desk-2") == 2
    with pytest.raises(EnvelopeError, match="unit desk-2"):
        verify_receipt(receipt, public, "KG-0001")
    main_receipt = client.get("/api/v1/stations/KG-0001/receipt").get_json()["receipt"]
    assert verify_receipt(main_receipt, public, "KG-0001") == 5
    with pytest.raises(EnvelopeError):
        verify_receipt(main_receipt, public, "KG-0001", "mobile")
    asked = client.get("/api/v1/stations/KG-0001/receipt?unit=desk-2").get_json()["receipt"]
    assert verify_receipt(asked, public, "KG-0001", "desk-2") == 2


def test_gaps_breaks_and_mixed_batches_are_refused_per_chain(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    post(client, main.records(2))
    desk2.record()  # seq 1 is never sent
    gap = post(client, [desk2.record()])
    assert gap.status_code == 409 and gap.get_json()["error"] == "gap"
    assert "records 1-1 are missing" in gap.get_json()["reason"]
    mixed = post(client, [mobile.record(), main.record()])
    assert mixed.status_code == 400 and "units mobile and main of station KG-0001 are mixed" in mixed.get_json()[
        "reason"]
    forged = Unit("KG-0001", unit="desk-2", key=mobile.key)  # desk-2's seq 1 chained wrong: a conflict later
    forged.prev = "ab" * 32
    broken = post(client, [forged.record()])
    assert broken.status_code == 409 and broken.get_json()["error"] == "chain_broken"
    assert app.extensions["pollbox_receiver"].storage.count_records() == 2


def test_the_station_totals_are_the_main_units_combined_ones(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    a_day(client, main, desk2, mobile)
    result = client.get("/api/v1/results/KG-0001").get_json()["station"]
    assert (result["identified"], result["ballots"], result["difference"]) == (9, 9, 0)
    assert result["close_seq"] == 4 and result["phase"] == "closed"
    record = client.get(urlsplit(result["record_url"]).path).get_json()
    assert parse_line(record["line"]).type == "polls_closed" and parse_line(record["line"]).unit == ""
    summary = app.extensions["pollbox_receiver"].storage.summary(0.0, 0.0)
    assert (summary.identified, summary.ballots) == (9, 9)  # never 4 + 3 + 2 + 9
    csv = client.get("/api/v1/results.csv").get_data(as_text=True)
    assert sum(1 for row in csv.splitlines() if row.startswith("KG-0001,")) == 1


def test_the_overview_and_station_page_show_the_units(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    a_day(client, main, desk2, mobile)
    overview = client.get("/").get_data(as_text=True)
    row = next(r for r in overview.split("<tbody>")[1].split("</tr>") if "KG-0001" in r)
    assert "1 unit conflict(s)" in row  # three records of one double admission
    page = client.get("/stations/KG-0001").get_data(as_text=True)
    units = page.split('<table class="units">')[1].split("</table>")[0]
    assert "desk-2" in units and "mobile" in units and "1 to 3" in units
    assert "desk-1 4/4, desk-2 3/3, mobile 2/2" in page
    assert "/api/v1/records/KG-0001/2?unit=desk-2" in page


def test_a_one_unit_station_page_has_no_units_section(app: Flask, client: FlaskClient, setup: Setup) -> None:
    post(client, [setup.units["KG-0002"].record("polls_opened", OPENED)])
    page = client.get("/stations/KG-0002").get_data(as_text=True)
    assert '<table class="units">' not in page and "?unit=" not in page


def test_check_chains_names_the_broken_unit() -> None:
    desk2 = Unit("KG-0001", unit="desk-2")
    records = desk2.records(3)
    with pytest.raises(ChainError, match="station KG-0001, unit desk-2: record 3 cannot follow record 1"):
        check_chains([records[0], records[2]])


def old_shape(app: Flask) -> str:
    """Turn the database back into the previous version's: ``records`` keyed by (station, seq), no ``unit``."""
    storage = app.extensions["pollbox_receiver"].storage
    if storage.dialect.name == "sqlite":
        storage._q("CREATE TABLE records_old (station TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, "
                   "type TEXT NOT NULL, at TEXT NOT NULL, received_at REAL NOT NULL, leaf_index INTEGER NOT NULL, "
                   "line TEXT NOT NULL, key_id TEXT, training INTEGER NOT NULL DEFAULT 0, "
                   "PRIMARY KEY (station, seq))")
        storage._q("INSERT INTO records_old SELECT station, seq, hash, type, at, received_at, leaf_index, line, "
                   "key_id, training FROM records")
        storage._q("DROP TABLE records")
        storage._q("ALTER TABLE records_old RENAME TO records")
        storage._q("CREATE UNIQUE INDEX records_hash ON records (hash)")
        storage._q("CREATE UNIQUE INDEX records_leaf ON records (leaf_index)")
    else:
        storage._q("ALTER TABLE records DROP CONSTRAINT records_pkey")
        storage._q("ALTER TABLE records DROP COLUMN unit")
        storage._q("ALTER TABLE records ADD PRIMARY KEY (station, seq)")
    storage._q("DROP TABLE unit_chains")
    storage._q("ALTER TABLE stations DROP COLUMN units_report")
    url = str(storage.url)
    storage.close()
    return url


def test_an_earlier_database_is_keyed_by_unit_in_place(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main = setup.units["KG-0001"]
    post(client, main.records(3))
    url = old_shape(app)
    upgraded = open_storage(url)
    try:
        assert "unit" in upgraded._columns("records") and "units_report" in upgraded._columns("stations")
        assert upgraded._q("SELECT COUNT(*) FROM records WHERE unit = ''").fetchone()[0] == 3
        assert upgraded.highest_seq("KG-0001") == 3 and upgraded.record_line("KG-0001", 2) is not None
        assert upgraded.count_records() == 3 and upgraded.tree()[0] == 3
    finally:
        upgraded.close()


def test_an_upgraded_database_takes_a_second_units_chain(app: Flask, client: FlaskClient, setup: Setup,
                                                        clock: object) -> None:
    from receiver.app import create_app

    main, desk2, _ = station_units(setup)
    post(client, main.records(2))
    url = old_shape(app)
    again = create_app(setup.config(url, clock))  # type: ignore[arg-type]
    try:
        answer = post(again.test_client(), desk2.records(2))
        assert answer.status_code == 200 and answer.get_json()["accepted"] == 2, answer.get_data(as_text=True)
        chains = check_chains(parse_line(line) for line in lines(again.test_client()))
        assert sorted(chains) == [("KG-0001", ""), ("KG-0001", "desk-2")]
    finally:
        again.extensions["pollbox_receiver"].storage.close()


def test_a_unit_id_that_is_not_one_is_malformed(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main = setup.units["KG-0001"]
    bad = Unit("KG-0001", key=main.key, unit="Desk 2")
    answer = post(client, [bad.record()])
    assert answer.status_code == 400 and "unit must be a unit id" in answer.get_json()["reason"]
    assert json.loads(client.get("/api/v1/tree/head").get_data())["size"] == 0


def test_an_unenrolled_units_key_is_refused(app: Flask, client: FlaskClient, setup: Setup) -> None:
    stranger = Unit("KG-0001", key=Ed25519PrivateKey.generate(), unit="desk-3")
    answer = post(client, [stranger.record()])
    assert answer.status_code == 403 and answer.get_json()["error"] == "unknown_key"


def test_a_key_writes_one_units_chain_only(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    post(client, main.records(2) + [main.record("polls_opened", OPENED)])
    post(client, desk2.records(2))
    as_desk2 = Unit("KG-0001", key=main.key, unit="desk-2", seq=desk2.seq, prev=desk2.prev)
    refused = post(client, [as_desk2.record()])
    assert refused.status_code == 403 and refused.get_json()["error"] == "wrong_unit", refused.get_json()
    assert "signs the chain of unit main of station KG-0001, not of unit desk-2" in refused.get_json()["reason"]
    as_main = Unit("KG-0001", key=mobile.key, seq=main.seq, prev=main.prev)  # mobile's key unused so far
    assert post(client, [as_main.record()]).status_code == 200  # first use binds it to the main chain
    refused = post(client, [mobile.record("polls_opened", OPENED)])
    assert refused.get_json()["error"] == "wrong_unit"
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.count_records() == 6 and storage.highest_seq("KG-0001", "mobile") == 0
    assert storage.summary(0.0, 0.0).stations == 2  # a station first heard of through a unit is counted once


def test_a_station_first_heard_of_through_another_unit_is_counted_once(app: Flask, client: FlaskClient,
                                                                       setup: Setup) -> None:
    _, desk2, _ = station_units(setup)
    post(client, desk2.records(2))
    storage = app.extensions["pollbox_receiver"].storage
    summary = storage.summary(0.0, 0.0)
    assert (summary.stations, summary.reported) == (2, 0)  # its main unit has not reported yet
    assert storage._q("SELECT COUNT(*) FROM stations").fetchone()[0] == 2
    storage._q("DELETE FROM stations WHERE station = 'KG-0002'")  # a station the registry index has not listed
    storage.recount()
    assert storage.summary(0.0, 0.0).stations == 1
    stranger = Unit("KG-0002", unit="mobile")
    setup.enroll(stranger)
    post(client, stranger.records(1))
    assert storage.summary(0.0, 0.0).stations == 2 == storage._q("SELECT COUNT(*) FROM stations").fetchone()[0]


def test_a_units_export_file_is_imported_into_its_own_chain(app: Flask, client: FlaskClient, setup: Setup) -> None:
    from protocol.export import render_export

    main, desk2, _ = station_units(setup)
    post(client, main.records(2))
    records = desk2.records(3)
    data = render_export(records, station="KG-0001", key=desk2.key_id, created_at=1_800_000_000.0)
    doc = client.post("/api/v1/import", data=data).get_json()
    assert doc["accepted"] == 3 and verify_receipt(doc["receipt"], setup.receiver_key.public_key(), "KG-0001",
                                                   "desk-2") == 3
    more = desk2.records(2)  # seq 4 and 5 of desk-2's chain
    follower = Unit("KG-0001", key=main.key, seq=4, prev=more[0].hash).record()  # a seq 5 without a unit
    mixed = render_export(more, station="KG-0001", key=desk2.key_id, created_at=1_800_000_000.0).replace(
        more[1].line().encode(), follower.line().encode())
    refused = client.post("/api/v1/import", data=mixed).get_json()
    assert refused["error"] == "malformed" and "is of unit main, not of unit desk-2" in refused["reason"]
    assert app.extensions["pollbox_receiver"].storage.highest_seq("KG-0001", "desk-2") == 3


def test_the_overview_flags_a_station_when_any_unit_runs_uncertified_software(setup: Setup, db_url: str,
                                                                               clock: object, tmp_path: Path) -> None:
    from receiver.app import create_app
    from receiver.software_list import write_software_list

    main, desk2, _ = station_units(setup)
    listed = tmp_path / "software-list.json"
    write_software_list(listed, [{"version": "0.1.0", "hash": "ab" * 32, "note": "certified"}], setup.cec)
    app = create_app({**setup.config(db_url, clock), "SOFTWARE_LIST_PATH": str(listed)})  # type: ignore[arg-type]
    try:
        client = app.test_client()
        assert post(client, [main.record()]).status_code == 200  # the main desk's zero report is its seq 2
        for unit, code_hash in ((desk2, "cd" * 32), (main, "ab" * 32)):
            opened = unit.record("polls_opened", {**OPENED, "software_version": "0.1.0", "software_hash": code_hash})
            assert post(client, [opened]).status_code == 200
        row = next(r for r in client.get("/").get_data(as_text=True).split("<tr")[1:] if "KG-0001" in r)
        assert "software not on the CEC's list (0.1.0)" in row  # desk-2's, though the main desk's is listed
    finally:
        app.extensions["pollbox_receiver"].storage.close()
