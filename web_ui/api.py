"""Machine-readable status (``/api/status``) and the live stream (``/events``).

``/events`` is a Server-Sent Events stream: it renders the live region of the
requested view every ``SSE_POLL_SECONDS``, sends it when the HTML changed,
sends an ``alive`` event every ``SSE_KEEPALIVE_SECONDS`` while nothing changed (the page
shows "connection lost" when neither comes for three of those), and ends after
``SSE_MAX_SECONDS`` so a waitress thread is never held for long; the browser
reconnects by itself (``retry``). ``/api/status`` is the short-polling
fallback and the JSON form of the same snapshot (``?view=status`` adds the
rendered HTML). The JSON never names a voter; the rendered HTML does so only
for the chair's own session (``view.personal_for``). A fault while the stream
renders is logged and shown in place of the live region, in the page's
language, and the stream carries on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request, stream_with_context
from flask_babel import gettext as _
from markupsafe import escape
from werkzeug.wrappers import Response

from . import faults, view

bp = Blueprint("api", __name__)


def _view_arg() -> str | None:
    name = request.args.get("view")
    if name is not None and name not in view.VIEWS:
        abort(400, description=_("There is no such view: choose %(views)s.", views=", ".join(view.VIEWS)))
    return name


@bp.get("/api/status")
def status() -> Response:
    name = _view_arg()
    s = view.snapshot(personal=name is not None and view.personal_for(name))
    body: dict[str, Any] = {"status": view.without_personal_data(s)}
    if name:
        body["html"] = view.render_live(name, s)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def sse_event(kind: str, data: str) -> str:
    """One SSE message; each line of ``data`` gets its own ``data:`` field."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {kind}\n{lines}\n"


def _stream(name: str) -> Iterator[str]:
    cfg = current_app.config
    poll, keepalive = float(cfg["SSE_POLL_SECONDS"]), float(cfg["SSE_KEEPALIVE_SECONDS"])
    deadline = time.monotonic() + float(cfg["SSE_MAX_SECONDS"])
    yield "retry: 1500\n\n"
    last_digest, last_sent = "", time.monotonic()
    faults_seen: set[str] = set()
    while True:
        html = _live_or_fault(name, faults_seen)
        digest = hashlib.sha256(html.encode()).hexdigest()
        now = time.monotonic()
        if digest != last_digest:
            yield sse_event("live", html)
            last_digest, last_sent = digest, now
        elif now - last_sent >= keepalive:
            yield sse_event("alive", "")
            last_sent = now
        if now >= deadline:
            return
        time.sleep(poll)


def _live_or_fault(name: str, seen: set[str]) -> str:
    """The live region of ``name`` now, or the sentence that says what went wrong (each kind of
    exception is logged once per stream, not on every poll)."""
    try:
        return view.render_live(name, view.snapshot(personal=view.personal_for(name)))
    except Exception as exc:
        kind = type(exc).__qualname__
        _, text = faults.explain(exc, logged=kind not in seen)
        seen.add(kind)
        return f'<p class="alarm critical" data-fault>⚠ {escape(text)}</p>'


@bp.get("/events")
def events() -> Response:
    name = _view_arg() or "status"
    response = Response(stream_with_context(_stream(name)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
