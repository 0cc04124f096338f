"""``POST /api/v1/records``, the route every unit's batch takes, answered by a thin WSGI layer in front of Flask.

A batch is the receiver's most frequent request, and most of them are small
(a unit sends 2-4 records at a time during the day). Flask's request
context, URL matching and response object cost about 0.2 ms of CPU a
request on the development machine (measured in process: a batch of 3
through the Flask view against the same batch handed to the ingestor), as
much as three signature verifications. So ``wrap(app)`` puts this layer
around the Flask app's WSGI callable: it answers ``POST /api/v1/records``
itself and hands every other request to Flask untouched.

It answers exactly as the JSON API does (docs/protocol.md, 4): the
ingestor's outcome as JSON with its status; ``400 malformed`` for another
Content-Type; ``413 oversized`` for a body beyond the app's
``MAX_CONTENT_LENGTH``; ``503 unavailable`` when the database fails (units
retry); ``405`` for a method other than POST. ``wrap`` is called by
``create_app``, so the test client and waitress go through the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from protocol.batch import MAX_BYTES
from receiver.current import EXTENSION
from receiver.service import Receiver
from receiver.store.db import StorageError

PATH = "/api/v1/records"
BATCH_TYPE = "application/x-pollbox-batch"
UNAVAILABLE = "the receiver's database is unavailable; retry later (resending is harmless)"
OVERSIZED = f"the request body exceeds {MAX_BYTES} bytes"
STATUS_LINES = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden", 405: "405 Method Not Allowed",
                409: "409 Conflict", 413: "413 Content Too Large", 500: "500 Internal Server Error",
                503: "503 Service Unavailable"}

log = logging.getLogger("pollbox.receiver.api")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wrap(app: Flask) -> None:
    """Answer ``POST /api/v1/records`` before Flask; every other request goes to Flask as before."""
    flask_app: WsgiApp = app.wsgi_app
    receiver: Receiver = app.extensions[EXTENSION]
    limit = int(app.config.get("MAX_CONTENT_LENGTH") or MAX_BYTES)

    def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return flask_app(environ, start_response)
        status, doc = _answer(receiver, environ, limit)
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        start_response(STATUS_LINES.get(status, f"{status} Error"),
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]


def _answer(receiver: Receiver, environ: dict[str, Any], limit: int) -> tuple[int, dict[str, Any]]:
    if environ.get("REQUEST_METHOD") != "POST":
        return _error(405, "malformed", f"{PATH} takes POST only")
    mimetype = str(environ.get("CONTENT_TYPE") or "").partition(";")[0].strip().lower()
    if mimetype != BATCH_TYPE:
        return _error(400, "malformed", f"Content-Type must be {BATCH_TYPE}, not {mimetype or 'none'}")
    body = _body(environ, limit)
    if body is None:
        return _error(413, "oversized", OVERSIZED)
    try:
        outcome = receiver.ingestor.ingest_body(body, environ.get("HTTP_CONTENT_ENCODING"),
                                                f"http:{environ.get('REMOTE_ADDR')}")
    except StorageError as exc:
        log.error("database failure answered with 503: %s", exc)
        return _error(503, "unavailable", UNAVAILABLE)
    except Exception:
        log.exception("a batch could not be answered")
        return _error(500, "unavailable", "the receiver failed on this batch; retry later (resending is harmless)")
    return outcome.http_status, outcome.as_json()


def _body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body (None: longer than ``limit``); without a Content-Length, read to the end the server marks."""
    stream = environ["wsgi.input"]
    try:
        length: int | None = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        length = None
    if length is not None and length >= 0:
        return None if length > limit else stream.read(length)
    if not environ.get("wsgi.input_terminated"):
        return b""
    data: bytes = stream.read(limit + 1)
    return None if len(data) > limit else data


def error_doc(code: str, reason: str) -> dict[str, Any]:
    """The JSON API's refusal document (docs/protocol.md, 4), for this route and the Flask ones."""
    return {"error": code, "reason": reason, "seq": None, "receipt": None}


def _error(status: int, code: str, reason: str) -> tuple[int, dict[str, Any]]:
    return status, error_doc(code, reason)
