"""The journal: an append-only, hash-chained log of events in SQLite.

One row per event: a gapless ``seq``, the wall time in microseconds, the event
kind, its canonical JSON body, the previous row's hash and the row's own hash,
``SHA-256(prev_hash || canonical({"seq", "at_us", "kind", "body"}))``. The first
row chains from 32 zero bytes. Triggers refuse UPDATE and DELETE.

The database runs in WAL mode with ``synchronous=FULL``: when ``append``
returns, the events survive a power cut. Other modules (the upstream outbox)
add rows of their own in the same transaction through ``add_hook``.

Storage faults come out as one typed family (``errors.py``); the high-water mark outside
the file (``mark.py``) makes a lost or damaged tail a refusal, never a fresh start.
Wiring: the appliance owns one ``Journal``; ``verify.py`` reads it row by row.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.core import events as ev
from device.files import sync_path

from .errors import JournalError as JournalError  # re-exported: callers catch it from here
from .errors import (
    JournalIncomplete,
    JournalMissing,
    StorageDamaged,
    StorageError,
    StorageFull,
    StorageReadOnly,
    diagnose,
    from_sqlite,
)
from .mark import HighWaterMark, Mark, MarkDamaged, mark_path, read_mark
from .space import STORAGE_RESERVE_BYTES, StorageSpace, storage_space

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
@dataclass(frozen=True)
class Row:
    """A journal row as stored."""

    seq: int
    at_us: int
    kind: str
    body: str
    prev_hash: bytes
    hash: bytes


@functools.lru_cache(maxsize=256)
def _kind_json(kind: str) -> str:
    return json.dumps(kind)


def row_hash(prev: bytes, seq: int, at_us: int, kind: str, body: str) -> bytes:
    """The chain hash of one row: SHA-256 over the previous hash and the canonical row content.

    ``body`` is stored in canonical form, so the canonical JSON of
    ``{"at_us", "body", "kind", "seq"}`` is assembled around it as text (keys in
    sorted order) instead of being parsed and re-serialized. A body that is not
    canonical therefore never matches the hash it was written with.
    """
    content = f'{{"at_us":{at_us},"body":{body},"kind":{_kind_json(kind)},"seq":{seq}}}'
    return hashlib.sha256(prev + content.encode()).digest()


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the journal's durability settings."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        typed = from_sqlite(exc, path)
        if isinstance(typed, (StorageFull, StorageReadOnly)):
            raise typed from None
        raise StorageDamaged(f"{path}: not a readable journal database ({exc})") from None
    if mode.lower() != "wal":
        conn.close()
        raise StorageReadOnly(f"{path}: could not switch the journal to WAL mode (got {mode})")
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: it never writes, checkpoints or truncates the WAL, so a damaged tail stays as found."""
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False, timeout=10)
    except sqlite3.Error as exc:
        raise from_sqlite(exc, path) or StorageDamaged(f"{path}: cannot be read ({exc})") from None


def preserve_evidence(path: Path, marked: int | None, found: int | None) -> Path | None:
    """Copy a refused journal's files (database, WAL, mark) as found into a folder beside it; never deletes.

    A damaged WAL is cut at its first bad frame by SQLite, and a later writer
    (or the last connection closing) would overwrite or remove the frames after
    it. The copy keeps them for the technician. Returns the folder, or None if
    it could not be written (logged; the refusal stands either way).
    """
    folder = path.parent / f"journal-refused-{_n(found)}-of-{_n(marked)}"
    if folder.exists():
        return folder
    tmp = folder.with_name(folder.name + ".part")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name in (path.name, path.name + "-wal", mark_path(path).name):
            if (path.parent / name).exists():
                shutil.copy2(path.parent / name, tmp / name)
                sync_path(tmp / name)
        os.replace(tmp, folder)
        sync_path(path.parent)
    except OSError as exc:
        log.error("could not keep a copy of the refused journal in %s: %s", folder, exc)
        return None
    return folder


def _n(count: int | None) -> str:
    return "unknown" if count is None else str(count)


class Journal:
    """Append-only event log with a hash chain. Thread-safe: one writer at a time.

    With ``anchored`` (the default), the journal keeps its high-water mark in
    ``journal.mark`` beside it (``mark.py``). A journal that ends before the mark,
    or is gone while the mark exists, is never opened for writing: ``refusal``
    says why, ``append`` raises ``JournalIncomplete`` (or the constructor raises
    ``JournalMissing``), and ``verify_journal`` reports it. Such a journal is
    opened read-only, so nothing of a damaged WAL is checkpointed away.
    Copies (backups, exports) are opened with ``anchored=False``.
    """

    def __init__(self, path: Path, station_id: str, *, anchored: bool = True) -> None:
        self.path, self.station_id = path, station_id
        self._lock = threading.RLock()
        self._hooks: list[Hook] = []
        self.refusal: str | None = None
        """Why this journal may not be written (shorter than its mark, mark damaged), or None."""
        self.mark: HighWaterMark | None = None
        self.mark_fault: StorageError | None = None
        """The last failure to move the mark (the events were recorded all the same), or None."""
        self.evidence: Path | None = None
        """Where a refused journal's files were copied as found (``preserve_evidence``)."""
        self.last_seq, self.last_hash = 0, GENESIS
        known = self._known_mark() if anchored else None
        if known is not None and known.seq > 0 and not path.exists():
            raise JournalMissing(f"{path}: the journal file is missing, but {mark_path(path).name} shows "
                                 f"{known.seq} events were recorded; a fresh journal is not started")
        if self.refusal is None and known is not None and path.exists():
            self._probe(known)
        if self.refusal is not None:
            return
        self.conn = connect(path)
        try:
            self._prepare(station_id)
            if anchored:
                self.mark = HighWaterMark(mark_path(path), station_id)
                self.mark.open(self.last_seq, self.last_hash)
        except BaseException:
            self.conn.close()
            raise

    def _known_mark(self) -> Mark | None:
        try:
            known = read_mark(mark_path(self.path))
        except MarkDamaged as exc:
            self._refuse(str(exc.detail), None)
            return None
        if known is not None and known.station_id != self.station_id:
            raise JournalError(f"{mark_path(self.path)}: this mark belongs to station {known.station_id!r}, "
                               f"not {self.station_id!r}")
        return known

    def _probe(self, known: Mark) -> None:
        """Compare the journal with its mark through a read-only connection; keep it open (read-only) if refused."""
        self.conn = connect_read_only(self.path)
        try:
            self._read_head()
            problem = self._against_mark(known)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            preserve_evidence(self.path, known.seq, None)
            raise StorageDamaged(f"{self.path}: the journal database cannot be read ({exc})") from None
        self.conn.close()
        if problem is not None:
            self._refuse(problem, known.seq)

    def _refuse(self, problem: str, marked: int | None) -> None:
        """Open read-only for verify and keep the files as found; a journal with no events at all is missing."""
        if not self.path.exists():
            raise JournalMissing(f"{self.path}: the journal file is missing, and {problem}")
        self.conn = connect_read_only(self.path)
        try:
            self._read_head()
            has_events = self._has_events_table()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StorageDamaged(f"{self.path}: the journal database cannot be read ({exc})") from None
        self.refusal = problem
        log.error("journal refused: %s", problem)
        self.evidence = preserve_evidence(self.path, marked, self.last_seq)
        if not has_events:
            self.conn.close()
            recorded = f"{marked} events were recorded" if marked is not None else "its mark is damaged"
            raise JournalMissing(f"{self.path}: the journal holds no events at all (its WAL was deleted or lost), "
                                 f"but {recorded} ({mark_path(self.path).name}); a fresh journal is not started")

    def _has_events_table(self) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone() \
            is not None

    def check_mark(self) -> str | None:
        """Why the journal no longer matches its mark on disk (another writer, a replaced file), or None."""
        if self.mark is None:
            return None
        try:
            known = read_mark(mark_path(self.path))
        except StorageError as exc:
            return exc.detail
        return None if known is None else self._against_mark(known)

    def _read_head(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        last = (self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                if "events" in tables else None)
        self.last_seq, self.last_hash = (int(last[0]), bytes(last[1])) if last else (0, GENESIS)

    def _against_mark(self, known: Mark) -> str | None:
        where = mark_path(self.path).name
        if self.last_seq < known.seq:
            return (f"the journal ends at event {self.last_seq}, but {known.seq} events were recorded "
                    f"({where}): its tail was lost or damaged")
        row = self.conn.execute("SELECT hash FROM events WHERE seq = ?", (known.seq,)).fetchone()
        if known.seq > 0 and (row is None or bytes(row[0]) != known.hash):
            return (f"event {known.seq} of the journal is not the one recorded ({where}): "
                    "the journal was replaced or rewritten")
        return None

    def _prepare(self, station_id: str) -> None:
        try:
            self.conn.executescript(SCHEMA)
            self._check_meta(station_id)
            self._read_head()
            self.conn.execute("BEGIN IMMEDIATE")   # a write that changes nothing: a read-only journal shows now
            self.conn.execute("DELETE FROM meta WHERE key = ''")
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise from_sqlite(exc, self.path) or StorageDamaged(
                f"{self.path}: the journal database is damaged ({exc})") from None

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
        """Commit ``events`` durably, in order, in one transaction; returns them as recorded.

        Storage faults raise a ``StorageError`` (``StorageFull``, ``StorageReadOnly``,
        ``StorageDamaged``, ``JournalIncomplete``) and leave the journal as it was:
        nothing of the failed transaction is kept, and a later append (once space
        is back) continues the chain. Errors of a hook propagate unchanged.
        """
        if not events:
            return []
        if self.refusal is not None:
            raise JournalIncomplete(f"{self.path}: nothing can be recorded: {self.refusal}")
        at_us = int(round(at * 1_000_000))
        with self._lock:
            rows, recorded = self._chain(events, at_us)
            self._commit(rows, recorded)
            self.last_seq, self.last_hash = rows[-1][0], rows[-1][5]
            self._advance_mark()
            return recorded

    def _advance_mark(self) -> None:
        """Move the mark after a commit; the events are recorded even if this fails, so it never raises."""
        if self.mark is None:
            return
        try:
            self.mark.advance(self.last_seq, self.last_hash)
            self.mark_fault = None
        except StorageError as exc:
            self.mark_fault = exc
            log.error("journal high-water mark not moved (the events are recorded): %s", exc)

    def _chain(self, events: Sequence[ev.Event], at_us: int) -> tuple[list[tuple[Any, ...]], list[ev.Recorded]]:
        seq, prev = self.last_seq, self.last_hash
        rows, recorded = [], []
        for event in events:
            seq += 1
            body = ev.canonical(ev.body_of(event)).decode()
            digest = row_hash(prev, seq, at_us, event.kind, body)
            rows.append((seq, at_us, event.kind, body, prev, digest))
            recorded.append(ev.Recorded(seq, at_us / 1_000_000, event))
            prev = digest
        return rows, recorded

    def _commit(self, rows: list[tuple[Any, ...]], recorded: list[ev.Recorded]) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            for hook in self._hooks:
                hook(self.conn, recorded)
            self.conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                typed = from_sqlite(exc, self.path)
                if typed is not None:
                    typed = diagnose(typed, self.path)
                    log.error("journal append failed: %s", typed)
                    raise typed from exc
            raise

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:   # SQLite rolls back on its own after a full disk or an I/O error
            log.warning("journal rollback: %s", exc)

    def space(self, reserve_bytes: int = STORAGE_RESERVE_BYTES) -> StorageSpace:
        """Free space beside the journal against the reserve (one statvfs); ``.low``: raise the low-storage alarm."""
        return storage_space(self.path, reserve_bytes)

    def sync_mark(self) -> None:
        """Make the high-water mark durable now if an append moved it (cheap when it did not); call each tick."""
        with self._lock:
            if self.mark is not None:
                self.mark.sync()

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
            try:
                if self.mark is not None:
                    self.mark.close()
            finally:
                self.conn.close()
