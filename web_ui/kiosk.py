"""The kiosk's frame heartbeat: ``POST /kiosk/frame`` and ``GET /kiosk/frames``, from 127.0.0.1 only.

The chair's pages (``static/live.js``), when opened on the unit itself (``http://127.0.0.1``), post a
beat from inside a ``requestAnimationFrame`` callback every few seconds while the page is visible. A
browser fires that callback only when it is producing frames for a window that is shown, so beats
coming in mean the page really reaches the screen. The kiosk's supervisor (``device.kiosk``) reads
the count and restarts the compositor and browser when no beat comes (``docs/image.md``).

What is kept is one number in memory (beats since the screen started); nothing personal, no PIN, no
hardware. Both routes answer only a peer on the loopback address: anything else gets 403. The beat
is a POST and carries the page's CSRF token like every form. Wiring: ``create_app`` registers ``bp``.
"""

from __future__ import annotations

import itertools
import threading

from flask import Blueprint, abort, current_app, jsonify, request
from werkzeug.wrappers import Response

bp = Blueprint("kiosk", __name__)
LOOPBACK_PEERS = frozenset({"127.0.0.1", "::1"})
EXTENSION = "pollbox.kiosk_frames"


class FrameCount:
    """How many frame beats this screen has had since it started (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._value = 0

    def beat(self) -> int:
        with self._lock:
            self._value = next(self._counter)
            return self._value

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


def _count() -> FrameCount:
    counts: FrameCount = current_app.extensions.setdefault(EXTENSION, FrameCount())
    return counts


@bp.before_request
def _loopback_only() -> None:
    if request.remote_addr not in LOOPBACK_PEERS:
        abort(403)


@bp.post("/kiosk/frame")
def frame() -> Response:
    _count().beat()
    return Response(status=204)


@bp.get("/kiosk/frames")
def frames() -> Response:
    response = jsonify({"frames": _count().value})
    response.headers["Cache-Control"] = "no-store"
    return response
