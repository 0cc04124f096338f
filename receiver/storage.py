"""The receiver's database: SQLite by default, PostgreSQL when given a URL.

One ``Storage`` class over a small ``Dialect`` (placeholders, column types,
how to lock). Tables:

- ``stations``: one row per station, the projection of its records
  (``status.py``): highest seq, last hash, phase, counts, open alarms, and
  the overview's sort keys (``ranks``), one index per sort;
- ``station_counts``: one row of counts over all stations (``tally``), moved
  in the same transaction as a station's row, so the overview never counts
  a million rows; ``meta`` also keeps the key of the overview's page tokens
  (``PageTokens``: keyset pagination, no ``OFFSET``);
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
that order (station, then tree, then the ``station_counts`` row last), so
they cannot deadlock. Signatures are verified before the transaction,
outside any lock. The schema is created or upgraded under an advisory lock,
and only missing indexes are created: ``CREATE INDEX IF NOT EXISTS`` would
lock the table even when the index exists.

Wiring: ``app.py`` and ``cli.py`` call ``open_storage(url)``; ``ingest.py``
calls ``store``; the views call the read methods.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from protocol import merkle
from protocol.chain import ZERO_HASH
from protocol.envelope import SignedRecord
from receiver.ingest import Plan, Rejection, sequence
from receiver.limits import MAX_ROWS
from receiver.registry import DeviceEntry, Revocation
from receiver.status import AlarmChange, StationStatus, alarm_changes, evidence_alarms, fold

log = logging.getLogger("pollbox.receiver.storage")

STATUS_COLUMNS = [f.name for f in fields(StationStatus)]

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    station TEXT PRIMARY KEY, enrolled INTEGER NOT NULL DEFAULT 0,
    highest_seq {bigint} NOT NULL DEFAULT 0, last_hash TEXT NOT NULL DEFAULT '{zero}',
    phase TEXT NOT NULL DEFAULT 'not_opened', first_received {float}, last_received {float},
    last_at TEXT, opened_at TEXT, closed_at TEXT, identified {bigint}, ballots {bigint}, registered {bigint},
    alarms_open INTEGER NOT NULL DEFAULT 0, close_report TEXT, evidence INTEGER NOT NULL DEFAULT 0,
    silent_rank {float} NOT NULL DEFAULT 1e300, turnout_rank {float} NOT NULL DEFAULT 1e300,
    alarms_rank INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS station_counts (
    id INTEGER PRIMARY KEY, stations {bigint} NOT NULL, reported {bigint} NOT NULL, voting {bigint} NOT NULL,
    closed {bigint} NOT NULL, with_alarms {bigint} NOT NULL, alarms_open {bigint} NOT NULL,
    identified {bigint} NOT NULL, ballots {bigint} NOT NULL, registered {bigint} NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    station TEXT NOT NULL, seq {bigint} NOT NULL, hash TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL,
    received_at {float} NOT NULL, leaf_index {bigint} NOT NULL, line TEXT NOT NULL, PRIMARY KEY (station, seq));
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
CREATE TABLE IF NOT EXISTS revocations (
    key_id TEXT PRIMARY KEY, station TEXT NOT NULL, revoked_at TEXT NOT NULL, reason TEXT NOT NULL,
    revoked_by TEXT NOT NULL, last_seq {bigint} NOT NULL, in_force_since {float} NOT NULL);
"""

# Created after the tables (and after adding the rank columns to a database of an earlier version).
INDEXES = """
CREATE INDEX IF NOT EXISTS stations_last_received ON stations (last_received);
CREATE INDEX IF NOT EXISTS stations_silent_rank ON stations (silent_rank, station);
CREATE INDEX IF NOT EXISTS stations_turnout_rank ON stations (turnout_rank, station);
CREATE INDEX IF NOT EXISTS stations_alarms_rank ON stations (alarms_rank, station);
CREATE INDEX IF NOT EXISTS stations_voting_last ON stations (last_received) WHERE highest_seq > 0 AND phase <> 'closed';
CREATE UNIQUE INDEX IF NOT EXISTS records_hash ON records (hash);
CREATE UNIQUE INDEX IF NOT EXISTS records_leaf ON records (leaf_index);
CREATE INDEX IF NOT EXISTS rejections_station ON rejections (station, id);
"""

# PostgreSQL only: LIKE 'prefix%' uses this index whatever the database's collation (SQLite uses a range instead).
POSTGRES_INDEXES = "CREATE INDEX IF NOT EXISTS stations_station_pattern ON stations (station text_pattern_ops)"

# The sort keys of the overview, kept in the station's row (``ranks``): every sort is (rank, station) ascending,
# so one index serves both the order and the keyset condition ``(rank, station) > (?, ?)``.
RANK_COLUMNS = ("silent_rank", "turnout_rank", "alarms_rank")
LAST = 1e300  # the rank of a station with no value to sort by (never reported; turnout unknown): after all others
BACKFILL_RANKS = (
    "UPDATE stations SET silent_rank = COALESCE(last_received, 1e300), "
    "turnout_rank = CASE WHEN identified IS NULL OR registered IS NULL OR registered = 0 THEN 1e300 "
    "ELSE -(CAST(identified AS DOUBLE PRECISION) / registered) END, alarms_rank = -alarms_open")

TALLY_COLUMNS = ("stations", "reported", "voting", "closed", "with_alarms", "alarms_open", "identified", "ballots",
                 "registered")
COUNT_TALLIES = "SELECT COUNT(*), " + ", ".join(f"COALESCE(SUM({term}), 0)" for term in (
    "CASE WHEN highest_seq > 0 THEN 1 ELSE 0 END", "CASE WHEN highest_seq > 0 AND phase <> 'closed' THEN 1 ELSE 0 END",
    "CASE WHEN phase = 'closed' THEN 1 ELSE 0 END", "CASE WHEN alarms_open > 0 THEN 1 ELSE 0 END",
    "alarms_open", "identified", "ballots", "registered")) + " FROM stations"
SILENT = "highest_seq > 0 AND phase <> 'closed' AND last_received < ?"
SILENT_RECOUNT_SECONDS = 30.0  # the silent / reporting split is recounted at most this often per process

MAX_REJECTIONS = MAX_ROWS  # rows kept in ``rejections``
MAX_REASON = 500  # characters of a rejection's reason and source kept

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
    """Filters of the overview page; ``status`` is one of ``STATUS_FILTERS``, ``sort`` one of ``SORTS``.

    ``after`` (or ``before``) is a page token from an earlier page: the rows strictly after (before) that
    position in the sort order; neither means the first page.
    """

    status: str = "all"
    prefix: str = ""
    sort: str = "station"
    after: str = ""
    before: str = ""
    per_page: int = 100


@dataclass(frozen=True)
class Sort:
    """An overview order: by ``rank`` (a column of ``stations``, ascending) then station id, or by station id."""

    rank: str | None = None

    @property
    def key(self) -> str:
        return f"({self.rank}, station)" if self.rank else "station"

    @property
    def placeholder(self) -> str:
        return "(?, ?)" if self.rank else "?"

    def order(self, backward: bool) -> str:
        way = " DESC" if backward else ""
        return f"{self.rank}{way}, station{way}" if self.rank else f"station{way}"


STATUS_FILTERS = ("all", "reporting", "silent", "not_reported", "closed", "alarms")
SORTS = {"station": Sort(), "silent": Sort("silent_rank"), "alarms": Sort("alarms_rank"),
         "turnout": Sort("turnout_rank")}
MAX_TOKEN = 512


class PageTokenError(ValueError):
    """A page token that this receiver did not make, was altered, or belongs to another sort."""


@dataclass(frozen=True)
class Position:
    """Where a page starts or ends: the sort, the row's rank (None when sorting by station) and its station id."""

    sort: str
    rank: float | int | None
    station: str

    @property
    def values(self) -> list[Any]:
        return [self.station] if self.rank is None else [self.rank, self.station]


class PageTokens:
    """Opaque page tokens: a position, authenticated with HMAC-SHA256 under a key kept in the database.

    Every receiver process sharing the database shares the key, so a link made by one works on another.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"pollbox overview page\0" + payload, hashlib.sha256).digest()[:16]

    def make(self, position: Position) -> str:
        payload = json.dumps([position.sort, position.rank, position.station], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, token: str, sort: str) -> Position:
        """The position in ``token``; ``PageTokenError`` (one sentence) when it is malformed, altered or foreign."""
        if len(token) > MAX_TOKEN or token.count(".") != 1:
            raise PageTokenError("the page link is malformed (not a page token of this receiver)")
        body, mac = token.split(".")
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
            raise PageTokenError("the page link was altered or made by another receiver database")
        try:
            found_sort, rank, station = json.loads(payload)
        except (ValueError, TypeError):
            raise PageTokenError("the page link is malformed (not a page token of this receiver)") from None
        if found_sort != sort:
            raise PageTokenError(f"the page link belongs to the sort by {found_sort}, not by {sort}")
        return Position(sort, rank, station)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii() or not all(c.isalnum() or c in "-_" for c in text):
        raise PageTokenError("the page link is malformed (not a page token of this receiver)")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        data = None
    if data is None or _b64(data) != text:  # one spelling only: unused low bits must be zero
        raise PageTokenError("the page link is malformed (not a page token of this receiver)")
    return data


@dataclass(frozen=True)
class OverviewPage:
    """One page of the overview and the tokens of its neighbours (None when there is nothing that way)."""

    rows: list[StationStatus]
    next: str | None = None
    previous: str | None = None


@dataclass(frozen=True)
class Summary:
    """The overview's header counts.

    Everything but ``silent`` and ``reporting`` is kept exact in ``station_counts``, in the same transaction
    as the stations themselves. Silence depends on the clock: those two are counted (through an index of
    voting stations) at most every ``SILENT_RECOUNT_SECONDS``, as of ``silent_as_of``.
    """

    stations: int
    reported: int
    voting: int
    closed: int
    with_alarms: int
    alarms_open: int
    identified: int
    ballots: int
    registered: int
    silent: int
    reporting: int
    silent_as_of: float

    @property
    def not_reported(self) -> int:
        return self.stations - self.reported

    def matching(self, status: str) -> int:
        """How many stations a status filter matches (``silent`` and ``reporting`` as of ``silent_as_of``)."""
        return {"all": self.stations, "reporting": self.reporting, "silent": self.silent,
                "not_reported": self.not_reported, "closed": self.closed, "alarms": self.with_alarms}[status]


def tally(status: StationStatus | None) -> tuple[int, ...]:
    """What one station adds to each of ``TALLY_COLUMNS`` (nothing when it does not exist)."""
    if status is None:
        return (0,) * len(TALLY_COLUMNS)
    reported, closed = status.highest_seq > 0, status.phase == "closed"
    return (1, int(reported), int(reported and not closed), int(closed), int(status.alarms_open > 0),
            status.alarms_open, status.identified or 0, status.ballots or 0, status.registered or 0)


def ranks(status: StationStatus) -> tuple[float, float, int]:
    """The station's sort keys (``RANK_COLUMNS``): all ascending, unknown values last."""
    turnout = status.turnout
    return (status.last_received if status.last_received is not None else LAST,
            -turnout if turnout is not None else LAST, -status.alarms_open)


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[low, high) holding exactly the strings starting with ``prefix`` in code point order (high None: no bound)."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return prefix, None
    following = ord(stem[-1]) + 1
    return prefix, stem[:-1] + chr(0xE000 if 0xD800 <= following <= 0xDFFF else following)


class Storage:
    """All reads and writes of the receiver; safe to share between threads (one connection per thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = POSTGRES if is_postgres(url) else SQLITE
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._silent: tuple[float, int, int] | None = None  # (counted at, silent, voting)
        self.max_rejections = MAX_REJECTIONS
        self.tokens = PageTokens(self._create_schema())

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

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run ``sql`` once per row; returns the number of rows it changed in all."""
        if not rows:
            return 0
        conn = self.conn()
        try:
            cursor = conn.cursor()
            cursor.executemany(self.dialect.sql(sql), [tuple(r) for r in rows])
            return int(cursor.rowcount)
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

    def _create_schema(self) -> bytes:
        """Create or upgrade the schema; returns the key of the overview's page tokens."""
        fmt = {"zero": ZERO_HASH, **self.dialect.types}
        with self._transaction():
            if self.dialect is POSTGRES:
                self._q("SELECT pg_advisory_xact_lock(6962)")  # concurrent first starts create the schema once
            self._statements(TABLES.format(**fmt))
            self._add_rank_columns()
            if "evidence" not in self._columns("stations"):
                self._q("ALTER TABLE stations ADD COLUMN evidence INTEGER NOT NULL DEFAULT 0")
            self._create_indexes(INDEXES + (";" + POSTGRES_INDEXES if self.dialect is POSTGRES else ""))
            self._q("INSERT INTO tree (id, size, root, frontier) VALUES (1, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (merkle.EMPTY_ROOT, b""))
            if self._q("SELECT id FROM station_counts WHERE id = 1").fetchone() is None:
                self._q(f"INSERT INTO station_counts (id, {', '.join(TALLY_COLUMNS)}) "
                        f"SELECT 1, {COUNT_TALLIES.removeprefix('SELECT ')} WHERE 1 = 1")
            self._q("INSERT INTO meta (key, value) VALUES ('page_token_key', ?) ON CONFLICT (key) DO NOTHING",
                    (secrets.token_hex(32),))
            return bytes.fromhex(self._q("SELECT value FROM meta WHERE key = 'page_token_key'").fetchone()[0])

    def _statements(self, ddl: str) -> None:
        for statement in ddl.split(";"):
            if statement.strip():
                self._q(statement)

    def _create_indexes(self, ddl: str) -> None:
        """Create the missing indexes only: ``CREATE INDEX IF NOT EXISTS`` would still lock the table on PostgreSQL,
        and a receiver starting beside running ones would then deadlock with their ingest."""
        if self.dialect is POSTGRES:
            sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
        existing = {str(row[0]) for row in self._q(sql).fetchall()}
        for statement in ddl.split(";"):
            name = statement.partition("IF NOT EXISTS ")[2].split(" ", 1)[0]
            if statement.strip() and name not in existing:
                self._q(statement)

    def _add_rank_columns(self) -> None:
        """Upgrade a database of an earlier version: add the sort keys and compute them from the stored status."""
        missing = [c for c in RANK_COLUMNS if c not in self._columns("stations")]
        types = {"silent_rank": "{float} NOT NULL DEFAULT 1e300", "turnout_rank": "{float} NOT NULL DEFAULT 1e300",
                 "alarms_rank": "INTEGER NOT NULL DEFAULT 0"}
        for column in missing:
            self._q(f"ALTER TABLE stations ADD COLUMN {column} {types[column].format(**self.dialect.types)}")
        if missing:
            log.info("stations: added the overview's sort keys %s and computed them", ", ".join(missing))
            self._q(BACKFILL_RANKS)

    def _columns(self, table: str) -> set[str]:
        if self.dialect is POSTGRES:
            rows = self._q("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                           "AND table_schema = current_schema()", (table,)).fetchall()
            return {str(r[0]) for r in rows}
        return {str(r[1]) for r in self._q(f"PRAGMA table_info({table})").fetchall()}

    # Ingest -------------------------------------------------------------------

    def store(self, station: str, records: Sequence[SignedRecord], now: float, source: str) -> Plan:
        """Sequence and store one station's authenticated records in one transaction."""
        if not records:
            return Plan()
        with self._transaction():
            before, created = self._locked_status(station)
            plan = sequence(records, before.highest_seq, before.last_hash,
                            self._stored_hashes(station, records, before.highest_seq))
            after = before
            if plan.new:
                self._append(plan.new, now)
                after = self._apply_alarms(fold(before, plan.new, now),
                                           alarm_changes(plan.new) + evidence_alarms(before, plan.new))
                self._save_status(after)
            if plan.conflict is not None:
                self._q("INSERT INTO conflicts (station, seq, hash, line, received_at, source) VALUES (?,?,?,?,?,?)",
                        (station, plan.conflict.seq, plan.conflict.hash, plan.conflict.line(), now, source))
            self._count(tally(after), tally(None if created else before))
        return plan

    def _locked_status(self, station: str) -> tuple[StationStatus, bool]:
        """The station's row, locked until the transaction ends, and whether it was created just now."""
        sql = f"SELECT {', '.join(STATUS_COLUMNS)} FROM stations WHERE station = ?{self.dialect.for_update}"
        row = self._q(sql, (station,)).fetchone()
        if row is not None:
            return StationStatus(*row), False
        created = self._q("INSERT INTO stations (station) VALUES (?) ON CONFLICT (station) DO NOTHING",
                          (station,)).rowcount == 1
        return StationStatus(*self._q(sql, (station,)).fetchone()), created

    def _count(self, now: tuple[int, ...], was: tuple[int, ...]) -> None:
        """Move ``station_counts`` by one station's change; always the last lock a transaction takes."""
        delta = [a - b for a, b in zip(now, was, strict=True)]
        if any(delta):
            self._q(f"UPDATE station_counts SET {', '.join(f'{c} = {c} + ?' for c in TALLY_COLUMNS)} WHERE id = 1",
                    delta)

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
        names = [*STATUS_COLUMNS[1:], *RANK_COLUMNS]
        self._q(f"UPDATE stations SET {', '.join(f'{n} = ?' for n in names)} WHERE station = ?",
                [*(getattr(status, n) for n in STATUS_COLUMNS[1:]), *ranks(status), status.station])

    def _apply_alarms(self, status: StationStatus, changes: Sequence[AlarmChange]) -> StationStatus:
        """Record the alarms raised and acknowledged; returns ``status`` with its count of open alarms."""
        station = status.station
        for change in changes:
            if change.acknowledged:
                self._q("UPDATE alarms SET acknowledged_at = ? WHERE station = ? AND alarm = ? "
                        "AND acknowledged_at IS NULL", (change.at, station, change.alarm))
            else:
                self._q("INSERT INTO alarms (station, alarm, kind, detail, raised_at) VALUES (?,?,?,?,?) "
                        "ON CONFLICT (station, alarm) DO NOTHING",
                        (station, change.alarm, change.kind, change.detail, change.at))
        if not changes:
            return status
        row = self._q("SELECT COUNT(*) FROM alarms WHERE station = ? AND acknowledged_at IS NULL", (station,))
        return replace(status, alarms_open=int(row.fetchone()[0]))

    def log_rejection(self, rejection: Rejection, now: float, source: str) -> None:
        """Write one rejection down; the table keeps the latest ``MAX_REJECTIONS`` rows (older ones are dropped)."""
        with self._transaction():
            row = self._q("INSERT INTO rejections (received_at, station, seq, key_id, code, reason, source) "
                          "VALUES (?,?,?,?,?,?,?) RETURNING id",
                          (now, rejection.station, rejection.seq, rejection.key, rejection.code,
                           rejection.reason[:MAX_REASON], source[:MAX_REASON])).fetchone()
            self._q("DELETE FROM rejections WHERE id <= ?", (int(row[0]) - self.max_rejections,))

    def sync_enrolled(self, stations: Sequence[str], digest: str) -> None:
        """Mark the registry's stations as enrolled (once per registry version), so silent ones show."""
        with self._transaction():
            row = self._q("SELECT value FROM meta WHERE key = 'registry_digest'").fetchone()
            if row is not None and row[0] == digest:
                return
            self._q("UPDATE stations SET enrolled = 0")
            created = self._many("INSERT INTO stations (station, enrolled) VALUES (?, 1) "
                                 "ON CONFLICT (station) DO NOTHING", [(s,) for s in stations])
            self._many("UPDATE stations SET enrolled = 1 WHERE station = ? AND enrolled = 0", [(s,) for s in stations])
            self._count(tuple(created * n for n in tally(StationStatus(""))), tally(None))  # new rows: not reported
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

    def leaves_between(self, start: int, end: int) -> list[tuple[int, str]]:
        """(leaf index, line) of the leaves ``start`` to ``end - 1``, in leaf order: one range of the leaf index."""
        rows = self._q("SELECT leaf_index, line FROM records WHERE leaf_index >= ? AND leaf_index < ? "
                       "ORDER BY leaf_index", (start, end)).fetchall()
        return [(int(i), str(line)) for i, line in rows]

    def status(self, station: str) -> StationStatus | None:
        row = self._q(f"SELECT {', '.join(STATUS_COLUMNS)} FROM stations WHERE station = ?", (station,)).fetchone()
        return StationStatus(*row) if row else None

    def overview(self, query: OverviewQuery, silent_before: float) -> OverviewPage:
        """One page of stations matching ``query``, in its sort order, from its position on.

        Keyset pagination: the page is the next ``per_page`` rows strictly after (before) the token's position,
        one index range however deep the page, and no row appears twice on a page. ``PageTokenError`` for a
        token this receiver did not make for this sort.
        """
        sort, position, backward = self._where_from(query)
        rows = list(self._q(*self._page_sql(query, silent_before, sort, position, backward)).fetchall())
        more = len(rows) > query.per_page
        rows = rows[:query.per_page][::-1] if backward else rows[:query.per_page]
        statuses = [StationStatus(*row[:len(STATUS_COLUMNS)]) for row in rows]
        first = self._position(query.sort, sort, rows[0]) if rows else position
        last = self._position(query.sort, sort, rows[-1]) if rows else position
        has_next = more if not backward else last is not None and self._beyond(query, silent_before, sort, last, False)
        has_previous = more if backward else first is not None and position is not None and self._beyond(
            query, silent_before, sort, first, True)
        return OverviewPage(statuses, self.tokens.make(last) if has_next and last else None,
                            self.tokens.make(first) if has_previous and first else None)

    def _where_from(self, query: OverviewQuery) -> tuple[Sort, Position | None, bool]:
        """The query's sort, the position its token names (None: the first page) and whether it pages backward."""
        token = query.after or query.before
        position = self.tokens.read(token, query.sort) if token else None
        return SORTS.get(query.sort, SORTS["station"]), position, bool(query.before) and not query.after

    def _page_sql(self, query: OverviewQuery, silent_before: float, sort: Sort, position: Position | None,
                  backward: bool) -> tuple[str, list[Any]]:
        where, params = self._where(query, silent_before, page=True)
        if position is not None:
            where += f" AND {sort.key} {'<' if backward else '>'} {sort.placeholder}"
            params += position.values
        return (f"SELECT {', '.join(STATUS_COLUMNS)}, {sort.rank or 'NULL'} FROM stations WHERE {where} "
                f"ORDER BY {sort.order(backward)} LIMIT ?", [*params, query.per_page + 1])

    def overview_plan(self, query: OverviewQuery, silent_before: float) -> str:
        """The database's plan for one overview page (``EXPLAIN``), to check that it is an index range."""
        sql, params = self._page_sql(query, silent_before, *self._where_from(query))
        explain = "EXPLAIN QUERY PLAN " if self.dialect is SQLITE else "EXPLAIN "
        return "\n".join(" ".join(str(c) for c in row) for row in self._q(explain + sql, params).fetchall())

    @staticmethod
    def _position(name: str, sort: Sort, row: Sequence[Any]) -> Position:
        return Position(name, row[-1] if sort.rank else None, str(row[0]))

    def _beyond(self, query: OverviewQuery, silent_before: float, sort: Sort, position: Position,
                backward: bool) -> bool:
        """Whether any matching station lies after (before) ``position``: one index probe."""
        where, params = self._where(query, silent_before, page=True)
        sql = (f"SELECT 1 FROM stations WHERE {where} AND {sort.key} {'<' if backward else '>'} {sort.placeholder} "
               f"ORDER BY {sort.order(backward)} LIMIT 1")
        return self._q(sql, [*params, *position.values]).fetchone() is not None

    def _where(self, query: OverviewQuery, silent_before: float, page: bool = False) -> tuple[str, list[Any]]:
        """The filter's condition; for a page on SQLite, ``+last_received`` keeps the planner on the sort's index
        (with statistics it would otherwise take the voting stations' index and sort every silent one)."""
        clauses = {"all": "1 = 1", "not_reported": "highest_seq = 0", "closed": "phase = 'closed'",
                   "alarms": "alarms_open > 0", "silent": SILENT,
                   "reporting": "highest_seq > 0 AND phase <> 'closed' AND last_received >= ?"}
        clause = clauses.get(query.status, "1 = 1")
        if page and self.dialect is SQLITE:
            clause = clause.replace("last_received", "+last_received")
        params: list[Any] = [silent_before] if "?" in clause else []
        if query.prefix:
            prefix_clause, prefix_params = self._prefix(query.prefix)
            clause, params = f"{clause} AND {prefix_clause}", params + prefix_params
        return clause, params

    def _prefix(self, prefix: str) -> tuple[str, list[Any]]:
        """Station ids starting with ``prefix`` (case-sensitive), as an index range on both databases."""
        if self.dialect is POSTGRES:  # LIKE 'p%' becomes a range of the text_pattern_ops index
            return "station LIKE ? ESCAPE '!'", [_like_prefix(prefix)]
        low, high = prefix_range(prefix)  # SQLite compares station ids by code point: a range of the primary key
        return ("station >= ?", [low]) if high is None else ("station >= ? AND station < ?", [low, high])

    def count_matching(self, query: OverviewQuery, silent_before: float, cap: int) -> int | None:
        """Stations matching ``query`` (prefix included), reading at most ``cap`` rows; None when there are more.

        The status filter is applied to the rows of the prefix's range only, so the work is bounded by ``cap``.
        """
        prefix_clause, params = self._prefix(query.prefix) if query.prefix else ("1 = 1", [])
        status_clause, status_params = self._where(replace(query, prefix=""), silent_before)
        row = self._q(f"SELECT COUNT(*), SUM(CASE WHEN {status_clause} THEN 1 ELSE 0 END) FROM "
                      f"(SELECT * FROM stations WHERE {prefix_clause} LIMIT ?) AS within",
                      [*status_params, *params, cap + 1]).fetchone()
        return None if int(row[0]) > cap else int(row[1] or 0)

    def tallies(self) -> dict[str, int]:
        """The counts kept in ``station_counts`` (exact; no scan)."""
        row = self._q(f"SELECT {', '.join(TALLY_COLUMNS)} FROM station_counts WHERE id = 1").fetchone()
        return dict(zip(TALLY_COLUMNS, (int(v) for v in row), strict=True))

    def counted_tallies(self) -> dict[str, int]:
        """The same counts computed from every row of ``stations`` (a full scan: for checks and audits)."""
        row = self._q(COUNT_TALLIES).fetchone()
        return dict(zip(TALLY_COLUMNS, (int(v or 0) for v in row), strict=True))

    def recount(self) -> None:
        """Recompute ``station_counts`` from ``stations``, exact even while other processes ingest.

        The counts row is locked first: a writer that changed a station but has not counted it yet is still in
        flight, so the count below does not see it and the writer adds its change after this commits.
        """
        with self._transaction():
            self._q(f"SELECT id FROM station_counts WHERE id = 1{self.dialect.for_update}")
            counted = self.counted_tallies()
            self._q(f"UPDATE station_counts SET {', '.join(f'{c} = ?' for c in TALLY_COLUMNS)} WHERE id = 1",
                    [counted[c] for c in TALLY_COLUMNS])

    def summary(self, silent_before: float, now: float) -> Summary:
        """Counts for the overview's header: exact ones from ``station_counts``, silence recounted now and then."""
        counts = self.tallies()
        silent_at, silent, voting = self._silent_split(silent_before, now)
        return Summary(**counts, silent=silent, reporting=max(0, voting - silent), silent_as_of=silent_at)

    def count_silent(self, silent_before: float) -> tuple[int, int]:
        """(silent stations, voting stations) now, in one snapshot: an index range of the voting stations only."""
        row = self._q(f"SELECT (SELECT COUNT(*) FROM stations WHERE {SILENT}), voting FROM station_counts "
                      "WHERE id = 1", (silent_before,)).fetchone()
        return int(row[0]), int(row[1])

    def _silent_split(self, silent_before: float, now: float) -> tuple[float, int, int]:
        """(counted at, silent stations, voting stations), recounted when older than the limit."""
        with self._lock:
            cached = self._silent
        if cached is not None and 0 <= now - cached[0] < SILENT_RECOUNT_SECONDS:
            return cached
        fresh = (now, *self.count_silent(silent_before))
        with self._lock:
            self._silent = fresh
        return fresh

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
