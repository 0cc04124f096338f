"""The journal: durable settings, append-only triggers, the hash chain and verification naming the bad row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from device.core import events as ev
from device.store.journal import GENESIS, Journal, JournalError, row_hash
from device.store.verify import verify_journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "journal.db", "S1")
    j.append([ev.DeviceStarted("t", "S1"), ev.PollsOpened(0, 0)], 1000.0)
    j.append([ev.VoterAdmitted("a" * 64, 1, "scan", 1)], 1001.0)
    j.append([ev.BallotCounted(1)], 1002.0)
    return j


def test_durability_settings(journal: Journal) -> None:
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_chain_links_every_row(journal: Journal) -> None:
    prev = GENESIS
    rows = list(journal.rows())
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r.prev_hash == prev and r.hash == row_hash(prev, r.seq, r.at_us, r.kind, r.body)
        prev = r.hash


def test_verify_ok_and_counts(journal: Journal) -> None:
    report = verify_journal(journal)
    assert report.ok and report.events == 4
    assert (report.state.identified, report.state.ballots) == (1, 1)


@pytest.mark.parametrize("sql", ["UPDATE events SET body = '{}' WHERE seq = 2", "DELETE FROM events WHERE seq = 4"])
def test_triggers_refuse_changes(journal: Journal, sql: str) -> None:
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        journal.conn.execute(sql)


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(f"DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; {sql};")
    conn.close()


@pytest.mark.parametrize(("sql", "seq", "why"), [
    ("UPDATE events SET body = '{\"token\":null}' WHERE seq = 4", 4, "hash mismatch"),
    ("DELETE FROM events WHERE seq = 3", 4, "sequence gap"),
    ("UPDATE events SET at_us = at_us + 1 WHERE seq = 2", 2, "hash mismatch"),
    ("UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 3", 3, "previous-hash"),
    ("UPDATE events SET body = 'not json' WHERE seq = 1", 1, "not valid JSON"),
])
def test_verify_names_the_first_bad_event(journal: Journal, tmp_path: Path, sql: str, seq: int, why: str) -> None:
    journal.close()
    _tamper(tmp_path / "journal.db", sql)
    report = verify_journal(Journal(tmp_path / "journal.db", "S1"))
    assert not report.ok and report.first_bad_seq == seq and why in report.reason
    assert f"event {seq}" in report.sentence()


def test_verify_catches_a_rehashed_forgery(journal: Journal, tmp_path: Path) -> None:
    """An attacker who recomputes the chain still cannot make the counters lie: apply refuses it."""
    journal.close()
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.executescript("DROP TRIGGER events_no_update;")
    rows = conn.execute("SELECT seq, at_us, kind, body FROM events ORDER BY seq").fetchall()
    prev = GENESIS
    for seq, at_us, kind, body in rows:
        if seq == 4:
            body = ev.canonical({**json.loads(body), "token": 7}).decode()
        h = row_hash(prev, seq, at_us, kind, body)
        conn.execute("UPDATE events SET body=?, prev_hash=?, hash=? WHERE seq=?", (body, prev, h, seq))
        prev = h
    conn.commit()
    conn.close()
    report = verify_journal(Journal(tmp_path / "journal.db", "S1"))
    assert not report.ok and report.first_bad_seq == 4 and "token 7" in report.reason


def test_reopen_continues_the_chain(journal: Journal, tmp_path: Path) -> None:
    journal.close()
    j = Journal(tmp_path / "journal.db", "S1")
    j.append([ev.PollsPaused("break")], 2000.0)
    assert verify_journal(j).ok and j.last_seq == 5


def test_other_stations_journal_is_refused(journal: Journal, tmp_path: Path) -> None:
    journal.close()
    with pytest.raises(JournalError, match="belongs to station 'S1'"):
        Journal(tmp_path / "journal.db", "S2")


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="not a readable journal database|damaged"):
        Journal(path, "S1")


def test_failed_hook_rolls_back_everything(journal: Journal) -> None:
    def boom(conn: sqlite3.Connection, recs: object) -> None:
        raise RuntimeError("outbox full")
    journal.add_hook(boom)
    with pytest.raises(RuntimeError):
        journal.append([ev.PollsPaused("x")], 3000.0)
    assert journal.last_seq == 4 and len(list(journal.rows())) == 4
    journal._hooks.clear()
    journal.append([ev.PollsPaused("x")], 3000.0)
    assert verify_journal(journal).ok
