"""The receiver's connection layer: one database, SQLite by default, PostgreSQL when given a URL.

``Database`` keeps one connection per thread (SQLite in WAL mode with
``synchronous=FULL``; PostgreSQL in autocommit, transactions explicit), turns
every driver error into ``StorageError`` (the API answers 503, units retry),
and runs a transaction: SQLite takes the write lock up front (``BEGIN
IMMEDIATE``), PostgreSQL locks rows as the subjects ask (``FOR UPDATE``).
``Dialect`` holds what differs: placeholders, column types, row locks.

The subjects of the database are mixins over this class, each in its own
module (``schema``, ``ingest``, ``merkle_log``, ``overview``, ``tallies``,
``revocations``); ``receiver/storage.py`` joins them into ``Storage``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import UserError


class StorageError(UserError):
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



def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)


class Database:
    """Connections and transactions; safe to share between threads (one connection per thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = POSTGRES if is_postgres(url) else SQLITE
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

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

    def close_own(self) -> None:
        """Close the calling thread's connection, if it has one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

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
    def _pipelined(self) -> Iterator[None]:
        """Statements run inside are sent together and their results read once, at the end or at the first fetch
        (PostgreSQL's pipeline mode: one round trip for them all); on SQLite they run one by one, as always.

        A statement that fails raises ``StorageError`` by the end of the block at the latest.
        """
        if self.dialect is not POSTGRES:
            yield
            return
        conn = self.conn()
        try:
            with conn.pipeline():
                yield
        except self._driver_errors() as exc:
            self._forget_if_broken(conn)
            raise StorageError(f"{self.dialect.name}: {exc}".strip()) from exc

    def _begin(self) -> None:
        """Start a transaction (SQLite: take the write lock now; PostgreSQL: locks come with the statements)."""
        self._q("BEGIN IMMEDIATE" if self.dialect is SQLITE else "BEGIN")

    def _rollback(self) -> None:
        """Undo the open transaction (a failure here only drops a broken connection)."""
        conn = self.conn()
        try:
            conn.execute("ROLLBACK")
        except self._driver_errors():
            self._forget_if_broken(conn)

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

    def _columns(self, table: str) -> set[str]:
        if self.dialect is POSTGRES:
            rows = self._q("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                           "AND table_schema = current_schema()", (table,)).fetchall()
            return {str(r[0]) for r in rows}
        return {str(r[1]) for r in self._q(f"PRAGMA table_info({table})").fetchall()}


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
