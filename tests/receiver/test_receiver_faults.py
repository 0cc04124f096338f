"""Faults and bad input at the receiver (issue 11, items 9 and 10): each is refused or kept as evidence with a
code, logged, never answered with HTTP 500 and never allowed to change what the overview publishes.

Every test runs on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rx_kit import Setup, Unit, post, stored

from device.hardware.clock import FakeClock
from protocol.envelope import b64u
from receiver.limits import RejectionLimiter

OPENED = {"identified": 0, "ballots": 0}
CLOSED = {"identified": 61, "ballots": 60, "difference": -1, "alarms_total": 0, "alarms_open": 0}
JOURNAL = {"journal_seq": 7, "journal_hash": "ab" * 32}


def storage(app: Flask) -> Any:
    return app.extensions["pollbox_receiver"].storage


def rejection_rows(app: Flask) -> list[dict[str, Any]]:
    return storage(app).rejections(limit=1_000_000)


def signed_raw(unit: Unit, fields: dict[str, Any]) -> bytes:
    """A signed line over JSON that canonical() would refuse to write (NaN, huge numbers, odd types)."""
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()
    return f"{b64u(unit.key.sign(data))} ".encode() + data


def next_fields(unit: Unit, **changes: Any) -> dict[str, Any]:
    fields = {"v": 1, "station": unit.station, "key": unit.key_id, "seq": unit.seq + 1, "prev": unit.prev,
              "at": "2027-01-15T08:00:00.000000Z", "type": "annotation",
              "body": {"topic": "t", "text": "x", **JOURNAL}}
    fields.update(changes)
    return fields


# Item 9: a station closes once ------------------------------------------------------------------------------

def test_second_close_report_is_kept_as_evidence_and_never_replaces_the_first(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    assert post(client, [unit.record("polls_opened", OPENED), unit.record("polls_closed", CLOSED)]).status_code == 200
    second = unit.record("polls_closed", {**CLOSED, "identified": 900, "ballots": 900, "difference": 0})
    assert post(client, [second]).status_code == 200
    status = storage(app).status("KG-0001")
    assert (status.phase, status.identified, status.ballots, status.highest_seq) == ("closed", 61, 60, 3)
    assert status.close_body()["identified"] == 61 and status.evidence == 1
    assert client.get("/api/v1/records/KG-0001/3").get_json()["line"] == second.line()  # kept, in the public log
    alarms = storage(app).alarms("KG-0001")
    assert [(a["kind"], a["acknowledged_at"]) for a in alarms] == [("second_close_report", None)]
    assert status.alarms_open == 1 and storage(app).tallies()["with_alarms"] == 1
    overview = client.get("/?status=alarms").get_data(as_text=True)
    assert "KG-0001" in overview and "1 record(s) after close" in overview and "61 / 60" in overview
    assert "900" not in overview
    page = client.get("/stations/KG-0001").get_data(as_text=True)
    assert "second_close_report" in page and "kept as evidence" in page


def test_only_alarms_and_notes_may_follow_the_close(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record("polls_opened", OPENED), unit.record("polls_closed", CLOSED),
                  unit.record("alarm_raised", {"alarm": 1, "alarm_kind": "lid_opened", "detail": "after close"}),
                  unit.record("annotation", {"topic": "zeroize", "text": "keys wiped"}),
                  unit.record("something_newer", {"x": 1})])
    status = storage(app).status("KG-0001")
    assert (status.evidence, status.alarms_open) == (0, 1)
    reply = post(client, [unit.record("turnout_snapshot", {"identified": 500, "ballots": 500, "registered": 900}),
                          unit.record("polls_opened", OPENED), unit.record("checkin_undone", {
                              "undone_total": 1, "identified": 60, "ballots": 60})])
    assert reply.status_code == 200 and reply.get_json()["accepted"] == 3
    status = storage(app).status("KG-0001")
    assert (status.phase, status.identified, status.ballots, status.registered) == ("closed", 61, 60, None)
    assert (status.evidence, status.alarms_open, status.highest_seq) == (3, 4, 8)
    kinds = [a["kind"] for a in storage(app).alarms("KG-0001")]
    assert kinds.count("record_after_close") == 3


def test_a_close_and_a_second_close_in_one_batch(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0002"]
    post(client, [unit.record("polls_opened", OPENED), unit.record("polls_closed", CLOSED),
                  unit.record("polls_closed", {**CLOSED, "identified": 1, "ballots": 1, "difference": 0})])
    status = storage(app).status("KG-0002")
    assert (status.identified, status.close_body()["ballots"], status.evidence) == (61, 60, 1)
    assert storage(app).counted_tallies() == storage(app).tallies()


# Item 10: every body against its schema; no 500 ------------------------------------------------------------

BAD_BODIES = {
    "an extra field": ("polls_opened", {**OPENED, **JOURNAL, "note": "hi"}, "unknown field(s) note"),
    "an empty body": ("polls_closed", {}, "lacks journal_seq"),
    "journal_seq as a string": ("polls_paused", {"journal_seq": "7", "journal_hash": "ab" * 32}, "journal_seq"),
    "a negative count": ("turnout_snapshot", {"identified": -1, "ballots": 0, "registered": 5, **JOURNAL},
                         "identified"),
    "a count as a boolean": ("polls_opened", {"identified": True, "ballots": 0, **JOURNAL}, "identified"),
    "a count beyond 2^53": ("polls_opened", {"identified": 10**30, "ballots": 0, **JOURNAL}, "identified"),
    "an over-long detail": ("alarm_raised", {"alarm": 1, "alarm_kind": "jam", "detail": "x" * 201, **JOURNAL},
                            "detail"),
    "an unknown type without its journal fields": ("something_new", {"x": 1}, "lacks journal_seq"),
}


def test_bodies_that_break_their_schema_are_refused_with_invalid_body(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record("polls_opened", OPENED)])
    for name, (type_, body, words) in BAD_BODIES.items():
        before, rows = stored(app), len(rejection_rows(app))
        record = unit.record(type_, body, journal=False)
        reply = post(client, [record])
        doc = reply.get_json()
        assert (reply.status_code, doc["error"], doc["seq"]) == (400, "invalid_body", record.seq), name
        assert words in doc["reason"], (name, doc["reason"])
        assert stored(app) == before, name
        assert len(rejection_rows(app)) == rows + 1 and rejection_rows(app)[0]["code"] == "invalid_body", name
        unit.seq, unit.prev = unit.seq - 1, storage(app).status("KG-0001").last_hash


ODD_FIELDS = {
    "NaN in the body": {"body": {"topic": "t", "text": "x", "journal_seq": float("nan"), "journal_hash": "ab" * 32}},
    "Infinity as seq": {"seq": float("inf")},
    "a seq of 10^30": {"seq": 10**30},
    "a float seq": {"seq": 1.0},
    "at that is not a time": {"at": "yesterday"},
    "at on the 31st of February": {"at": "2027-02-31T08:00:00.000000Z"},
    "an extra top-level field": {"extra": 1},
    "an empty station": {"station": ""},
    "a body that is a list": {"body": []},
}


def test_odd_numbers_and_fields_are_malformed_and_logged_never_500(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    for name, changes in ODD_FIELDS.items():
        rows = len(rejection_rows(app))
        reply = post(client, signed_raw(unit, next_fields(unit, **changes)))
        assert (reply.status_code, reply.get_json()["error"]) == (400, "malformed"), (name, reply.get_json())
        assert len(rejection_rows(app)) == rows + 1, name
    assert stored(app) == (0, 0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
TYPES = st.sampled_from(["polls_opened", "polls_paused", "polls_closed", "checkin_undone", "alarm_raised",
                         "alarm_acknowledged", "turnout_snapshot", "annotation", "new_kind", "Bad Type"])
FIELD_NAMES = st.sampled_from(["v", "station", "key", "seq", "prev", "at", "type", "body", "extra"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(type_=TYPES, body=st.dictionaries(st.sampled_from(["journal_seq", "journal_hash", "identified", "ballots",
                                                          "difference", "alarm", "alarm_kind", "detail", "topic",
                                                          "text", "note_given", "registered", "x"]),
                                         json_values, max_size=6),
       replaced=st.dictionaries(FIELD_NAMES, json_values, max_size=2))
def test_any_signed_json_gets_an_answer_with_a_code_and_a_logged_rejection(
        app: Flask, client: FlaskClient, setup: Setup, type_: str, body: dict[str, Any],
        replaced: dict[str, Any]) -> None:
    unit = setup.units["KG-0002"]
    rows, before = len(rejection_rows(app)), stored(app)
    reply = post(client, signed_raw(unit, next_fields(unit, **{"type": type_, "body": body, **replaced})))
    doc = reply.get_json()
    assert reply.status_code < 500, doc
    if reply.status_code == 200:
        assert stored(app)[0] == before[0] + 1
        line = client.get(f"/api/v1/records/KG-0002/{unit.seq + 1}").get_json()["line"]
        unit.seq, unit.prev = unit.seq + 1, hashlib.sha256(line.partition(" ")[2].encode()).hexdigest()
    else:
        assert doc["error"] in {"malformed", "invalid_body", "gap", "chain_broken", "unknown_key", "wrong_station",
                                "oversized", "bad_signature", "conflict"}
        assert len(rejection_rows(app)) == rows + 1 and stored(app) == before


def test_rejections_are_written_down_within_a_rate_per_source(
        app: Flask, client: FlaskClient, setup: Setup, clock: FakeClock) -> None:
    bad = b"not a batch at all"
    for _ in range(100):
        assert post(client, bad).status_code == 400
    rows = rejection_rows(app)
    assert len(rows) == 60 and {r["code"] for r in rows} == {"malformed"}
    clock.jump_wall(30)
    post(client, bad)
    rows = rejection_rows(app)
    assert len(rows) == 62 and rows[1]["code"] == "not_logged" and rows[1]["reason"].startswith("40 earlier")
    assert rows[0]["code"] == "malformed"


def test_the_rejections_table_keeps_only_the_latest_rows(app: Flask, client: FlaskClient, setup: Setup) -> None:
    storage(app).max_rejections = 25
    for n in range(40):
        post(client, f"line {n}".encode())
    rows = rejection_rows(app)
    assert len(rows) == 25 and "line 1:" in rows[0]["reason"]


def test_the_limiter_counts_what_it_leaves_out_per_source_and_overall() -> None:
    limiter = RejectionLimiter(per_source=2, source_refill_seconds=10, overall=3, overall_per_second=0.1,
                               max_sources=2)
    assert [limiter.admit("a", 0.0) for _ in range(3)] == [0, 0, None]
    assert limiter.admit("b", 0.0) == 0
    assert limiter.left_out("a") == 1
    assert limiter.admit("c", 0.0) is None  # all sources together are over
    assert limiter.left_out("c") == 1
    assert limiter.left_out("a") == 0 and sorted(limiter._sources) == ["b", "c"]  # at most 2 sources remembered
    assert limiter.admit("c", 20.0) == 1  # refilled: the next row written says one was left out
    assert limiter.left_out("c") == 0
