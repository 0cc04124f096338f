"""During the day a station of several units shows its combined counts, and every unit's alarms are its alarms.

Each unit counts only its own admissions and its own box, so the station's ``identified`` and ``ballots``
are the main unit's plus each other unit's, until the main unit's close reconciles them (its
``units_reconciled`` totals, which nothing moves after). Alarm numbers are per journal: desk-2's alarm 1
and the main desk's alarm 1 are two alarms, both counted in the station's open alarms and the overview's.
A database of the previous version (alarms keyed by station and number, counts of the main unit only) is
brought there in place.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post
from test_receiver_units import RECONCILED, closed, station_units  # noqa: I001 (the sibling test module)

from receiver.storage import open_storage


def snapshot(identified: int, ballots: int, registered: int = 100) -> dict[str, int]:
    return {"identified": identified, "ballots": ballots, "registered": registered}


def raised(alarm: int, kind: str = "lid_opened") -> dict[str, object]:
    return {"alarm": alarm, "alarm_kind": kind, "detail": f"alarm {alarm}"}


def row(app: Flask, station: str = "KG-0001") -> tuple[int | None, int | None, int]:
    status = app.extensions["pollbox_receiver"].storage.status(station)
    return status.identified, status.ballots, status.alarms_open


def totals(app: Flask) -> tuple[int, int, int]:
    summary = app.extensions["pollbox_receiver"].storage.summary(0.0, 0.0)
    return summary.identified, summary.ballots, summary.alarms_open


def ok(client: FlaskClient, unit: Unit, kind: str, body: dict[str, object]) -> None:
    answer = post(client, [unit.record(kind, body)])
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_the_daytime_counts_are_every_units_own_added(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    ok(client, desk2, "turnout_snapshot", snapshot(3, 3))  # before the main desk sent anything
    assert row(app)[:2] == (3, 3) and app.extensions["pollbox_receiver"].storage.status("KG-0001").registered == 100
    ok(client, main, "turnout_snapshot", snapshot(4, 4))
    ok(client, mobile, "turnout_snapshot", snapshot(2, 1))
    assert row(app)[:2] == (9, 8) and totals(app)[:2] == (9, 8)
    ok(client, desk2, "turnout_snapshot", snapshot(5, 5))  # desk-2 moves by its own difference
    ok(client, main, "checkin_undone", {"undone_total": 1, "identified": 3, "ballots": 4})
    assert row(app)[:2] == (10, 10) and totals(app)[:2] == (10, 10)
    ok(client, main, "annotation", {"topic": "note", "text": "no counts here"})
    assert row(app)[:2] == (10, 10)
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.summary(0.0, 0.0).reported == 1  # the overview's turnout and sorts read the station's row
    page = client.get("/?sort=turnout").get_data(as_text=True)
    assert "KG-0001" in page
    # The close: the reconciled totals are the station's, and no unit's record moves them again.
    ok(client, desk2, "polls_closed", closed(5, 5))
    post(client, [main.record("units_reconciled", RECONCILED), main.record("polls_closed", closed(4, 4))])
    assert row(app)[:2] == (RECONCILED["identified"], RECONCILED["ballots"])
    ok(client, mobile, "turnout_snapshot", snapshot(7, 7))
    assert row(app)[:2] == (9, 9) and totals(app)[:2] == (9, 9)


def test_every_units_alarms_are_the_stations_keyed_by_unit(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    ok(client, main, "alarm_raised", raised(1))
    ok(client, desk2, "alarm_raised", raised(1, "jam"))  # the same number in another journal: another alarm
    ok(client, mobile, "alarm_raised", raised(1, "unit_clock_drift"))
    assert row(app)[2] == 3 and totals(app)[2] == 3
    ok(client, desk2, "alarm_acknowledged", {"alarm": 1, "note_given": True})
    assert row(app)[2] == 2 and totals(app)[2] == 2
    alarms = app.extensions["pollbox_receiver"].storage.alarms("KG-0001")
    assert [(a["unit"], a["alarm"], a["kind"], a["acknowledged_at"] is None) for a in alarms] == [
        ("", 1, "lid_opened", True), ("desk-2", 1, "jam", False), ("mobile", 1, "unit_clock_drift", True)]
    chains = dict(app.extensions["pollbox_receiver"].storage.units_of("KG-0001"))
    assert (chains["desk-2"].alarms_open, chains["mobile"].alarms_open) == (0, 1)
    page = client.get("/stations/KG-0001").get_data(as_text=True)
    assert "<td>desk-2</td><td>1</td><td>jam</td>" in page and "<td>main</td><td>1</td><td>lid_opened</td>" in page
    ok(client, main, "alarm_acknowledged", {"alarm": 1, "note_given": False})
    assert row(app)[2] == 1


def previous_version(app: Flask) -> str:
    """Turn the database back into the previous version's: alarms keyed by (station, alarm), only the main
    unit's alarms stored, and the station's counts its main unit's own."""
    storage = app.extensions["pollbox_receiver"].storage
    storage._q("DELETE FROM alarms WHERE unit <> ''")
    if storage.dialect.name == "sqlite":
        storage._q("CREATE TABLE alarms_old (station TEXT NOT NULL, alarm INTEGER NOT NULL, kind TEXT NOT NULL, "
                   "detail TEXT NOT NULL, raised_at TEXT NOT NULL, acknowledged_at TEXT, PRIMARY KEY (station, alarm))")
        storage._q("INSERT INTO alarms_old SELECT station, alarm, kind, detail, raised_at, acknowledged_at FROM alarms")
        storage._q("DROP TABLE alarms")
        storage._q("ALTER TABLE alarms_old RENAME TO alarms")
    else:
        storage._q("ALTER TABLE alarms DROP CONSTRAINT alarms_pkey")
        storage._q("ALTER TABLE alarms DROP COLUMN unit")
        storage._q("ALTER TABLE alarms ADD PRIMARY KEY (station, alarm)")
    storage._q("UPDATE stations SET identified = 4, ballots = 4, alarms_open = 1 WHERE station = 'KG-0001'")
    storage._q("UPDATE station_counts SET identified = 4, ballots = 4, alarms_open = 1, with_alarms = 1")
    url = str(storage.url)
    storage.close()
    return url


def test_a_previous_database_counts_every_unit_in_place(app: Flask, client: FlaskClient, setup: Setup) -> None:
    main, desk2, mobile = station_units(setup)
    ok(client, main, "turnout_snapshot", snapshot(4, 4))
    ok(client, main, "alarm_raised", raised(1))
    ok(client, desk2, "turnout_snapshot", snapshot(3, 2))
    ok(client, desk2, "alarm_raised", raised(1, "jam"))
    ok(client, desk2, "alarm_raised", raised(2, "jam"))
    ok(client, desk2, "alarm_acknowledged", {"alarm": 2, "note_given": False})
    ok(client, mobile, "turnout_snapshot", snapshot(1, 1))
    url = previous_version(app)
    upgraded = open_storage(url)
    try:
        assert "unit" in upgraded._columns("alarms")
        status = upgraded.status("KG-0001")
        assert (status.identified, status.ballots, status.alarms_open) == (8, 7, 2)
        assert [(a["unit"], a["alarm"], a["acknowledged_at"] is None) for a in upgraded.alarms("KG-0001")] == [
            ("", 1, True), ("desk-2", 1, True), ("desk-2", 2, False)]
        summary = upgraded.summary(0.0, 0.0)
        assert (summary.identified, summary.ballots, summary.alarms_open) == (8, 7, 2)
    finally:
        upgraded.close()
    again = open_storage(url)  # a second start finds nothing to do
    try:
        assert again.status("KG-0001").identified == 8
    finally:
        again.close()
