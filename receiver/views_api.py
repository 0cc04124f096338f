"""The receiver's JSON API under ``/api/v1`` (see docs/protocol.md and docs/receiver.md).

Every answer is JSON, errors included: a unit never sees an HTML error page.
A database failure answers 503, which units treat as "retry later".
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from protocol.envelope import MAIN_UNIT, MAX_INT
from protocol.merkle import ProofError, leaf_hash
from protocol.treehead import proof_json, sign_tree_head
from receiver.batch_route import OVERSIZED, UNAVAILABLE, error_doc
from receiver.current import receiver
from receiver.store.db import StorageError

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_ENTRIES = 1_000

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("pollbox.receiver.api")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(StorageError, _storage_failed)


def _error(status: int, code: str, reason: str) -> tuple[Response, int]:
    return jsonify(error_doc(code, reason)), status


def _storage_failed(exc: StorageError) -> tuple[Response, int]:
    log.error("database failure answered with 503: %s", exc)
    return _error(503, "unavailable", UNAVAILABLE)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    if status == 413:
        return _error(413, "oversized", OVERSIZED)
    return _error(status, "malformed" if status < 500 else "unavailable", exc.description or exc.name)


@bp.post("/import")
def post_import() -> tuple[Response, int]:
    outcomes = receiver().import_export(request.get_data(cache=False), f"import-http:{request.remote_addr}")
    last = outcomes[-1]
    doc = last.as_json() | {"accepted": sum(o.accepted for o in outcomes),
                            "duplicates": sum(o.duplicates for o in outcomes)}
    return jsonify(doc), last.http_status


@bp.get("/stations/<path:station>/receipt")
def get_receipt(station: str) -> Response:
    """The receipt of the station's main chain, or with ``?unit=ID`` of that unit's chain (docs/units.md)."""
    return jsonify({"receipt": receiver().ingestor.receipt(station, 0, request.args.get("unit", MAIN_UNIT))})


@bp.get("/stations/<path:station>/devices")
def get_devices(station: str) -> tuple[Response, int]:
    """The station's enrolled devices, each with its revocation (when, why, by whom, last accepted seq) if revoked."""
    registry = receiver().registry()
    devices = registry.devices_of(station)
    if not devices:
        return _error(404, "not_found", f"no device is enrolled for station {station}")
    return jsonify({"station": station, "devices": [registry.device_json(d) for d in devices]}), 200


@bp.get("/registry")
def get_registry() -> Response:
    """The CEC-signed device registry in force, byte for byte, so anyone can check its signature and revocations."""
    document = receiver().registry().signed_document or b""
    return Response(document, mimetype="application/json")


@bp.get("/records/<path:station>/<int:seq>")
def get_record(station: str, seq: int) -> tuple[Response, int]:
    """Record ``seq`` of the station's main chain, or with ``?unit=ID`` of that unit's chain."""
    unit = request.args.get("unit", MAIN_UNIT)
    line = receiver().storage.record_line(station, seq, unit) if seq <= MAX_INT else None
    if line is None:
        of_unit = f" (unit {unit})" if unit else ""
        return _error(404, "not_found", f"no record {seq} of station {station}{of_unit} is stored")
    return jsonify({"line": line}), 200


@bp.get("/tree/head")
def get_tree_head() -> Response:
    rx = receiver()
    size, root = rx.storage.tree()
    return jsonify(sign_tree_head(rx.key, size, root, rx.clock()))


@bp.get("/tree/head/<int:size>")
def get_past_tree_head(size: int) -> tuple[Response, int]:
    """A signed head for an earlier size, so proofs against a head an auditor already holds can be matched."""
    rx = receiver()
    current, _ = rx.storage.tree()
    if not 0 <= size <= current:
        return _error(404, "not_found", f"the log has {current} leaves; there is no head of size {size}")
    return jsonify(sign_tree_head(rx.key, size, rx.storage.root_at(size), rx.clock())), 200


@bp.get("/tree/entries")
def get_entries() -> tuple[Response, int]:
    """Leaves ``start`` to ``end - 1`` in leaf order (at most ``MAX_ENTRIES``), so a whole log can be audited."""
    rx = receiver()
    size = rx.storage.tree()[0]
    start = _int_arg("start", None)
    end = _int_arg("end", size if start is None else min(size, start + MAX_ENTRIES))
    if start is None or end is None or not 0 <= start <= end <= size:
        return _error(400, "malformed", f"start and end must be integers with 0 <= start <= end <= {size} "
                                        "(the log's size)")
    end = min(end, start + MAX_ENTRIES)
    entries = [{"leaf_index": index, "line": line} for index, line in rx.storage.leaves_between(start, end)]
    return jsonify({"start": start, "end": end, "tree_size": size, "entries": entries}), 200


def _int_arg(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


@bp.get("/tree/proof")
def get_proof() -> tuple[Response, int]:
    rx = receiver()
    record_hash = request.args.get("hash", "").lower()
    if not HASH_RE.match(record_hash):
        return _error(400, "malformed", "hash must be the record's SHA-256 as 64 hex digits")
    found = rx.storage.leaf_of(record_hash)
    if found is None:
        return _error(404, "not_found", f"no record with hash {record_hash} is in the log")
    index, line = found
    size = _size_arg(rx.storage.tree()[0])
    if size is None or size <= index:
        return _error(400, "malformed", f"size must be an integer above {index} and at most the log's size")
    record_bytes = line.partition(" ")[2].encode("utf-8")
    return jsonify(proof_json(index, size, rx.storage.audit_path(index, size), leaf_hash(record_bytes))), 200


@bp.get("/tree/consistency")
def get_consistency() -> tuple[Response, int]:
    rx = receiver()
    current = rx.storage.tree()[0]
    first, second = request.args.get("first", type=int), request.args.get("second", type=int, default=current)
    try:
        if first is None or second is None or second > current:
            raise ProofError(f"first and second must be sizes with 0 < first <= second <= {current}")
        proof = rx.storage.consistency(first, second)
    except ProofError as exc:
        return _error(400, "malformed", str(exc))
    return jsonify({"first": first, "second": second, "proof": [node.hex() for node in proof]}), 200


def _size_arg(current: int) -> int | None:
    raw: Any = request.args.get("size")
    if raw is None:
        return current
    try:
        size = int(raw)
    except ValueError:
        return None
    return size if size <= current else None
