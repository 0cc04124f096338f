"""The durable outbox: signed upstream records waiting for the receiver's receipt.

Two tables live in the journal's SQLite database:

* ``outbox``: one row per upstream record (``seq``, the ``journal_seq`` it
  reports, the signed ``line``, the record ``hash``). Rows are written by a
  journal hook inside the same transaction as the event they report, so a
  record exists exactly when its event does, with no gap in ``seq``. Triggers
  refuse UPDATE and DELETE: a record, once signed, is evidence.
* ``outbox_receipts``: every verified receipt, append-only. A record counts as
  delivered when a stored receipt's ``highest_seq`` reaches it.

A training station's records (its id starts with ``TRAINING-``) carry the
signed ``training`` flag (``protocol/training.py``).

Wiring: ``service.Upstream`` creates one ``Outbox`` on the journal's path,
calls ``attach(journal)`` (which also signs, in order, any upstream event the
journal holds but the outbox does not, e.g. after an upgrade) and reads
pending lines, receipts and export records from its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from device.core import events as ev
from device.store.journal import Journal, connect
from device.upstream.records import Tally, body_for, is_upstream, needs_tally
from protocol.chain import ZERO_HASH
from protocol.envelope import MAIN_UNIT, RecordSigner, SignedRecord, make_record, parse_line
from protocol.errors import UserError
from protocol.keys import key_id
from protocol.schema import SYSTEM
from protocol.training import is_training_station

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    journal_seq INTEGER NOT NULL UNIQUE,
    line TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS outbox_no_update BEFORE UPDATE ON outbox
BEGIN SELECT RAISE(ABORT, 'signed upstream records are never changed'); END;
CREATE TRIGGER IF NOT EXISTS outbox_no_delete BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'signed upstream records are never deleted'); END;
CREATE TABLE IF NOT EXISTS outbox_receipts (
    id INTEGER PRIMARY KEY,
    highest_seq INTEGER NOT NULL,
    line TEXT NOT NULL,
    received_at_us INTEGER NOT NULL
);
"""

_TALLY_SQL = """
SELECT kind, COUNT(*) FROM events
WHERE seq <= ? AND kind IN ('voter_admitted', 'checkin_undone', 'ballot_counted') GROUP BY kind
"""


class OutboxError(UserError):
    """The outbox cannot do what was asked; the message says why."""


def says_software(event: ev.Event) -> bool:
    """Whether ``event``'s record says which software signed it: the zero and close reports, the readiness note."""
    return isinstance(event, (ev.PollsOpened, ev.PollsClosed)) or (
        isinstance(event, ev.Annotation) and event.topic == "readiness")


class Outbox:
    """Signs upstream records in the journal's transactions and keeps them until receipted."""

    def __init__(self, path: Path, *, key: RecordSigner, station_id: str,
                 software: Mapping[str, str] | None = None, unit: str = MAIN_UNIT) -> None:
        self._key = key
        self.unit = unit  # a unit other than its station's main one signs its id into its own chain (docs/units.md)
        self._software = software  # signed into the zero, close and readiness reports: device/software.py
        self.station_id = station_id
        self.training = is_training_station(station_id)  # a training station signs the flag into every record
        self.key_id = key_id(key.public_key())
        self._lock = threading.Lock()
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)

    # Writing (inside journal transactions) -------------------------------------

    def attach(self, journal: Journal) -> int:
        """Sign any upstream events not yet in the outbox, then hook into every append.

        Both happen under one write transaction, so no append can slip between
        them. Returns how many records the catch-up produced.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                made = self._catch_up(journal)
                journal.add_hook(self.on_append)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return made

    def _catch_up(self, journal: Journal) -> int:
        after = self._tail(self._conn)[2]
        rows = self._conn.execute(
            "SELECT seq, at_us, kind, body FROM events WHERE seq > ? ORDER BY seq", (after,)).fetchall()
        missing = [ev.Recorded(seq, at_us / 1_000_000, ev.decode(kind, json.loads(body)))
                   for seq, at_us, kind, body in rows if is_upstream(kind)]
        self.on_append(self._conn, missing)
        return len(missing)

    def on_append(self, conn: sqlite3.Connection, recorded: Sequence[ev.Recorded]) -> None:
        """The journal hook: one signed outbox row per upstream event, same transaction."""
        seq, prev, last_journal = self._tail(conn)
        rows = []
        for rec in recorded:
            if not is_upstream(rec.event.kind) or rec.seq <= last_journal:
                continue
            seq += 1
            record = make_record(key=self._key, station=self.station_id, seq=seq, prev=prev, at=rec.at,
                                 type_=rec.event.kind, body=self._body(conn, rec), training=self.training,
                                 unit=self.unit)
            rows.append((seq, rec.seq, record.line(), record.hash))
            prev = record.hash
        conn.executemany("INSERT INTO outbox (seq, journal_seq, line, hash) VALUES (?, ?, ?, ?)", rows)

    @staticmethod
    def _tail(conn: sqlite3.Connection) -> tuple[int, str, int]:
        row = conn.execute("SELECT seq, hash, journal_seq FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1]), int(row[2])) if row else (0, ZERO_HASH, 0)

    def _body(self, conn: sqlite3.Connection, rec: ev.Recorded) -> dict[str, object]:
        tally = _tally(conn, rec.seq) if needs_tally(rec.event) else None
        body = body_for(rec.event, tally)
        row = conn.execute("SELECT hash FROM events WHERE seq = ?", (rec.seq,)).fetchone()
        if row is None:
            raise OutboxError(f"journal event {rec.seq} is not in the journal transaction")
        body.update(journal_seq=rec.seq, journal_hash=bytes(row[0]).hex())
        if self._software is not None and says_software(rec.event):
            body.update(software_version=self._software["version"], software_hash=self._software["hash"])
            body.update({name: self._software[name] for name in SYSTEM if name in self._software})
        return body

    # Reading and receipts --------------------------------------------------------

    def last_seq(self) -> int:
        with self._lock:
            return self._tail(self._conn)[0]

    def delivered_through(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(highest_seq) FROM outbox_receipts").fetchone()
        return int(row[0] or 0)

    def last_receipt(self) -> tuple[int, str, float] | None:
        """(highest_seq, receipt line, wall time received) of the newest stored receipt."""
        with self._lock:
            row = self._conn.execute("SELECT highest_seq, line, received_at_us FROM outbox_receipts "
                                     "ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1]), row[2] / 1_000_000) if row else None

    def lines_after(self, after: int, limit: int, max_bytes: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (seq, line) pairs with seq > ``after`` and at most ``max_bytes`` in all."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, line FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (after, limit)).fetchall()
        out: list[tuple[int, str]] = []
        size = 0
        for seq, line in rows:
            size += len(line.encode("utf-8")) + 1
            if out and size > max_bytes:
                break
            out.append((int(seq), str(line)))
        return out

    def records(self, from_seq: int, to_seq: int) -> list[SignedRecord]:
        """The signed records ``from_seq..to_seq`` (inclusive), parsed."""
        with self._lock:
            rows = self._conn.execute("SELECT line FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                      (from_seq, to_seq)).fetchall()
        return [parse_line(r[0]) for r in rows]

    def iter_records(self, from_seq: int, to_seq: int, chunk: int = 1_000) -> Iterator[SignedRecord]:
        """The signed records ``from_seq..to_seq`` (inclusive), parsed, read ``chunk`` rows at a time.

        What an export streams: at most ``chunk`` rows are held at once, and the
        lock is taken per chunk, so signing goes on between chunks. Rows are never
        changed or deleted (the triggers), so the chunks join into one consistent run.
        """
        after = from_seq - 1
        while after < to_seq:
            with self._lock:
                rows = self._conn.execute("SELECT seq, line FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq "
                                          "LIMIT ?", (after, to_seq, chunk)).fetchall()
            if not rows:
                return
            for _, line in rows:
                yield parse_line(line)
            after = int(rows[-1][0])

    def line_for_journal_seq(self, journal_seq: int) -> str | None:
        """The signed line of the record that reports journal event ``journal_seq``, if any."""
        with self._lock:
            row = self._conn.execute("SELECT line FROM outbox WHERE journal_seq = ?", (journal_seq,)).fetchone()
        return str(row[0]) if row else None

    def accept_receipt(self, highest: int, line: str, at: float) -> bool:
        """Store a verified receipt if it moves delivery forward; returns whether it did."""
        last = self.last_seq()
        if highest > last:
            raise OutboxError(f"the receipt acknowledges seq {highest}, beyond the last record {last}; "
                              "it was not stored")
        if highest <= self.delivered_through():
            return False
        with self._lock:
            self._conn.execute("INSERT INTO outbox_receipts (highest_seq, line, received_at_us) VALUES (?, ?, ?)",
                               (highest, line, int(round(at * 1_000_000))))
        return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _tally(conn: sqlite3.Connection, journal_seq: int) -> Tally:
    counts = dict(conn.execute(_TALLY_SQL, (journal_seq,)).fetchall())
    return Tally(admitted=counts.get("voter_admitted", 0), undone=counts.get("checkin_undone", 0),
                 ballots=counts.get("ballot_counted", 0))
