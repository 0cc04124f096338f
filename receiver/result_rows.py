"""The rows of the open results: one station's close-report counts, the record carrying them, its proof link.

``ResultsReader`` reads the ``stations`` table in keyset pages of ``PAGE`` station ids, each row joined to
its first close report's record (a lookup on the ``records`` primary key), training stations left out;
A station of several units publishes the combined totals its main unit signed in ``units_reconciled`` just before
its close report (``receiver/status.py`` ``station_totals``: each unit's part counted once, the other units' own
close reports never added); the proof links stay those of the close report, the record that follows them.
``result_row`` turns a row into the exported fields (``FIELDS``, docs/results.md) against a ``Cut``, the
signed tree head an export is cut at. ``receiver/results.py`` (JSON, CSV) and ``receiver/results_cdf.py``
(NIST) write them out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from receiver.status import station_totals
from receiver.storage import Storage

FORMAT = "pollbox-results/1"
PAGE = 1_000
FIELDS = ("station", "phase", "closed_at", "registered", "identified", "ballots", "difference", "turnout",
          "alarms_total", "alarms_open_at_close", "alarms_open", "close_seq", "close_hash", "close_leaf_index",
          "proof_url", "record_url")
"""The columns of every export, in this order; new columns are only ever added at the end."""

CLOSE_COUNTS = ("identified", "ballots", "difference", "alarms_total")


# The first close report of a station and the record carrying it. With no evidence after the close there is
# one ``polls_closed`` record, found by walking the station's records from the newest (only alarms and notes
# follow a close); a station with evidence may hold a second one, so its first is looked up from the oldest.
_CLOSE_SEQ = (
    "CASE WHEN s.close_report IS NULL THEN NULL WHEN s.evidence = 0 THEN "
    "(SELECT x.seq FROM records x WHERE x.station = s.station AND x.unit = '' AND x.type = 'polls_closed' "
    "ORDER BY x.seq DESC LIMIT 1)"
    " ELSE (SELECT x.seq FROM records x WHERE x.station = s.station AND x.unit = '' AND x.type = 'polls_closed' "
    "ORDER BY x.seq LIMIT 1) END")
_STATIONS = ("SELECT s.station, s.phase, s.closed_at, s.registered, s.alarms_open, s.close_report, "
             f"({_CLOSE_SEQ}) AS close_seq, s.training, s.units_report FROM stations s")


def _select(where: str) -> str:
    """The rows of the stations ``where`` picks (with ORDER BY and LIMIT), each joined to its close record.

    The stations are picked first, in a derived table, and only then joined: joined directly, PostgreSQL
    merges a page of stations with the whole ``records`` index from its start."""
    return ("SELECT p.station, p.phase, p.closed_at, p.registered, p.alarms_open, p.close_report, r.seq, r.hash, "
            f"r.leaf_index, r.training, p.units_report, p.training FROM ({_STATIONS} {where}) p "
            "LEFT JOIN records r ON r.station = p.station AND r.unit = '' AND r.seq = p.close_seq ORDER BY p.station")


@dataclass(frozen=True)
class Cut:
    """The signed tree head an export is cut at, and the receiver's address for the links."""

    head: dict[str, Any]
    base: str

    @property
    def size(self) -> int:
        return int(self.head["size"])


class ResultsReader:
    """Reads result rows from the ``stations`` and ``records`` tables in keyset pages."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def page(self, after: str, limit: int = PAGE) -> list[tuple[Any, ...]]:
        return list(self.storage._q(_select("WHERE s.training = 0 AND s.station > ? ORDER BY s.station LIMIT ?"),
                                    (after, limit)).fetchall())

    def one(self, station: str) -> tuple[Any, ...] | None:
        row = self.storage._q(_select("WHERE s.station = ?"), (station,)).fetchone()
        return tuple(row) if row is not None else None

    def rows(self) -> Iterator[list[tuple[Any, ...]]]:
        """Every station, a page at a time."""
        after = ""
        while True:
            page = self.page(after)
            if not page:
                return
            yield page
            after = str(page[-1][0])


def result_row(row: tuple[Any, ...], cut: Cut) -> dict[str, Any]:
    """One station's result; a close report counts only if its record is in the cut's head and not training."""
    station, phase, closed_at, registered, alarms_open, close_report, seq, digest, leaf, record_training, \
        units_report, station_training = row
    training = bool(station_training or record_training)
    counted = close_report is not None and leaf is not None and leaf < cut.size and not training
    body = station_totals(json.loads(close_report), units_report) if counted else {}
    if training:
        phase = "training"
    elif phase == "closed" and not counted:
        phase = "closed_after_head"
    out: dict[str, Any] = {"station": station, "phase": phase,
                           "closed_at": closed_at if counted else None, "registered": registered}
    out.update((name, body.get(name)) for name in CLOSE_COUNTS[:3])
    identified = body.get("identified")
    out["turnout"] = round(identified / registered, 6) if counted and registered else None
    out["alarms_total"] = body.get("alarms_total")
    out["alarms_open_at_close"] = body.get("alarms_open")
    out["alarms_open"] = alarms_open
    station_q = quote(str(station), safe="")
    out.update(close_seq=seq if counted else None, close_hash=digest if counted else None,
               close_leaf_index=leaf if counted else None,
               proof_url=f"{cut.base}/api/v1/tree/proof?hash={digest}&size={cut.size}" if counted else None,
               record_url=f"{cut.base}/api/v1/records/{station_q}/{seq}" if counted else None)
    return out
