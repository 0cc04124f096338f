"""The receiver's tables, their indexes, and the in-place upgrade of a database of an earlier version.

Tables:

- ``stations``: one row per station, the projection of its records
  (``receiver/status.py``): highest seq, last hash, phase, counts, open
  alarms, close report, records kept as evidence after the close, the
  overview's sort keys (``ranks``), one index per sort, and ``training`` (1
  for a training station: never counted; a partial index lists them);
- ``station_counts``: one row of counts over all stations (``tallies.py``);
- ``records``: every accepted signed line, by (station, unit, seq), with its hash,
  type, time, signing key id, signed ``training`` flag and Merkle leaf index (a key's records are a
  range of the station's primary key filtered on the key id column: a station
  has hundreds of records, and one more index would slow every insert). ``unit``
  is '' for the station's main chain (the only one of a one-unit station) and
  the unit id for every other unit of a station of several units (docs/units.md);
- ``unit_chains``: the same projection as ``stations`` for each chain of a unit
  other than the main one (highest seq, last hash, phase, its own counts). It
  moves no counts: the station's totals are its main unit's (combined at the close);
- ``chain_keys``: the one chain (station, unit) each key signs (``chain_keys.py``);
- ``merkle_nodes`` and ``tree``: the complete subtrees of the public log
  (``merkle_log.py``) and its size and root;
- ``alarms`` (by station, unit and alarm number: numbers are per journal, and
  every unit's alarms are the station's), ``conflicts`` (evidence: a second signed record for a stored
  seq, never overwriting the first) and ``rejections`` (the latest
  ``MAX_REJECTIONS``);
- ``revocations``: every key revocation seen (``revocations.py``);
- ``meta``: the key of the overview's page tokens, the registry's digest.

Upgrades happen in place when a receiver opens the database, under an
advisory lock on PostgreSQL so concurrent first starts do it once: missing
columns are added and filled from what is stored (``UPGRADES``), then the
missing indexes are created. Only missing indexes: ``CREATE INDEX IF NOT
EXISTS`` would lock the table on PostgreSQL even when the index exists.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from protocol import merkle
from protocol.chain import ZERO_HASH
from protocol.envelope import parse_line
from protocol.training import TRAINING_PREFIX
from receiver.status import AlarmChange, StationStatus, alarm_changes
from receiver.store.db import POSTGRES, SQLITE, Database
from receiver.store.tallies import COUNT_TALLIES, TALLY_COLUMNS

log = logging.getLogger("pollbox.receiver.storage")

STATUS_COLUMNS = [f.name for f in fields(StationStatus)]  # the ``stations`` columns a ``StationStatus`` holds
UNIT_COLUMNS = [*STATUS_COLUMNS, "unit"]  # the ``unit_chains`` columns: a StationStatus of the unit's chain, its unit

# ``unit``: '' for the station's main chain (a one-unit station's only unit), else the unit id its records sign.
RECORDS = """(
    station TEXT NOT NULL, seq {bigint} NOT NULL, hash TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL,
    received_at {float} NOT NULL, leaf_index {bigint} NOT NULL, line TEXT NOT NULL, key_id TEXT,
    training INTEGER NOT NULL DEFAULT 0, unit TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, unit, seq))"""
# ``unit``: the journal that numbered the alarm ('' for the main unit's): alarm numbers are per journal.
ALARMS = """(
    station TEXT NOT NULL, alarm INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    raised_at TEXT NOT NULL, acknowledged_at TEXT, unit TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, unit, alarm))"""
ALARM_COLUMNS = ("station", "alarm", "kind", "detail", "raised_at", "acknowledged_at")
"""The columns of ``alarms`` before every unit's alarms were the station's (then keyed by (station, alarm))."""
RECORD_COLUMNS = ("station", "seq", "hash", "type", "at", "received_at", "leaf_index", "line", "key_id", "training")
"""The columns of ``records`` before units had chains of their own (then keyed by (station, seq))."""

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    station TEXT PRIMARY KEY, enrolled INTEGER NOT NULL DEFAULT 0,
    highest_seq {bigint} NOT NULL DEFAULT 0, last_hash TEXT NOT NULL DEFAULT '{zero}',
    phase TEXT NOT NULL DEFAULT 'not_opened', first_received {float}, last_received {float},
    last_at TEXT, opened_at TEXT, closed_at TEXT, identified {bigint}, ballots {bigint}, registered {bigint},
    alarms_open INTEGER NOT NULL DEFAULT 0, close_report TEXT, evidence INTEGER NOT NULL DEFAULT 0,
    silent_rank {float} NOT NULL DEFAULT 1e300, turnout_rank {float} NOT NULL DEFAULT 1e300,
    alarms_rank INTEGER NOT NULL DEFAULT 0, training INTEGER NOT NULL DEFAULT 0, units_report TEXT);
CREATE TABLE IF NOT EXISTS station_counts (
    id INTEGER PRIMARY KEY, stations {bigint} NOT NULL, reported {bigint} NOT NULL, voting {bigint} NOT NULL,
    closed {bigint} NOT NULL, with_alarms {bigint} NOT NULL, alarms_open {bigint} NOT NULL,
    identified {bigint} NOT NULL, ballots {bigint} NOT NULL, registered {bigint} NOT NULL);
CREATE TABLE IF NOT EXISTS records {records};
CREATE TABLE IF NOT EXISTS unit_chains (
    station TEXT NOT NULL, unit TEXT NOT NULL,
    highest_seq {bigint} NOT NULL DEFAULT 0, last_hash TEXT NOT NULL DEFAULT '{zero}',
    phase TEXT NOT NULL DEFAULT 'not_opened', first_received {float}, last_received {float},
    last_at TEXT, opened_at TEXT, closed_at TEXT, identified {bigint}, ballots {bigint}, registered {bigint},
    alarms_open INTEGER NOT NULL DEFAULT 0, close_report TEXT, evidence INTEGER NOT NULL DEFAULT 0,
    training INTEGER NOT NULL DEFAULT 0, units_report TEXT, PRIMARY KEY (station, unit));
CREATE TABLE IF NOT EXISTS chain_keys (key_id TEXT PRIMARY KEY, station TEXT NOT NULL, unit TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS merkle_nodes (
    level INTEGER NOT NULL, idx {bigint} NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY, size {bigint} NOT NULL, root {blob} NOT NULL, frontier {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS alarms {alarms};
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

# Created after the tables (and after adding the columns of later versions to an earlier database).
INDEXES = """
CREATE INDEX IF NOT EXISTS stations_last_received ON stations (last_received);
CREATE INDEX IF NOT EXISTS stations_silent_rank ON stations (silent_rank, station);
CREATE INDEX IF NOT EXISTS stations_turnout_rank ON stations (turnout_rank, station);
CREATE INDEX IF NOT EXISTS stations_alarms_rank ON stations (alarms_rank, station);
CREATE INDEX IF NOT EXISTS stations_voting_last ON stations (last_received) WHERE highest_seq > 0 AND phase <> 'closed';
CREATE UNIQUE INDEX IF NOT EXISTS records_hash ON records (hash);
CREATE UNIQUE INDEX IF NOT EXISTS records_leaf ON records (leaf_index);
CREATE INDEX IF NOT EXISTS rejections_station ON rejections (station, id);
CREATE INDEX IF NOT EXISTS stations_training ON stations (station) WHERE training = 1;
"""

# PostgreSQL only: LIKE 'prefix%' uses this index whatever the database's collation (SQLite uses a range instead).
POSTGRES_INDEXES = "CREATE INDEX IF NOT EXISTS stations_station_pattern ON stations (station text_pattern_ops)"

# The sort keys of the overview, kept in the station's row: every sort is (rank, station) ascending,
# so one index serves both the order and the keyset condition ``(rank, station) > (?, ?)``.
RANK_COLUMNS = ("silent_rank", "turnout_rank", "alarms_rank")
BACKFILL_RANKS = (
    "UPDATE stations SET silent_rank = COALESCE(last_received, 1e300), "
    "turnout_rank = CASE WHEN identified IS NULL OR registered IS NULL OR registered = 0 THEN 1e300 "
    "ELSE -(CAST(identified AS DOUBLE PRECISION) / registered) END, alarms_rank = -alarms_open")
# A record's line is 86 characters of signature, a space, then the record's JSON (from character 88).
BACKFILL_KEY_ID = {
    SQLITE.name: "UPDATE records SET key_id = json_extract(substr(line, 88), '$.key') WHERE key_id IS NULL",
    POSTGRES.name: "UPDATE records SET key_id = (substr(line, 88)::json ->> 'key') WHERE key_id IS NULL",
}

# Earlier receivers had no training flag; a station whose id has the training prefix is a training station now.
BACKFILL_TRAINING = (f"UPDATE stations SET training = 1 "  # substr, not LIKE: '%' is psycopg's placeholder sign
                     f"WHERE substr(station, 1, {len(TRAINING_PREFIX)}) = '{TRAINING_PREFIX}'")


def record_alarm_changes(q: Callable[..., Any], station: str, unit: str, changes: Sequence[AlarmChange]) -> None:
    """Write the alarms raised and acknowledged in ``unit``'s journal into ``alarms`` through the query
    function ``q`` (a store's ``_q``); used by ingest and by the upgrade that keys alarms by unit."""
    for change in changes:
        if change.acknowledged:
            q("UPDATE alarms SET acknowledged_at = ? WHERE station = ? AND unit = ? AND alarm = ? "
              "AND acknowledged_at IS NULL", (change.at, station, unit, change.alarm))
        else:
            q("INSERT INTO alarms (station, unit, alarm, kind, detail, raised_at) VALUES (?,?,?,?,?,?) "
              "ON CONFLICT (station, unit, alarm) DO NOTHING",
              (station, unit, change.alarm, change.kind, change.detail, change.at))


@dataclass(frozen=True)
class Upgrade:
    """Columns a later version added to ``table``, and how to fill them from what an earlier one stored."""

    table: str
    columns: dict[str, str]
    backfill: dict[str, str] | str | None = None
    why: str = ""
    recount: bool = False  # the backfill may change what ``station_counts`` holds: count it again once


UPGRADES = (
    Upgrade("stations", {"silent_rank": "{float} NOT NULL DEFAULT 1e300",
                         "turnout_rank": "{float} NOT NULL DEFAULT 1e300",
                         "alarms_rank": "INTEGER NOT NULL DEFAULT 0"}, BACKFILL_RANKS, "the overview's sort keys"),
    Upgrade("stations", {"evidence": "INTEGER NOT NULL DEFAULT 0"}, None,
            "the count of records kept as evidence after the close (earlier versions did not tell them apart)"),
    Upgrade("records", {"key_id": "TEXT"}, BACKFILL_KEY_ID, "the key id of each record, read from its line"),
    Upgrade("stations", {"training": "INTEGER NOT NULL DEFAULT 0"}, BACKFILL_TRAINING,
            "training stations, kept apart and never counted (their ids start with TRAINING-)", recount=True),
    Upgrade("records", {"training": "INTEGER NOT NULL DEFAULT 0"}, None,
            "the signed training flag of each record (an earlier receiver refused every flagged record)"),
    Upgrade("stations", {"units_report": "TEXT"}, None,
            "the combined totals of a station of several units (none was stored before)"),
)


class Schema(Database):
    """Creates or upgrades the tables; once per process, when the storage opens."""

    def _create_schema(self) -> bytes:
        """Create or upgrade the schema; returns the key of the overview's page tokens."""
        fmt = {"zero": ZERO_HASH, **self.dialect.types}
        fmt["records"] = RECORDS.format(**fmt)
        fmt["alarms"] = ALARMS
        with self._transaction():
            if self.dialect is POSTGRES:
                self._q("SELECT pg_advisory_xact_lock(6962)")  # concurrent first starts create the schema once
            self._statements(TABLES.format(**fmt))
            recount = [upgrade.recount for upgrade in UPGRADES if self._upgrade(upgrade)]
            self._upgrade_record_units(fmt)
            recount.append(self._upgrade_alarm_units(fmt))
            self._create_indexes(INDEXES + (";" + POSTGRES_INDEXES if self.dialect is POSTGRES else ""))
            self._q("INSERT INTO tree (id, size, root, frontier) VALUES (1, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (merkle.EMPTY_ROOT, b""))
            if self._q("SELECT id FROM station_counts WHERE id = 1").fetchone() is None:
                self._q(f"INSERT INTO station_counts (id, {', '.join(TALLY_COLUMNS)}) "
                        f"SELECT 1, {COUNT_TALLIES.removeprefix('SELECT ')} AND 1 = 1")
            elif any(recount):
                counted = self._q(COUNT_TALLIES).fetchone()
                self._q(f"UPDATE station_counts SET {', '.join(f'{c} = ?' for c in TALLY_COLUMNS)} WHERE id = 1",
                        [int(v or 0) for v in counted])
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

    def _upgrade_record_units(self, fmt: dict[str, str]) -> None:
        """Key ``records`` by (station, unit, seq) in a database that keyed them by (station, seq).

        Every stored record gets the unit '' (the station's main chain: before units had chains of their own,
        every station's records were one chain). PostgreSQL changes the primary key in place; SQLite cannot,
        so it copies the table into one of the new shape, and the indexes are made again after the upgrades.
        """
        if "unit" in self._columns("records"):
            return
        if self.dialect is POSTGRES:
            self._q("ALTER TABLE records ADD COLUMN unit TEXT NOT NULL DEFAULT ''")
            self._q("ALTER TABLE records DROP CONSTRAINT records_pkey")
            self._q("ALTER TABLE records ADD PRIMARY KEY (station, unit, seq)")
        else:
            columns = ", ".join(RECORD_COLUMNS)
            self._q(f"CREATE TABLE records_by_unit {fmt['records']}")
            self._q(f"INSERT INTO records_by_unit ({columns}, unit) SELECT {columns}, '' FROM records")
            self._q("DROP TABLE records")
            self._q("ALTER TABLE records_by_unit RENAME TO records")
        self._q("INSERT INTO chain_keys (key_id, station, unit) SELECT DISTINCT key_id, station, unit FROM records "
                "WHERE key_id IS NOT NULL ON CONFLICT (key_id) DO NOTHING")
        log.info("records: keyed by (station, unit, seq); every stored record is its station's main chain's")

    def _upgrade_alarm_units(self, fmt: dict[str, str]) -> bool:
        """Key ``alarms`` by (station, unit, alarm) in a database that keyed them by (station, alarm); whether it did.

        A database of that version counted only each station's main unit: its stations' counts and alarms are
        made the station's combined ones here, once. Every stored alarm is its main unit's (unit ''); the other
        units' alarms are read from their stored records; the station's ``identified`` and ``ballots`` get
        the other units' own counts added (not once the close reconciled them); ``alarms_open`` and the ranks
        are counted again, and the caller recounts ``station_counts``.
        """
        if "unit" in self._columns("alarms"):
            return False
        if self.dialect is POSTGRES:
            self._q("ALTER TABLE alarms ADD COLUMN unit TEXT NOT NULL DEFAULT ''")
            self._q("ALTER TABLE alarms DROP CONSTRAINT alarms_pkey")
            self._q("ALTER TABLE alarms ADD PRIMARY KEY (station, unit, alarm)")
        else:
            columns = ", ".join(ALARM_COLUMNS)
            self._q(f"CREATE TABLE alarms_by_unit {fmt['alarms']}")
            self._q(f"INSERT INTO alarms_by_unit ({columns}, unit) SELECT {columns}, '' FROM alarms")
            self._q("DROP TABLE alarms")
            self._q("ALTER TABLE alarms_by_unit RENAME TO alarms")
        rows = self._q("SELECT station, unit, line FROM records WHERE unit <> '' AND type IN "
                       "('alarm_raised', 'alarm_acknowledged') ORDER BY station, unit, seq").fetchall()
        for station, unit, line in rows:
            record_alarm_changes(self._q, station, unit, alarm_changes([parse_line(str(line))]))
        for name in ("identified", "ballots"):
            self._q(f"UPDATE stations SET {name} = COALESCE({name}, 0) + (SELECT SUM(u.{name}) FROM unit_chains u "
                    f"WHERE u.station = stations.station) WHERE NOT (phase = 'closed' AND units_report IS NOT NULL) "
                    f"AND EXISTS (SELECT 1 FROM unit_chains u WHERE u.station = stations.station "
                    f"AND u.{name} IS NOT NULL)")
        self._q("UPDATE unit_chains SET alarms_open = (SELECT COUNT(*) FROM alarms a WHERE a.station = "
                "unit_chains.station AND a.unit = unit_chains.unit AND a.acknowledged_at IS NULL)")
        self._q("UPDATE stations SET alarms_open = (SELECT COUNT(*) FROM alarms a WHERE a.station = stations.station "
                "AND a.acknowledged_at IS NULL) WHERE station IN (SELECT station FROM unit_chains)")
        self._q(BACKFILL_RANKS + " WHERE station IN (SELECT station FROM unit_chains)")
        log.info("alarms: keyed by (station, unit, alarm); stations of several units count every unit's alarms "
                 "and, during the day, every unit's identified voters and ballots")
        return bool(rows) or self._q("SELECT 1 FROM unit_chains LIMIT 1").fetchone() is not None

    def _upgrade(self, upgrade: Upgrade) -> bool:
        """Add the upgrade's missing columns to a database of an earlier version and fill them; whether it did."""
        present = self._columns(upgrade.table)
        missing = [c for c in upgrade.columns if c not in present]
        for column in missing:
            kind = upgrade.columns[column].format(**self.dialect.types)
            self._q(f"ALTER TABLE {upgrade.table} ADD COLUMN {column} {kind}")
        if not missing:
            return False
        log.info("%s: added %s (%s)", upgrade.table, ", ".join(missing), upgrade.why)
        backfill = upgrade.backfill
        if isinstance(backfill, dict):
            backfill = backfill[self.dialect.name]
        if backfill:
            self._q(backfill)
        return True
