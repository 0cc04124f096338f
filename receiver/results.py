"""Open results: every station's close-report counts, the record that carries them, and a link to its proof.

Routes (blueprint ``results``, registered by ``create_app``; the schema is in docs/results.md):

- ``GET /api/v1/results``: one JSON document, streamed: the signed tree head the export is cut at, the field
  names, then one object per station in station order;
- ``GET /api/v1/results.json`` and ``GET /api/v1/results.csv``: the same rows as downloads (the CSV carries
  the signed tree head in its ``Pollbox-Tree-Head`` header and the head's size in every proof link);
- ``GET /api/v1/results.cdf.json``: the NIST SP 1500-100 Election Results Common Data Format (JSON) report
  of what maps (ballots cast, voters participated and registered per polling place);
- ``GET /api/v1/results/<station>``: one station; an unknown station is a 404 with a JSON error.

Every export is cut at one signed tree head: a close report whose record entered the log after that head is
left out (its station shows as not closed), so every ``proof_url`` answers against the head in the same
file. Rows are read in keyset pages of ``PAGE`` stations (``ResultsReader``) and written out page by page,
so memory stays flat however many stations there are. Training stations (``stations.training``) are
left out, and a close record signed with the ``training`` flag never counts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, jsonify, request, stream_with_context

from protocol.treehead import sign_tree_head
from receiver.current import receiver
from receiver.storage import Storage

FORMAT = "pollbox-results/1"
PAGE = 1_000
FIELDS = ("station", "phase", "closed_at", "registered", "identified", "ballots", "difference", "turnout",
          "alarms_total", "alarms_open_at_close", "alarms_open", "close_seq", "close_hash", "close_leaf_index",
          "proof_url", "record_url")
"""The columns of every export, in this order; new columns are only ever added at the end."""

CLOSE_COUNTS = ("identified", "ballots", "difference", "alarms_total")

bp = Blueprint("results", __name__, url_prefix="/api/v1")

# The first close report of a station and the record carrying it. With no evidence after the close there is
# one ``polls_closed`` record, found by walking the station's records from the newest (only alarms and notes
# follow a close); a station with evidence may hold a second one, so its first is looked up from the oldest.
_CLOSE_SEQ = (
    "CASE WHEN s.close_report IS NULL THEN NULL WHEN s.evidence = 0 THEN "
    "(SELECT x.seq FROM records x WHERE x.station = s.station AND x.type = 'polls_closed' ORDER BY x.seq DESC LIMIT 1)"
    " ELSE (SELECT x.seq FROM records x WHERE x.station = s.station AND x.type = 'polls_closed' "
    "ORDER BY x.seq LIMIT 1) END")
_SELECT = ("SELECT s.station, s.phase, s.closed_at, s.registered, s.alarms_open, s.close_report, "
           f"r.seq, r.hash, r.leaf_index, r.line, s.training FROM stations s LEFT JOIN records r "
           f"ON r.station = s.station AND r.seq = ({_CLOSE_SEQ})")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@dataclass(frozen=True)
class Cut:
    """The signed tree head an export is cut at, and the receiver's address for the links."""

    head: dict[str, Any]
    base: str

    @property
    def size(self) -> int:
        return int(self.head["size"])


def is_training(line: str | None) -> bool:
    """True for a record whose signed envelope says ``"training": true`` (it never counts)."""
    return bool(line) and json.loads(str(line).partition(" ")[2]).get("training") is True


class ResultsReader:
    """Reads result rows from the ``stations`` and ``records`` tables in keyset pages."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def page(self, after: str, limit: int = PAGE) -> list[tuple[Any, ...]]:
        return list(self.storage._q(f"{_SELECT} WHERE s.training = 0 AND s.station > ? ORDER BY s.station LIMIT ?",
                                    (after, limit)).fetchall())

    def one(self, station: str) -> tuple[Any, ...] | None:
        row = self.storage._q(f"{_SELECT} WHERE s.station = ?", (station,)).fetchone()
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
    station, phase, closed_at, registered, alarms_open, close_report, seq, digest, leaf, line, station_training = row
    training = bool(station_training) or is_training(line)
    counted = close_report is not None and leaf is not None and leaf < cut.size and not training
    body = json.loads(close_report) if counted else {}
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


def _cut() -> Cut:
    rx = receiver()
    size, root = rx.storage.tree()
    return Cut(sign_tree_head(rx.key, size, root, rx.clock()), request.url_root.rstrip("/"))


def _json_document(cut: Cut) -> Iterator[str]:
    reader = ResultsReader(receiver().storage)
    yield (f'{{"format":{json.dumps(FORMAT)},"tree_head":{json.dumps(cut.head, sort_keys=True)},'
           f'"fields":{json.dumps(list(FIELDS))},"stations":[')
    first = True
    for page in reader.rows():
        text = ",\n".join(json.dumps(result_row(row, cut), ensure_ascii=False) for row in page)
        yield ("\n" if first else ",\n") + text
        first = False
    yield "\n]}\n"


def _csv_document(cut: Cut) -> Iterator[str]:
    reader = ResultsReader(receiver().storage)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for page in reader.rows():
        for row in page:
            result = result_row(row, cut)
            writer.writerow(["" if result[name] is None else result[name] for name in FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _stream(chunks: Iterator[str], mimetype: str, cut: Cut, filename: str | None) -> Response:
    headers = {"Pollbox-Tree-Head": str(cut.head["tree_head"]), "Cache-Control": "no-store"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(stream_with_context(chunk.encode("utf-8") for chunk in chunks),
                    mimetype=mimetype, headers=headers)


def _stamp(cut: Cut) -> str:
    return datetime.fromtimestamp(receiver().clock(), UTC).strftime("%Y%m%d-%H%M%S") + f"-{cut.size}"


@bp.get("/results")
def results() -> Response:
    cut = _cut()
    return _stream(_json_document(cut), "application/json", cut, None)


@bp.get("/results.json")
def results_json() -> Response:
    cut = _cut()
    return _stream(_json_document(cut), "application/json", cut, f"pollbox-results-{_stamp(cut)}.json")


@bp.get("/results.csv")
def results_csv() -> Response:
    cut = _cut()
    return _stream(_csv_document(cut), "text/csv", cut, f"pollbox-results-{_stamp(cut)}.csv")


@bp.get("/results.cdf.json")
def results_cdf() -> Response:
    from receiver.results_cdf import cdf_document

    cut = _cut()
    rows = ResultsReader(receiver().storage)
    return _stream(cdf_document(rows, cut, receiver().clock()), "application/json", cut,
                   f"pollbox-results-cdf-{_stamp(cut)}.json")


@bp.get("/results/<path:station>")
def station_result(station: str) -> tuple[Response, int]:
    cut = _cut()
    row = ResultsReader(receiver().storage).one(station)
    if row is None or row[-1]:
        why = "is a training station: its records never count" if row else "is neither enrolled nor has it reported"
        return jsonify({"error": "not_found", "reason": f"station {station} {why}", "seq": None, "receipt": None}), 404
    return jsonify({"format": FORMAT, "tree_head": cut.head, "station": result_row(row, cut)}), 200
