"""The overview lists, per station, the conflicts between two of its units (voters admitted twice)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, post

CONFLICT = {"first_unit": "desk-1", "first_seq": 3, "first_at": 1_800_000_000, "second_unit": "desk-2",
            "second_seq": 5, "second_at": 1_800_000_300}
OTHER = {**CONFLICT, "second_seq": 9}
SAME_SEEN_FROM_DESK_2 = {"first_unit": "desk-2", "first_seq": 5, "first_at": 1_800_000_300,
                         "second_unit": "desk-1", "second_seq": 3, "second_at": 1_800_000_000}


def test_the_overview_counts_unit_conflicts_per_station(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    answer = post(client, [unit.record("polls_opened", {"identified": 0, "ballots": 0}),
                           unit.record("unit_conflict", CONFLICT), unit.record("unit_conflict", OTHER),
                           unit.record("unit_conflict", SAME_SEEN_FROM_DESK_2)])
    assert answer.status_code == 200, answer.data[:300]
    html = client.get("/").get_data(as_text=True)
    rows = html.split("<tbody>")[1].split("</tr>")
    first = next(r for r in rows if "KG-0001" in r)
    second = next(r for r in rows if "KG-0002" in r)
    # the third record names the first conflict's admissions again: one conflict, counted once
    assert "2 unit conflict(s)" in first and "unit conflict" not in second
    station = client.get("/stations/KG-0001").get_data(as_text=True)
    assert "unit_conflict" in station and "desk-2" in station


def test_a_conflict_record_with_a_voter_field_is_refused(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    answer = post(client, [unit.record("unit_conflict", {**CONFLICT, "voter": "ab" * 32})])
    assert "unknown field(s) voter" in answer.get_data(as_text=True)
