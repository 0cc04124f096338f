"""A database written by the previous version (records without a key id column, stations without the evidence
count) is upgraded in place when a receiver opens it, on SQLite and on PostgreSQL, and keeps working."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post

from receiver.storage import open_storage

CLOSED = {"identified": 3, "ballots": 3, "difference": 0, "alarms_total": 0, "alarms_open": 0}


def make_previous_version(app: Flask) -> str:
    """Strip the columns and index this version added, as a database of the previous version lacks them."""
    storage = app.extensions["pollbox_receiver"].storage
    storage._q("ALTER TABLE records DROP COLUMN key_id")
    storage._q("ALTER TABLE stations DROP COLUMN evidence")
    url = str(storage.url)
    storage.close()
    return url


def test_records_get_their_key_id_column_filled_in_place(app: Flask, client: FlaskClient, setup: Setup,
                                                          tmp_path: Path) -> None:
    unit = setup.units["KG-0001"]
    post(client, unit.records(3))
    spare = Unit("KG-0001", seq=unit.seq, prev=unit.prev)
    setup.enroll(spare)
    post(client, spare.records(2) + [spare.record("polls_closed", CLOSED)])
    url = make_previous_version(app)

    upgraded = open_storage(url)
    try:
        assert {"key_id"} <= upgraded._columns("records") and "evidence" in upgraded._columns("stations")
        keys = dict(upgraded._q("SELECT seq, key_id FROM records WHERE station = 'KG-0001'").fetchall())
        assert keys == {1: unit.key_id, 2: unit.key_id, 3: unit.key_id, 4: spare.key_id, 5: spare.key_id,
                        6: spare.key_id}
        assert upgraded.seqs_signed_by("KG-0001", unit.key_id) == [3, 2, 1]
        assert upgraded.highest_seq_signed_by("KG-0001", spare.key_id) == 6
        assert upgraded.seqs_signed_by("KG-0001", spare.key_id, after=4) == [6, 5]
        assert upgraded.status("KG-0001").evidence == 0
        if upgraded.dialect.name == "sqlite":
            plan = upgraded._q("EXPLAIN QUERY PLAN SELECT seq FROM records WHERE station = ? AND key_id = ? "
                               "AND seq > ? ORDER BY seq DESC", ("KG-0001", unit.key_id, 0)).fetchall()
            assert "PRIMARY KEY" in str(plan) or "sqlite_autoindex_records" in str(plan), plan
    finally:
        upgraded.close()


def test_an_upgraded_database_goes_on_ingesting(app: Flask, client: FlaskClient, setup: Setup, tmp_path: Path) -> None:
    unit = setup.units["KG-0002"]
    post(client, [unit.record("polls_opened", {"identified": 0, "ballots": 0}), unit.record("polls_closed", CLOSED)])
    url = make_previous_version(app)
    upgraded = open_storage(url)
    try:
        second = unit.record("polls_closed", {**CLOSED, "identified": 50, "ballots": 50})
        plan = upgraded.store("KG-0002", [second], 1_900_000_000.0, "test")
        assert [r.seq for r in plan.new] == [3]
        status = upgraded.status("KG-0002")
        assert (status.identified, status.evidence, status.alarms_open) == (3, 1, 1)
        assert upgraded.seqs_signed_by("KG-0002", unit.key_id) == [3, 2, 1]
    finally:
        upgraded.close()
    again = open_storage(url)  # a second start finds nothing to upgrade
    try:
        assert again.seqs_signed_by("KG-0002", unit.key_id, limit=1) == [3]
    finally:
        again.close()
