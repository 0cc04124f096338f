"""The receiver's database, SQLite by default, PostgreSQL when given a URL: one ``Storage`` over its subjects.

Each subject is its own module under ``receiver/store/``, a mixin over one
connection layer (``db.py``: connections per thread, transactions, driver
errors as ``StorageError``):

- ``schema.py``: the tables and indexes, and the in-place upgrade of a
  database written by an earlier version;
- ``ingest.py``: a station's records sequenced and stored in one transaction,
  rejections, and the reads of records, alarms and conflicts;
- ``writer.py``: the one writer thread, committing many batches at once;
- ``merkle_log.py``: the public RFC 6962 log, its leaves, roots and proofs;
- ``overview.py``: the overview's pages, keyset paging and page tokens;
- ``tallies.py``: the overview's counts, kept in one row;
- ``revocations.py``: the registry's stations and every revocation seen;
- ``registry_index.py``: each verified registry file, indexed once by digest.

Wiring: ``service.py`` and ``cli.py`` call ``open_storage(url)``;
``ingest.py`` (the pipeline) calls ``store``; the views call the reads.
"""

from __future__ import annotations

from receiver.store.ingest import Ingest
from receiver.store.overview import Overview, PageTokens
from receiver.store.registry_index import RegistryIndex
from receiver.store.revocations import Revocations
from receiver.store.schema import Schema
from receiver.store.writer import GroupWriter


class Storage(RegistryIndex, Schema, Ingest, Overview, Revocations):
    """All reads and writes of the receiver; safe to share between threads (one connection per thread)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._silent = None
        self.tokens = PageTokens(self._create_schema())
        self._create_registry_tables()
        self.writer = GroupWriter(self)
        self.writer.prepare = self.lock_stations

    def close(self) -> None:
        """Let the writer finish what it was handed, then close every connection."""
        self.writer.stop()
        super().close()


def open_storage(url: str) -> Storage:
    """Storage for a ``postgresql://`` URL, a ``sqlite:///path`` URL or a plain file path."""
    return Storage(url)
