"""The receiver's database: SQLite by default, PostgreSQL when given a URL.

One ``Storage`` class over a small ``Dialect`` (placeholders, column types,
how to lock). Tables:

- ``stations``: one row per station, the projection of its records
  (``status.py``): highest seq, last hash, phase, counts, open alarms;
- ``records``: every accepted signed line, by (station, seq), with its hash
  and its Merkle leaf index;
- ``merkle_nodes`` and ``tree``: the complete subtrees of the public log
  (``merkle.py``) and its size and root;
- ``alarms``, ``conflicts`` (evidence: a second signed record for a stored
  seq, never overwriting the first) and ``rejections``;
- ``revocations``: every key revocation this database has seen in a CEC-signed
  registry, with when the receiver first put it in force; never deleted, so a
  receiver refuses to start on an older registry that lacks one
  (``service.py``).

Concurrency. ``store`` runs one transaction per batch. SQLite takes the write
lock up front (``BEGIN IMMEDIATE``): one writer at a time. PostgreSQL locks
the station's row (``SELECT ... FOR UPDATE``), so batches of one station are
sequenced one after the other while other stations proceed, then, just before
appending leaves, the single ``tree`` row: leaf order is global and gap-free
however many receiver processes share the database. Locks are always taken in
that order (station, then tree), so they cannot deadlock. Signatures are
verified before the transaction, outside any lock.

Wiring: ``app.py`` and ``cli.py`` call ``open_storage(url)``; ``ingest.py``
calls ``store``; the views call the read methods.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from device.upstream.envelope import ZERO_HASH, SignedRecord
from receiver import merkle
from receiver.ingest import Plan, Rejection, sequence
from receiver.registry import DeviceEntry, Revocation
from receiver.status import StationStatus, alarm_changes, fold

log = logging.getLogger("pollbox.receiver.storage")

STATUS_COLUMNS = [f.name for f in fields(StationStatus)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    station TEXT PRIMARY KEY, enrolled INTEGER NOT NULL DEFAULT 0,
    highest_seq {bigint} NOT NULL DEFAULT 0, last_hash TEXT NOT NULL DEFAULT '{zero}',
    phase TEXT NOT NULL DEFAULT 'not_opened', first_received {float}, last_received {float},
    last_at TEXT, opened_at TEXT, closed_at TEXT, identified {bigint}, ballots {bigint}, registered {bigint},
    alarms_open INTEGER NOT NULL DEFAULT 0, close_report TEXT);
CREATE INDEX IF NOT EXISTS stations_last_received ON stations (last_received);
CREATE TABLE IF NOT EXISTS records (
    station TEXT NOT NULL, seq {bigint} NOT NULL, hash TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL,
    received_at {float} NOT NULL, leaf_index {bigint} NOT NULL, line TEXT NOT NULL, PRIMARY KEY (station, seq));
CREATE UNIQUE INDEX IF NOT EXISTS records_hash ON records (hash);
CREATE UNIQUE INDEX IF NOT EXISTS records_leaf ON records (leaf_index);
CREATE TABLE IF NOT EXISTS merkle_nodes (
    level INTEGER NOT NULL, idx {bigint} NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY, size {bigint} NOT NULL, root {blob} NOT NULL, frontier {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (
    station TEXT NOT NULL, alarm INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    raised_at TEXT NOT NULL, acknowledged_at TEXT, PRIMARY KEY (station, alarm));
CREATE TABLE IF NOT EXISTS conflicts (
    id {serial}, station TEXT NOT NULL, seq {bigint} NOT NULL, hash TEXT NOT NULL,
    line TEXT NOT NULL, received_at {float} NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    id {serial}, received_at {float} NOT NULL, station TEXT, seq {bigint}, key_id TEXT,
    code TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rejections_station ON rejections (station, id);
CREATE TABLE IF NOT EXISTS revocations (
    key_id TEXT PRIMARY KEY, station TEXT NOT NULL, revoked_at TEXT NOT NULL, reason TEXT NOT NULL,
    revoked_by TEXT NOT NULL, last_seq {bigint} NOT NULL, in_force_since {float} NOT NULL);
"""

REVOCATION_COLUMNS = ("key_id", "station", "revoked_at", "reason", "revoked_by", "last_seq", "in_force_since")


class StorageError(Exception):
    """The database cannot be opened or used; the message says which and why."""


@dataclass(frozen=True)
class Dialect:
    name: str
    types: dict[str, str]
    for_update: str

    def sql(self, text: str) -> str:
        return text if self.name == "sqlite" else text.replace("?", "%s")


SQLITE = Dialect("sqlite", {"bigint": "INTEGER", "float": "REAL", "blob": "BLOB",
                            "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}, "")
POSTGRES = Dialect("postgresql", {"bigint": "BIGINT", "float": "DOUBLE PRECISION", "blob": "BYTEA",
                                  "serial": "BIGSERIAL PRIMARY KEY"}, " FOR UPDATE")


@dataclass(frozen=True)
class OverviewQuery:
    """Filters of the overview page; ``status`` is one of ``STATUS_FILTERS``."""

    status: str = "all"
    prefix: str = ""
    sort: str = "station"
    page: int = 1
    per_page: int = 100


STATUS_FILTERS = ("all", "reporting", "silent", "not_reported", "closed", "alarms")
SORTS = {"station": "station", "silent": "last_received IS NULL, last_received, station",
         "alarms": "alarms_open DESC, station", "turnout": "identified * 1.0 / NULLIF(registered, 0) DESC, station"}


class Storage:
    """All reads and writes of the receiver; safe to share between threads (one connection per thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = POSTGRES if is_postgres(url) else SQLITE
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._create_schema()

    # Connections ------------------------------------------------------------

    def _connect(self) -> Any:
        if self.dialect is POSTGRES:
            return _connect_postgres(self.url)
        return _connect_sqlite(sqlite_path(self.url))

    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        if self.dialect is POSTGRES:
            import psycopg

            return (psycopg.Error,)
        return (sqlite3.Error,)

    def _forget_if_broken(self, conn: Any) -> None:
        """Drop this thread's connection if the server closed it, so the next call reconnects."""
        if getattr(conn, "closed", False):
            self._local.conn = None

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        conn = self.conn()
        try:
            return conn.execute(self.dialect.sql(sql), tuple(params))
        except self._driver_errors() as exc:
            self._forget_if_broken(conn)
            raise StorageError(f"{self.dialect.name}: {exc}".strip()) from exc

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        conn = self.conn()
        try:
            conn.cursor().executemany(self.dialect.sql(sql), [tuple(r) for r in rows])
        except self._driver_errors() as exc:
            self._forget_if_broken(conn)
            raise StorageError(f"{self.dialect.name}: {exc}".strip()) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._q("BEGIN IMMEDIATE" if self.dialect is SQLITE else "BEGIN")
        conn = self.conn()
        try:
            yield
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except self._driver_errors():
                self._forget_if_broken(conn)
            raise
        self._q("COMMIT")

    def _create_schema(self) -> None:
        ddl = SCHEMA.format(zero=ZERO_HASH, **self.dialect.types)
        with self._transaction():
            if self.dialect is POSTGRES:
                self._q("SELECT pg_advisory_xact_lock(6962)")  # concurrent first starts create the schema once
            for statement in ddl.split(";"):
                if statement.strip():
                    self._q(statement)
            self._q("INSERT INTO tree (id, size, root, frontier) VALUES (1, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (merkle.EMPTY_ROOT, b""))

    # Ingest -------------------------------------------------------------------

    def store(self, station: str, records: Sequence[SignedRecord], now: float, source: str) -> Plan:
        """Sequence and store one station's authenticated records in one transaction."""
        if not records:
            return Plan()
        with self._transaction():
            status = self._locked_status(station)
            plan = sequence(records, status.highest_seq, status.last_hash,
                            self._stored_hashes(station, records, status.highest_seq))
            if plan.new:
                self._append(plan.new, now)
                self._save_status(fold(status, plan.new, now))
                self._apply_alarms(station, plan.new)
            if plan.conflict is not None:
                self._q("INSERT INTO conflicts (station, seq, hash, line, received_at, source) VALUES (?,?,?,?,?,?)",
                        (station, plan.conflict.seq, plan.conflict.hash, plan.conflict.line(), now, source))
        return plan

    def _locked_status(self, station: str) -> StationStatus:
        """The station's row, created if new and locked until the transaction ends (one statement)."""
        row = self._q("INSERT INTO stations (station) VALUES (?) ON CONFLICT (station) DO UPDATE "
                      f"SET station = excluded.station RETURNING {', '.join(STATUS_COLUMNS)}", (station,)).fetchone()
        return StationStatus(*row)

    def _stored_hashes(self, station: str, records: Sequence[SignedRecord], highest: int) -> dict[int, str]:
        """Hashes of the stored records a batch may repeat (none in the usual case of only new records)."""
        low, high = min(r.seq for r in records), min(max(r.seq for r in records), highest)
        if low > high:
            return {}
        rows = self._q("SELECT seq, hash FROM records WHERE station = ? AND seq BETWEEN ? AND ?",
                       (station, low, high)).fetchall()
        return {int(seq): str(h) for seq, h in rows}

    def _append(self, records: Sequence[SignedRecord], now: float) -> None:
        size, packed = self._q(f"SELECT size, frontier FROM tree WHERE id = 1{self.dialect.for_update}").fetchone()
        packed = bytes(packed)
        frontier = [packed[i:i + 32] for i in range(0, len(packed), 32)]
        nodes, frontier = merkle.append(size, frontier, [merkle.leaf_hash(r.data) for r in records])
        self._many("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?,?,?)", nodes)
        self._many("INSERT INTO records (station, seq, hash, type, at, received_at, leaf_index, line) "
                   "VALUES (?,?,?,?,?,?,?,?)",
                   [(r.station, r.seq, r.hash, r.fields["type"], r.fields["at"], now, size + i, r.line())
                    for i, r in enumerate(records)])
        self._q("UPDATE tree SET size = ?, root = ?, frontier = ? WHERE id = 1",
                (size + len(records), merkle.root_from_frontier(frontier), b"".join(frontier)))

    def _save_status(self, status: StationStatus) -> None:
        names = STATUS_COLUMNS[1:]
        self._q(f"UPDATE stations SET {', '.join(f'{n} = ?' for n in names)} WHERE station = ?",
                [getattr(status, n) for n in names] + [status.station])

    def _apply_alarms(self, station: str, records: Sequence[SignedRecord]) -> None:
        changes = alarm_changes(records)
        for change in changes:
            if change.acknowledged:
                self._q("UPDATE alarms SET acknowledged_at = ? WHERE station = ? AND alarm = ? "
                        "AND acknowledged_at IS NULL", (change.at, station, change.alarm))
            else:
                self._q("INSERT INTO alarms (station, alarm, kind, detail, raised_at) VALUES (?,?,?,?,?) "
                        "ON CONFLICT (station, alarm) DO NOTHING",
                        (station, change.alarm, change.kind, change.detail, change.at))
        if changes:
            self._q("UPDATE stations SET alarms_open = (SELECT COUNT(*) FROM alarms WHERE alarms.station = ? "
                    "AND acknowledged_at IS NULL) WHERE station = ?", (station, station))

    def log_rejection(self, rejection: Rejection, now: float, source: str) -> None:
        with self._transaction():
            self._q("INSERT INTO rejections (received_at, station, seq, key_id, code, reason, source) "
                    "VALUES (?,?,?,?,?,?,?)", (now, rejection.station, rejection.seq, rejection.key,
                                               rejection.code, rejection.reason, source))

    def sync_enrolled(self, stations: Sequence[str], digest: str) -> None:
        """Mark the registry's stations as enrolled (once per registry version), so silent ones show."""
        with self._transaction():
            row = self._q("SELECT value FROM meta WHERE key = 'registry_digest'").fetchone()
            if row is not None and row[0] == digest:
                return
            self._q("UPDATE stations SET enrolled = 0")
            self._many("INSERT INTO stations (station, enrolled) VALUES (?, 1) "
                       "ON CONFLICT (station) DO UPDATE SET enrolled = 1", [(s,) for s in stations])
            self._q("INSERT INTO meta (key, value) VALUES ('registry_digest', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (digest,))

    def record_revocations(self, revoked: Sequence[tuple[DeviceEntry, Revocation]], now: float) -> None:
        """Keep every revocation put in force (the first sighting wins; rows are never changed or deleted)."""
        if not revoked:
            return
        with self._transaction():
            self._many("INSERT INTO revocations (key_id, station, revoked_at, reason, revoked_by, last_seq, "
                       "in_force_since) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key_id) DO NOTHING",
                       [(e.key_id, e.station, r.at, r.reason, r.by, r.last_seq, now) for e, r in revoked])

    def revocations(self) -> list[dict[str, Any]]:
        """Every revocation this database has seen, oldest first."""
        rows = self._q(f"SELECT {', '.join(REVOCATION_COLUMNS)} FROM revocations "
                       "ORDER BY in_force_since, key_id").fetchall()
        return [dict(zip(REVOCATION_COLUMNS, row, strict=True)) for row in rows]

    # Reads --------------------------------------------------------------------

    def seqs_signed_by(self, station: str, key_id: str, after: int = 0, limit: int | None = None) -> list[int]:
        """Seqs above ``after`` of the station's stored records signed by ``key_id``, highest first.

        Records have no key column: a LIKE narrows the rows, then each line's own ``key`` field decides.
        """
        pattern = f'%"key":"{_like_escape(key_id)}"%'
        rows = self._q("SELECT seq, line FROM records WHERE station = ? AND seq > ? AND line LIKE ? ESCAPE '!' "
                       "ORDER BY seq DESC", (station, after, pattern))
        seqs: list[int] = []
        for seq, line in rows:
            if json.loads(line.partition(" ")[2]).get("key") == key_id:
                seqs.append(int(seq))
                if limit is not None and len(seqs) >= limit:
                    break
        return seqs

    def highest_seq_signed_by(self, station: str, key_id: str) -> int:
        """The highest stored seq of ``station`` signed by ``key_id`` (0 when it signed none stored)."""
        found = self.seqs_signed_by(station, key_id, limit=1)
        return found[0] if found else 0


    def highest_seq(self, station: str) -> int:
        row = self._q("SELECT highest_seq FROM stations WHERE station = ?", (station,)).fetchone()
        return int(row[0]) if row else 0

    def record_line(self, station: str, seq: int) -> str | None:
        row = self._q("SELECT line FROM records WHERE station = ? AND seq = ?", (station, seq)).fetchone()
        return str(row[0]) if row else None

    def leaf_of(self, record_hash: str) -> tuple[int, str] | None:
        """(leaf index, signed line) of the record with this SHA-256 hex, if stored."""
        row = self._q("SELECT leaf_index, line FROM records WHERE hash = ?", (record_hash,)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def tree(self) -> tuple[int, bytes]:
        size, root = self._q("SELECT size, root FROM tree WHERE id = 1").fetchone()
        return int(size), bytes(root)

    def _node(self, level: int, idx: int) -> bytes:
        row = self._q("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", (level, idx)).fetchone()
        if row is None:
            raise StorageError(f"the Merkle node ({level}, {idx}) is missing: the log is damaged")
        return bytes(row[0])

    def audit_path(self, index: int, size: int) -> list[bytes]:
        return merkle.audit_path(self._node, index, size)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(self._node, first, second)

    def root_at(self, size: int) -> bytes:
        return merkle.root(self._node, size)

    def count_records(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM records").fetchone()[0])

    def leaves(self) -> list[tuple[int, str]]:
        """(leaf index, line) of every record, in leaf order (for audits and tests)."""
        return [(int(i), str(line)) for i, line in self._q("SELECT leaf_index, line FROM records ORDER BY leaf_index")]

    def status(self, station: str) -> StationStatus | None:
        row = self._q(f"SELECT {', '.join(STATUS_COLUMNS)} FROM stations WHERE station = ?", (station,)).fetchone()
        return StationStatus(*row) if row else None

    def overview(self, query: OverviewQuery, silent_before: float) -> tuple[list[StationStatus], int]:
        """One page of stations matching ``query`` and the number matching in all."""
        where, params = self._where(query, silent_before)
        total = int(self._q(f"SELECT COUNT(*) FROM stations WHERE {where}", params).fetchone()[0])
        rows = self._q(f"SELECT {', '.join(STATUS_COLUMNS)} FROM stations WHERE {where} "
                       f"ORDER BY {SORTS.get(query.sort, 'station')} LIMIT ? OFFSET ?",
                       [*params, query.per_page, (max(query.page, 1) - 1) * query.per_page]).fetchall()
        return [StationStatus(*row) for row in rows], total

    def _where(self, query: OverviewQuery, silent_before: float) -> tuple[str, list[Any]]:
        clauses = {"all": "1 = 1", "not_reported": "highest_seq = 0", "closed": "phase = 'closed'",
                   "alarms": "alarms_open > 0",
                   "silent": "highest_seq > 0 AND phase <> 'closed' AND last_received < ?",
                   "reporting": "highest_seq > 0 AND phase <> 'closed' AND last_received >= ?"}
        clause = clauses.get(query.status, "1 = 1")
        params: list[Any] = [silent_before] if "?" in clause else []
        if query.prefix:
            clause += " AND station LIKE ? ESCAPE '!'"
            params.append(_like_prefix(query.prefix))
        return clause, params

    def summary(self, silent_before: float) -> dict[str, int]:
        """Counts for the overview's header."""
        row = self._q(
            "SELECT COUNT(*), SUM(CASE WHEN highest_seq > 0 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN highest_seq = 0 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN highest_seq > 0 AND phase <> 'closed' AND last_received < ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN phase = 'closed' THEN 1 ELSE 0 END), SUM(CASE WHEN alarms_open > 0 THEN 1 ELSE 0 END), "
            "SUM(alarms_open), SUM(identified), SUM(ballots), SUM(registered) FROM stations",
            (silent_before,)).fetchone()
        names = ("stations", "reported", "not_reported", "silent", "closed", "with_alarms", "alarms_open",
                 "identified", "ballots", "registered")
        return {name: int(value or 0) for name, value in zip(names, row, strict=True)}

    def alarms(self, station: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT alarm, kind, detail, raised_at, acknowledged_at FROM alarms WHERE station = ? "
                       "ORDER BY alarm", (station,)).fetchall()
        names = ("alarm", "kind", "detail", "raised_at", "acknowledged_at")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def records_of(self, station: str, limit: int = 500) -> list[dict[str, Any]]:
        """The latest ``limit`` records of a station, newest first, with parsed bodies."""
        rows = self._q("SELECT seq, type, at, received_at, leaf_index, hash, line FROM records WHERE station = ? "
                       "ORDER BY seq DESC LIMIT ?", (station, limit)).fetchall()
        return [{"seq": seq, "type": kind, "at": at, "received_at": received, "leaf_index": leaf, "hash": h,
                 "body": json.loads(line.partition(" ")[2])["body"]}
                for seq, kind, at, received, leaf, h, line in rows]

    def conflicts_of(self, station: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT seq, hash, line, received_at, source FROM conflicts WHERE station = ? ORDER BY id",
                       (station,)).fetchall()
        return [dict(zip(("seq", "hash", "line", "received_at", "source"), row, strict=True)) for row in rows]

    def rejections(self, station: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT received_at, station, seq, key_id, code, reason, source FROM rejections"
        params: list[Any] = []
        if station is not None:
            sql, params = sql + " WHERE station = ?", [station]
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
        return [dict(zip(("received_at", "station", "seq", "key_id", "code", "reason", "source"), row, strict=True))
                for row in rows]


def _like_escape(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _like_prefix(prefix: str) -> str:
    return _like_escape(prefix) + "%"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)


def _connect_sqlite(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the SQLite database {path}: {exc}") from None
    return conn


def _connect_postgres(url: str) -> Any:
    import psycopg  # the receiver's PostgreSQL driver, needed only with a postgresql:// URL

    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to PostgreSQL: {exc}".strip()) from None


def open_storage(url: str) -> Storage:
    """Storage for a ``postgresql://`` URL, a ``sqlite:///path`` URL or a plain file path."""
    return Storage(url)
