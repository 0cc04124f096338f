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
left out (its station's phase says ``closed_after_head``), so every ``proof_url`` answers against the head in the same
file. Rows are read in keyset pages (``receiver/result_rows.py``) and written out page by page,
so memory stays flat however many stations there are. Training stations (``stations.training``) are
left out, and a close record signed with the ``training`` flag never counts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, jsonify, request, stream_with_context

from protocol.treehead import sign_tree_head
from receiver.current import receiver
from receiver.result_rows import FIELDS, FORMAT, Cut, ResultsReader, result_row
from receiver.results_cdf import cdf_document

bp = Blueprint("results", __name__, url_prefix="/api/v1")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


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
