"""The overview's header counts: kept exact in one row, moved in the same transaction as each station.

``station_counts`` holds one row of counts over all live stations (``TALLY_COLUMNS``;
a training station counts for nothing, ``receiver/status.py`` ``is_training``);
ingest moves it by a station's change (``_count``), always as the last lock of
its transaction, so the overview never counts a million rows. Silence depends on
the clock, so the silent / reporting split is counted through an index of the
voting stations, at most every ``SILENT_RECOUNT_SECONDS`` per process.
``recount`` recomputes the row from every station (``pollbox-receiver recount``).
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.status import StationStatus, is_training
from receiver.store.db import Database

TALLY_COLUMNS = ("stations", "reported", "voting", "closed", "with_alarms", "alarms_open", "identified", "ballots",
                 "registered")
COUNT_TALLIES = "SELECT COUNT(*), " + ", ".join(f"COALESCE(SUM({term}), 0)" for term in (
    "CASE WHEN highest_seq > 0 THEN 1 ELSE 0 END", "CASE WHEN highest_seq > 0 AND phase <> 'closed' THEN 1 ELSE 0 END",
    "CASE WHEN phase = 'closed' THEN 1 ELSE 0 END", "CASE WHEN alarms_open > 0 THEN 1 ELSE 0 END",
    "alarms_open", "identified", "ballots", "registered")) + " FROM stations WHERE training = 0"
SILENT = "highest_seq > 0 AND phase <> 'closed' AND last_received < ? AND training = 0"
SILENT_RECOUNT_SECONDS = 30.0  # the silent / reporting split is recounted at most this often per process


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
    training: int = 0  # training stations: shown apart, in none of the counts above

    @property
    def not_reported(self) -> int:
        return self.stations - self.reported

    def matching(self, status: str) -> int:
        """How many stations a status filter matches (``silent`` and ``reporting`` as of ``silent_as_of``)."""
        return {"all": self.stations, "reporting": self.reporting, "silent": self.silent,
                "not_reported": self.not_reported, "closed": self.closed, "alarms": self.with_alarms,
                "training": self.training}[status]


def tally(status: StationStatus | None) -> tuple[int, ...]:
    """What one station adds to each of ``TALLY_COLUMNS`` (nothing when it does not exist or is a training one)."""
    if status is None or is_training(status):
        return (0,) * len(TALLY_COLUMNS)
    reported, closed = status.highest_seq > 0, status.phase == "closed"
    return (1, int(reported), int(reported and not closed), int(closed), int(status.alarms_open > 0),
            status.alarms_open, status.identified or 0, status.ballots or 0, status.registered or 0)


class Tallies(Database):
    """Reads and moves ``station_counts``."""

    _silent: tuple[float, int, int] | None = None  # (counted at, silent, voting), per process

    def _count(self, now: tuple[int, ...], was: tuple[int, ...]) -> None:
        """Move ``station_counts`` by one station's change; always the last lock a transaction takes."""
        delta = [a - b for a, b in zip(now, was, strict=True)]
        if any(delta):
            self._q(f"UPDATE station_counts SET {', '.join(f'{c} = {c} + ?' for c in TALLY_COLUMNS)} WHERE id = 1",
                    delta)


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
        return Summary(**counts, silent=silent, reporting=max(0, voting - silent), silent_as_of=silent_at,
                       training=self.count_training())

    def count_training(self) -> int:
        """How many training stations there are (the partial index ``stations_training``: no scan of live ones)."""
        return int(self._q("SELECT COUNT(*) FROM stations WHERE training = 1").fetchone()[0])

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

