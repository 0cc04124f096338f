"""Verification of a journal: the hash chain, the sequence, and every counter.

``verify_journal`` walks the rows in order, recomputes each chain hash, decodes
each event and folds it into a fresh ``StationState``; the first row whose hash,
sequence, body or meaning does not fit is named. Used by ``pollbox verify``,
and by the appliance before it lets the chair open the polls.

A chain that verifies can still be short: SQLite drops a damaged or cut WAL
tail without a word. So the journal is also held against what was recorded
outside it: its high-water mark (``journal.mark``, ``mark.py``) and, when the
caller names the backup directory, the station's copy on the backup stick.
A journal that ends before either is refused, with what to do; so is a
database whose pages fail SQLite's own ``quick_check``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from device.core import events as ev
from device.core.errors import InvalidEvent
from device.core.station import StationState, apply

from .backuphead import backup_head
from .errors import JournalIncomplete, StorageError
from .journal import GENESIS, Journal, Row, row_hash

RESTORE_ADVICE = ("Do not record on this unit: call the technician, who restores the journal from the backup "
                  "stick (technician guide, \"Journal refused at start\").")


@dataclass
class VerifyReport:
    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str = ""
    state: StationState = field(default_factory=StationState)
    head_hash: str = ""
    advice: str = ""
    """What to do, when the journal is refused for being incomplete or damaged."""

    def sentence(self) -> str:
        if self.advice:
            return f"journal REFUSED at event {self.first_bad_seq}: {self.reason}. {self.advice}"
        if self.ok:
            s = self.state
            return (f"journal verified: {self.events} events, chain intact; "
                    f"{s.identified} identified, {s.ballots} ballots, difference {s.difference}, "
                    f"{len(s.alarms)} open alarms; head {self.head_hash[:16]}")
        return f"journal FAILED verification at event {self.first_bad_seq}: {self.reason}"


def verify_journal(journal: Journal, *, backup_dir: Path | None = None) -> VerifyReport:
    """Recompute the chain and the counters; stop at the first bad row; then hold the journal against its anchors.

    ``backup_dir``: the backup stick's folder, if one is configured; a journal
    shorter than the station's copy there (or differing from it) is refused.
    """
    try:
        report = _verify_chain(journal)
    except sqlite3.DatabaseError as exc:     # a damaged page that SQLite cannot even read
        return VerifyReport(False, 0, 1, f"the journal database is damaged ({exc})", advice=RESTORE_ADVICE)
    if not report.ok:
        return report
    problem = journal.refusal or journal.check_mark() or _against_backup(journal, backup_dir) or _damaged_pages(journal)
    if problem is not None:
        report.ok, report.first_bad_seq, report.reason = False, journal.last_seq + 1, problem
        report.advice = RESTORE_ADVICE
        if journal.evidence is not None:
            report.reason += f"; the files as found are kept in {journal.evidence}"
    return report


def verify_path(path: Path, station_id: str, *, backup_dir: Path | None = None) -> VerifyReport:
    """``verify_journal`` of the journal at ``path``, also when it cannot be opened (missing, damaged, read-only)."""
    try:
        journal = Journal(path, station_id)
    except StorageError as exc:
        advice = RESTORE_ADVICE if isinstance(exc, JournalIncomplete) else exc.advice
        return VerifyReport(False, 0, 1, exc.detail, advice=advice)
    try:
        return verify_journal(journal, backup_dir=backup_dir)
    finally:
        journal.close()


def _verify_chain(journal: Journal) -> VerifyReport:
    state, prev, expected, count = StationState(), GENESIS, 1, 0
    for row in journal.rows():
        problem = _check_row(row, prev, expected)
        if problem is None:
            try:
                apply(state, ev.Recorded(row.seq, row.at_us / 1_000_000, ev.decode(row.kind, json.loads(row.body))))
            except (InvalidEvent, ValueError, TypeError) as exc:
                problem = f"event does not fit the journal before it: {exc}"
        if problem is not None:
            return VerifyReport(False, count, row.seq, problem, state, prev.hex())
        prev, expected, count = row.hash, expected + 1, count + 1
    return VerifyReport(True, count, None, "", state, prev.hex())


def _against_backup(journal: Journal, backup_dir: Path | None) -> str | None:
    head = backup_head(backup_dir, journal.station_id) if backup_dir is not None else None
    if head is None:
        return None
    seq, digest = head
    if seq > journal.last_seq:
        return (f"the journal ends at event {journal.last_seq}, but the backup on the stick holds {seq} events: "
                "its tail was lost or damaged")
    row = journal.conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    if seq > 0 and (row is None or bytes(row[0]) != digest):
        return f"event {seq} of the journal is not the one in the backup on the stick: the journal was replaced"
    return None


def _damaged_pages(journal: Journal) -> str | None:
    """SQLite's own page check; damage the hash chain cannot see (free lists, page structure) shows here."""
    try:
        result = [r[0] for r in journal.conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return f"the journal database is damaged ({exc})"
    return None if result == ["ok"] else f"the journal database is damaged ({'; '.join(result[:3])})"


def _check_row(row: Row, prev: bytes, expected: int) -> str | None:
    if row.seq != expected:
        return f"sequence gap: expected {expected}, found {row.seq}"
    if row.prev_hash != prev:
        return "previous-hash link broken (a row before it was changed or removed)"
    try:
        json.loads(row.body)
    except ValueError as exc:
        return f"body is not valid JSON ({exc})"
    digest = row_hash(prev, row.seq, row.at_us, row.kind, row.body)
    if digest != row.hash:
        return "hash mismatch: the row's content was altered"
    return None
