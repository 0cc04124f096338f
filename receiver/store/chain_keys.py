"""Which chain of its station each enrolled key signs: a key writes one unit's chain, never two.

The registry binds a key to a station; a station of several units has one chain per unit
(docs/units.md). The first records a key gets stored bind it to their chain (station, unit) in
``chain_keys``; a later batch of that key for another chain of the station is refused
(``wrong_unit``) with nothing of it stored. A spare that replaces a unit has a key of its own,
bound to the chain it continues. Bindings never change, so each process keeps those it has read
from the table (never straight from its own insert). A binding read inside a group that then rolls
back names the chain the key's batch was for, which the unit sends again: a key that writes one
chain is never refused by it. The check and the binding run in the storing transaction, under the
station's lock, on the writer's thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.envelope import SignedRecord
from receiver.ingest import Rejection
from receiver.store.db import Database

CACHED_KEYS = 100_000  # bindings a process keeps (each a few hundred bytes)


class ChainKeys(Database):
    """The ``chain_keys`` table's check and binding (a mixin of the storage)."""

    _chain_of_key: dict[str, tuple[str, str]]

    def _key_chain(self, key_id: str) -> tuple[str, str] | None:
        cache: dict[str, tuple[str, str]] = self.__dict__.setdefault("_chain_of_key", {})
        found = cache.get(key_id)
        if found is None:
            row = self._q("SELECT station, unit FROM chain_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                return None
            if len(cache) >= CACHED_KEYS:
                cache.clear()
            found = cache[key_id] = (str(row[0]), str(row[1]))
        return found

    def first_of_another_chain(self, station: str, unit: str, records: Sequence[SignedRecord]) -> tuple[
            int, Rejection | None]:
        """How many leading records are signed by keys free or bound to this chain, and why the next is refused."""
        verdicts: dict[str, tuple[str, str] | None] = {}
        for index, record in enumerate(records):
            if record.key not in verdicts:
                verdicts[record.key] = self._key_chain(record.key)
            bound = verdicts[record.key]
            if bound is not None and bound != (station, unit):
                return index, Rejection(
                    "wrong_unit", f"record {record.seq}: key {record.key} signs the chain of unit "
                                  f"{bound[1] or 'main'} of station {bound[0]}, not of unit {unit or 'main'}; "
                                  "a key writes one unit's chain", station=station, seq=record.seq, key=record.key,
                    unit=unit)
        return len(records), None

    def bind_keys(self, station: str, unit: str, records: Sequence[SignedRecord]) -> None:
        """Bind the keys of newly stored records to their chain (those bound already are left as they are)."""
        for key in dict.fromkeys(r.key for r in records):
            if self.__dict__.get("_chain_of_key", {}).get(key) is None:
                self._q("INSERT INTO chain_keys (key_id, station, unit) VALUES (?, ?, ?) "
                        "ON CONFLICT (key_id) DO NOTHING", (key, station, unit))
