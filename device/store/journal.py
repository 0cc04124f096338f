"""The journal: an append-only, hash-chained log of events in SQLite.

One row per event: a gapless ``seq``, the wall time in microseconds, the event
kind, its canonical JSON body, the previous row's hash and the row's own hash,
``SHA-256(prev_hash || canonical({"seq", "at_us", "kind", "body"}))``. The first
row chains from 32 zero bytes. Triggers refuse UPDATE and DELETE.

The database runs in WAL mode with ``synchronous=FULL``: when ``append``
returns, the events survive a power cut. Other modules (the upstream outbox)
add rows of their own in the same transaction through ``add_hook``.

Wiring: the appliance owns one ``Journal``; ``verify.py`` reads it row by row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from device.core import events as ev

log = logging.getLogger("pollbox.journal")

GENESIS = bytes(32)
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""

Hook = Callable[[sqlite3.Connection, Sequence[ev.Recorded]], None]


class JournalError(Exception):
    """The journal cannot be opened or written; the message says why and what to do."""


@dataclass(frozen=True)
class Row:
    """A journal row as stored."""

    seq: int
    at_us: int
    kind: str
    body: str
    prev_hash: bytes
    hash: bytes


def row_hash(prev: bytes, seq: int, at_us: int, kind: str, body: str) -> bytes:
    """The chain hash of one row: SHA-256 over the previous hash and the canonical row content.

    ``body`` is stored in canonical form, so the canonical JSON of
    ``{"at_us", "body", "kind", "seq"}`` is assembled around it as text (keys in
    sorted order) instead of being parsed and re-serialized. A body that is not
    canonical therefore never matches the hash it was written with.
    """
    content = f'{{"at_us":{at_us},"body":{body},"kind":{json.dumps(kind)},"seq":{seq}}}'
    return hashlib.sha256(prev + content.encode()).digest()


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the journal's durability settings."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a readable journal database ({exc}); "
                           "keep the file for the technician and restore from the backup unit") from None
    if mode.lower() != "wal":
        raise JournalError(f"{path}: could not switch to WAL mode (got {mode})")
    return conn


class Journal:
    """Append-only event log with a hash chain. Thread-safe: one writer at a time."""

    def __init__(self, path: Path, station_id: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._hooks: list[Hook] = []
        self.conn = connect(path)
        try:
            self.conn.executescript(SCHEMA)
            self._check_meta(station_id)
            last = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise JournalError(f"{path}: the journal database is damaged ({exc}); "
                               "run 'pollbox verify' and call the technician") from None
        self.last_seq: int = last[0] if last else 0
        self.last_hash: bytes = bytes(last[1]) if last else GENESIS

    def _check_meta(self, station_id: str) -> None:
        rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            self.conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                  [("schema", SCHEMA_VERSION), ("station_id", station_id)])
            return
        if rows.get("station_id") != station_id:
            raise JournalError(f"{self.path}: this journal belongs to station {rows.get('station_id')!r}, "
                               f"not {station_id!r}; a unit keeps one station's journal for the whole election")
        if rows.get("schema") != SCHEMA_VERSION:
            raise JournalError(f"{self.path}: journal schema {rows.get('schema')!r} is not {SCHEMA_VERSION!r}")

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook(conn, recorded)`` inside every append transaction, before commit."""
        self._hooks.append(hook)

    def append(self, events: Sequence[ev.Event], at: float) -> list[ev.Recorded]:
        """Commit ``events`` durably, in order, in one transaction; returns them as recorded."""
        if not events:
            return []
        at_us = int(round(at * 1_000_000))
        with self._lock:
            seq, prev = self.last_seq, self.last_hash
            rows, recorded = [], []
            for event in events:
                seq += 1
                body = ev.canonical(ev.body_of(event)).decode()
                digest = row_hash(prev, seq, at_us, event.kind, body)
                rows.append((seq, at_us, event.kind, body, prev, digest))
                recorded.append(ev.Recorded(seq, at_us / 1_000_000, event))
                prev = digest
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                for row in rows:
                    self.conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", row)
                for hook in self._hooks:
                    hook(self.conn, recorded)
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.last_seq, self.last_hash = seq, prev
            return recorded

    def rows(self, after: int = 0) -> Iterator[Row]:
        """Stored rows with seq > ``after``, in order (a separate read cursor)."""
        cur = self.conn.execute(
            "SELECT seq, at_us, kind, body, prev_hash, hash FROM events WHERE seq > ? ORDER BY seq", (after,))
        for r in cur:
            yield Row(r[0], r[1], r[2], r[3], bytes(r[4]), bytes(r[5]))

    def recorded(self, after: int = 0) -> Iterator[ev.Recorded]:
        """Decoded events with seq > ``after``, in order."""
        for r in self.rows(after):
            yield ev.Recorded(r.seq, r.at_us / 1_000_000, ev.decode(r.kind, json.loads(r.body)))

    def close(self) -> None:
        with self._lock:
            self.conn.close()
