"""The device registry kept in the database: each verified registry file indexed once, by its SHA-256.

A receiver used to parse, verify and hold the whole registry in memory at
every start: 2.9 s and 155 MB at 100,000 stations, growing with the
country. Now the first receiver that meets a registry file verifies it
(``receiver/registry.py``) and writes its devices here in one transaction,
keyed by the file's SHA-256 (``digest``); every later start, reload or other
process sharing the database finds the digest and reads devices by key or
by station through the primary key and an index, holding none of them.

Tables (created when the storage opens, beside ``schema.py``'s):

- ``registry_documents``: one row per indexed registry file: its digest and
  its device count (and its bytes, in a database indexed before they were
  kept in parts);
- ``registry_document_parts``: the file's exact bytes (served at
  ``/api/v1/registry``) in parts of 1 MiB, written as the file is read;
- ``registry_devices``: one row per device of each indexed file, with its
  revocation as canonical JSON (NULL when the key is in force) and the unit
  and role it was enrolled for (NULL when the file does not say).

A database made before units were enrolled has no ``unit`` and ``role``
columns: they are added in place when the storage opens (NULL on every row
already indexed, which is right: those files could not name units).

Only what was verified is written, so a digest found here is a file that
verified against the CEC key when it was indexed. The ``KEEP`` most recent
files are kept (the one in force and those a process still running may hold);
older ones are deleted when a new one is indexed.
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterable, Iterator
from typing import Any

from protocol.errors import PollboxError
from receiver.store.schema import Schema

TABLES = """
CREATE TABLE IF NOT EXISTS registry_documents (
    digest TEXT PRIMARY KEY, document {blob} NOT NULL, devices {bigint} NOT NULL, indexed_at {float} NOT NULL);
CREATE TABLE IF NOT EXISTS registry_devices (
    digest TEXT NOT NULL, key_id TEXT NOT NULL, station TEXT NOT NULL, serial TEXT NOT NULL,
    public_key TEXT NOT NULL, software TEXT NOT NULL, enrolled_at TEXT NOT NULL, revocation TEXT,
    unit TEXT, role TEXT, PRIMARY KEY (digest, key_id));
CREATE TABLE IF NOT EXISTS registry_document_parts (
    digest TEXT NOT NULL, part INTEGER NOT NULL, bytes {blob} NOT NULL, PRIMARY KEY (digest, part))
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS registry_devices_station ON registry_devices (digest, station);
CREATE INDEX IF NOT EXISTS registry_devices_revoked ON registry_devices (digest, key_id) WHERE revocation IS NOT NULL
"""
DEVICE_COLUMNS = ("key_id", "station", "serial", "public_key", "software", "enrolled_at", "revocation", "unit",
                  "role")
UNIT_COLUMNS = ("unit", "role")
"""The columns added when keys were enrolled for units (a database of an earlier version gets them in place)."""
CHUNK_ROWS = 10_000
"""Device rows written per statement batch while a registry file is indexed."""
PART_BYTES = 1 << 20
"""Bytes of a registry file per row of ``registry_document_parts``."""
KEEP = 3
"""Indexed registry files kept: the newest, and the ones before it that a running process may still hold."""


class DuplicateKey(PollboxError):
    """A streamed registry lists a key twice; its file is then read whole, which says what it refuses (or accepts)."""


class RegistryIndex(Schema):
    """The registry files this database has verified, and their devices by key and by station."""

    def _create_registry_tables(self) -> None:
        with self._transaction():
            if self.dialect.name == "postgresql":
                self._q("SELECT pg_advisory_xact_lock(6963)")
            self._statements(TABLES.format(**self.dialect.types))
            present = self._columns("registry_devices")
            for column in (c for c in UNIT_COLUMNS if c not in present):
                self._q(f"ALTER TABLE registry_devices ADD COLUMN {column} TEXT")
            self._create_indexes(INDEXES)

    def registry_devices_count(self, digest: str) -> int | None:
        """The device count of an indexed registry file; None if this file was never indexed."""
        row = self._q("SELECT devices FROM registry_documents WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else int(row[0])

    def index_registry(self, digest: str, document: bytes | mmap.mmap, devices: Iterable[tuple[Any, ...]],
                       count: int | None, now: float) -> None:
        """Write a verified registry file and its devices (rows in ``DEVICE_COLUMNS`` order) once.

        Two processes meeting the same new file index it once: the second
        waits for the first's transaction and then finds the document row.
        ``devices`` is read in chunks of ``CHUNK_ROWS`` as it is written, so a
        stream of rows (``registry_stream.py``) is never held whole; with
        ``count`` None the rows written are counted, and a key listed twice
        raises ``DuplicateKey`` (the transaction is rolled back). The file's
        bytes (``document``, which may be a read-only map of it) go to
        ``registry_document_parts`` in parts of ``PART_BYTES``, never as one
        more copy in memory.
        """
        with self._transaction():
            if not self._q("INSERT INTO registry_documents (digest, document, devices, indexed_at) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                           (digest, b"", count or 0, now)).rowcount:
                return
            for part, start in enumerate(range(0, len(document), PART_BYTES)):
                self._q("INSERT INTO registry_document_parts (digest, part, bytes) VALUES (?, ?, ?)",
                        (digest, part, document[start:start + PART_BYTES]))
            rows = iter(devices)
            given = written = 0
            while chunk := [(digest, *row) for row in itertools.islice(rows, CHUNK_ROWS)]:
                given += len(chunk)
                written += self._many(f"INSERT INTO registry_devices (digest, {', '.join(DEVICE_COLUMNS)}) "
                                      f"VALUES (?, {', '.join('?' * len(DEVICE_COLUMNS))}) "
                                      + ("ON CONFLICT (digest, key_id) DO NOTHING" if count is None else ""),
                                      chunk)
            if count is None:
                if written != given:
                    raise DuplicateKey(f"{given - written} keys listed more than once")
                self._q("UPDATE registry_documents SET devices = ? WHERE digest = ?", (written, digest))
            old = [str(r[0]) for r in self._q("SELECT digest FROM registry_documents ORDER BY indexed_at DESC, digest "
                                              "LIMIT -1 OFFSET ?" if self.dialect.name == "sqlite" else
                                              "SELECT digest FROM registry_documents ORDER BY indexed_at DESC, digest "
                                              "OFFSET ?", (KEEP,)).fetchall()]
            for stale in old:
                for table in ("registry_devices", "registry_document_parts", "registry_documents"):
                    self._q(f"DELETE FROM {table} WHERE digest = ?", (stale,))

    def registry_document(self, digest: str) -> bytes:
        """The indexed file's bytes (kept whole in its row before they were kept in parts)."""
        row = self._q("SELECT document FROM registry_documents WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            return b""
        parts = self._q("SELECT bytes FROM registry_document_parts WHERE digest = ? ORDER BY part",
                        (digest,)).fetchall()
        return bytes(row[0]) + b"".join(bytes(p[0]) for p in parts)

    def registry_device(self, digest: str, key_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._q(
            f"SELECT {', '.join(DEVICE_COLUMNS)} FROM registry_devices WHERE digest = ? AND key_id = ?",
            (digest, key_id)).fetchone()
        return row

    def registry_devices_of(self, digest: str, station: str) -> list[tuple[Any, ...]]:
        return list(self._q(f"SELECT {', '.join(DEVICE_COLUMNS)} FROM registry_devices "
                            "WHERE digest = ? AND station = ? ORDER BY enrolled_at, key_id",
                            (digest, station)).fetchall())

    def registry_revoked(self, digest: str) -> list[tuple[Any, ...]]:
        return list(self._q(f"SELECT {', '.join(DEVICE_COLUMNS)} FROM registry_devices "
                            "WHERE digest = ? AND revocation IS NOT NULL ORDER BY station, key_id",
                            (digest,)).fetchall())

    def registry_stations(self, digest: str) -> Iterator[str]:
        """The stations of an indexed file, in order, read as they are iterated."""
        cursor = self._q("SELECT DISTINCT station FROM registry_devices WHERE digest = ? ORDER BY station",
                         (digest,))
        while rows := cursor.fetchmany(10_000):
            yield from (str(r[0]) for r in rows)

    def registry_all(self, digest: str) -> Iterator[tuple[Any, ...]]:
        cursor = self._q(f"SELECT {', '.join(DEVICE_COLUMNS)} FROM registry_devices WHERE digest = ? "
                         "ORDER BY station, enrolled_at, key_id", (digest,))
        while rows := cursor.fetchmany(10_000):
            yield from rows
