"""Open results: ``/api/v1/results`` (JSON, CSV, NIST SP 1500-100) per station, cut at one signed tree head."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, post

from protocol.treehead import check_inclusion, verify_tree_head
from receiver.result_rows import FIELDS, Cut, ResultsReader, result_row

CLOSE = {"identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2, "alarms_open": 1}


def day(setup: Setup, client: FlaskClient) -> dict[str, Any]:
    """KG-0001 opens, reports turnout, raises an alarm and closes; KG-0002 only opens. Returns the close record."""
    one, two = setup.units["KG-0001"], setup.units["KG-0002"]
    closed = None
    records = [one.record("polls_opened", {"identified": 0, "ballots": 0}),
               one.record("turnout_snapshot", {"identified": 500, "ballots": 500, "registered": 1000}),
               one.record("alarm_raised", {"alarm": 1, "alarm_kind": "lid_opened", "detail": "lid"}),
               closed := one.record("polls_closed", dict(CLOSE)),
               one.record("alarm_raised", {"alarm": 2, "alarm_kind": "lid_opened", "detail": "after"})]
    assert post(client, records).status_code == 200
    assert post(client, [two.record("polls_opened", {"identified": 0, "ballots": 0})]).status_code == 200
    return {"record": closed}


def by_station(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["station"]: row for row in doc["stations"]}


def test_results_json_carries_counts_hash_and_a_proof_that_checks(app: Flask, client: FlaskClient,
                                                                  setup: Setup) -> None:
    closed = day(setup, client)["record"]
    response = client.get("/api/v1/results")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = json.loads(response.get_data(as_text=True))
    assert doc["format"] == "pollbox-results/1" and doc["fields"] == list(FIELDS)
    head = verify_tree_head(doc["tree_head"]["tree_head"], setup.receiver_key.public_key())
    assert head.size == 6
    rows = by_station(doc)
    assert list(rows) == ["KG-0001", "KG-0002"] and all(list(r) == list(FIELDS) for r in rows.values())
    one = rows["KG-0001"]
    assert {k: one[k] for k in ("identified", "ballots", "difference", "alarms_total")} == {
        "identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2}
    assert one["alarms_open_at_close"] == 1 and one["alarms_open"] == 2 and one["registered"] == 1000
    assert one["turnout"] == 0.812 and one["phase"] == "closed" and one["close_seq"] == 4
    assert one["close_hash"] == closed.hash and one["close_leaf_index"] == 3
    proof = client.get(urlsplit(one["proof_url"]).path + "?" + urlsplit(one["proof_url"]).query).get_json()
    line = client.get(urlsplit(one["record_url"]).path).get_json()["line"]
    assert line == closed.line()
    assert check_inclusion(line, proof, doc["tree_head"]["tree_head"], setup.receiver_key.public_key())[0] == 3
    two = rows["KG-0002"]
    assert two["phase"] == "open" and two["ballots"] is None and two["proof_url"] is None and two["turnout"] is None


def test_csv_has_stable_columns_and_the_signed_head(app: Flask, client: FlaskClient, setup: Setup) -> None:
    day(setup, client)
    response = client.get("/api/v1/results.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="pollbox-results-')
    head = verify_tree_head(response.headers["Pollbox-Tree-Head"], setup.receiver_key.public_key())
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8"))))
    assert rows[0] == list(FIELDS) and len(rows) == 3
    one = dict(zip(FIELDS, rows[1], strict=True))
    assert one["station"] == "KG-0001" and one["ballots"] == "811" and one["turnout"] == "0.812"
    assert one["proof_url"].endswith(f"&size={head.size}")
    assert dict(zip(FIELDS, rows[2], strict=True))["ballots"] == ""
    download = client.get("/api/v1/results.json")
    assert download.headers["Content-Disposition"].endswith('.json"')
    assert by_station(json.loads(download.get_data()))["KG-0001"]["ballots"] == 811


def test_one_station_and_an_unknown_one(app: Flask, client: FlaskClient, setup: Setup) -> None:
    day(setup, client)
    one = client.get("/api/v1/results/KG-0001")
    assert one.status_code == 200 and one.get_json()["station"]["ballots"] == 811
    assert one.get_json()["tree_head"]["size"] == 6
    missing = client.get("/api/v1/results/KG-9999")
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert missing.get_json()["error"] == "not_found" and "KG-9999" in missing.get_json()["reason"]


def test_a_close_report_after_the_head_is_left_out(app: Flask, client: FlaskClient, setup: Setup) -> None:
    """Every row answers against the head of its own export: a close logged after it does not count yet."""
    day(setup, client)
    storage = app.extensions["pollbox_receiver"].storage
    row = ResultsReader(storage).one("KG-0001")
    assert row is not None
    early = result_row(row, Cut({"size": 3, "tree_head": "x"}, "http://rx"))
    assert early["phase"] == "closed_after_head" and early["ballots"] is None and early["proof_url"] is None
    late = result_row(row, Cut({"size": 4, "tree_head": "x"}, "http://rx"))
    assert late["ballots"] == 811 and late["proof_url"] == f"http://rx/api/v1/tree/proof?hash={row[7]}&size=4"


def test_second_close_report_keeps_the_first(app: Flask, client: FlaskClient, setup: Setup) -> None:
    closed = day(setup, client)["record"]
    again = setup.units["KG-0001"].record("polls_closed", dict(CLOSE, ballots=999, difference=187))
    assert post(client, [again]).status_code == 200
    one = by_station(json.loads(client.get("/api/v1/results").get_data()))["KG-0001"]
    assert one["ballots"] == 811 and one["close_hash"] == closed.hash and one["alarms_open"] == 3


def test_nist_common_data_format(app: Flask, client: FlaskClient, setup: Setup) -> None:
    day(setup, client)
    response = client.get("/api/v1/results.cdf.json")
    assert response.status_code == 200
    doc = json.loads(response.get_data())
    assert doc["@type"] == "ElectionResults.ElectionReport" and doc["Format"] == "precinct-level"
    units = {u["@id"]: u for u in doc["GpUnit"]}
    assert units["gpu-KG-0001"] == {"@type": "ElectionResults.ReportingUnit", "@id": "gpu-KG-0001",
                                    "Name": "KG-0001", "Type": "polling-place", "VotersRegistered": 1000,
                                    "VotersParticipated": 812}
    assert "VotersParticipated" not in units["gpu-KG-0002"] and units["gpu-all"]["Type"] == "country"
    election = doc["Election"][0]
    assert election["ElectionScopeId"] == "gpu-all"
    assert election["BallotCounts"] == [{"@type": "ElectionResults.BallotCounts", "GpUnitId": "gpu-KG-0001",
                                         "Type": "total", "BallotsCast": 811}]


def test_empty_receiver_and_the_overview_links(app: Flask, client: FlaskClient) -> None:
    doc = json.loads(client.get("/api/v1/results").get_data())
    assert [r["station"] for r in doc["stations"]] == ["KG-0001", "KG-0002"]
    assert all(r["ballots"] is None for r in doc["stations"]) and doc["tree_head"]["size"] == 0
    assert json.loads(client.get("/api/v1/results.cdf.json").get_data())["Election"][0]["BallotCounts"] == []
    page = client.get("/").get_data(as_text=True)
    for link in ("/api/v1/results.json", "/api/v1/results.csv", "/api/v1/results.cdf.json", "/verify/"):
        assert f'href="{link}"' in page


def test_training_station_is_never_in_the_results(app: Flask, client: FlaskClient, setup: Setup) -> None:
    from rx_kit import Unit

    from protocol.chain import ZERO_HASH
    from protocol.envelope import make_record

    trainee = Unit("TRAINING-KG-0001")
    setup.enroll(trainee)
    opened = make_record(key=trainee.key, station=trainee.station, seq=1, prev=ZERO_HASH, at=1_800_000_000.0,
                         type_="polls_opened", body={"identified": 0, "ballots": 0, "journal_seq": 1,
                                                     "journal_hash": "a" * 64}, training=True)
    closed = make_record(key=trainee.key, station=trainee.station, seq=2, prev=opened.hash, at=1_800_000_060.0,
                         type_="polls_closed", body=dict(CLOSE, journal_seq=2, journal_hash="b" * 64), training=True)
    assert post(client, [opened, closed]).status_code == 200
    day(setup, client)
    doc = json.loads(client.get("/api/v1/results").get_data())
    assert [r["station"] for r in doc["stations"]] == ["KG-0001", "KG-0002"]
    assert "TRAINING" not in client.get("/api/v1/results.csv").get_data(as_text=True)
    assert "TRAINING" not in client.get("/api/v1/results.cdf.json").get_data(as_text=True)
    refused = client.get("/api/v1/results/TRAINING-KG-0001")
    assert refused.status_code == 404 and "training station" in refused.get_json()["reason"]
