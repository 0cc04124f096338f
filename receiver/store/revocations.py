"""What the database keeps of the device registry: the enrolled stations and every revocation ever in force.

``sync_enrolled`` mirrors the registry's stations into ``stations`` once per
registry version (so a station that never reported shows as not reported).
``revocations`` keeps every key revocation this database has seen in a
CEC-signed registry, with when the receiver first put it in force; rows are
never changed or deleted, so a receiver refuses to start on an older registry
that lacks one (``receiver/service.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from protocol.training import is_training_station
from receiver.registry import DeviceEntry, Revocation
from receiver.status import StationStatus
from receiver.store.tallies import Tallies, tally

SYNC_CHUNK = 10_000
"""Stations of a new registry version marked enrolled per batch of statements."""
REVOCATION_COLUMNS = ("key_id", "station", "revoked_at", "reason", "revoked_by", "last_seq", "in_force_since")


class Revocations(Tallies):
    """The registry's stations and revocations, as this database has seen them."""

    def sync_enrolled(self, stations: Iterable[str], digest: str) -> None:
        """Mark the registry's stations as enrolled (once per registry version), so silent ones show.

        ``stations`` is read only when this registry version is new here.
        """
        with self._transaction():
            row = self._q("SELECT value FROM meta WHERE key = 'registry_digest'").fetchone()
            if row is not None and row[0] == digest:
                return
            self._q("UPDATE stations SET enrolled = 0")
            created, todo = 0, iter(stations)
            while chunk := list(itertools.islice(todo, SYNC_CHUNK)):  # read as written: memory does not grow
                created += self._many("INSERT INTO stations (station, enrolled) VALUES (?, 1) "
                                      "ON CONFLICT (station) DO NOTHING",
                                      [(s,) for s in chunk if not is_training_station(s)])
                self._many("INSERT INTO stations (station, enrolled, training) VALUES (?, 1, 1) "
                           "ON CONFLICT (station) DO NOTHING", [(s,) for s in chunk if is_training_station(s)])
                self._many("UPDATE stations SET enrolled = 1 WHERE station = ? AND enrolled = 0",
                           [(s,) for s in chunk])
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
