"""The public log: every accepted record, from every station, as one append-only RFC 6962 Merkle tree.

The tree is kept as its complete subtrees (``merkle_nodes``, written once and
never changed) and one ``tree`` row with its size, root and frontier
(``protocol/merkle.py``). Appending locks the ``tree`` row, so leaf order is
global and gap-free however many receiver processes share the database; a
record's leaf index never changes. Roots, audit paths and consistency proofs
of any past size are read from the stored nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from protocol import merkle
from receiver.store.db import Database, StorageError


class MerkleLog(Database):
    """Appends leaves and reads the log."""

    def _append_leaves(self, leaves: Sequence[bytes],
                       later: Callable[[str, Sequence[Any]], None] | None = None) -> int:
        """Append leaf hashes under the ``tree`` row's lock; returns the index of the first (the old size).

        ``later``, if given, is handed the ``tree`` row's update (SQL and parameters) to run later in the same
        transaction, instead of running it now (the group writer sends it with the COMMIT).
        """
        size, packed = self._q(f"SELECT size, frontier FROM tree WHERE id = 1{self.dialect.for_update}").fetchone()
        packed = bytes(packed)
        frontier = [packed[i:i + 32] for i in range(0, len(packed), 32)]
        nodes, frontier = merkle.append(size, frontier, leaves)
        self._insert_rows("merkle_nodes", ("level", "idx", "hash"), nodes)
        (later or self._q)("UPDATE tree SET size = ?, root = ?, frontier = ? WHERE id = 1",
                           (size + len(leaves), merkle.root_from_frontier(frontier), b"".join(frontier)))
        return int(size)

    def _insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows: ``COPY`` on PostgreSQL (about a quarter of the CPU a row of a multi-row
        ``executemany``, measured), ``executemany`` on SQLite (in-process, already cheap)."""
        if not rows:
            return
        if self.dialect.name != "postgresql":
            self._many(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})", rows)
            return
        conn = self.conn()
        try:
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except self._driver_errors() as exc:
            self._forget_if_broken(conn)
            raise StorageError(f"{self.dialect.name}: {exc}".strip()) from exc

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

