"""The sync server: answers the other units' pulls on the station LAN (a thread of its own).

``GET /units/records?unit=U&after=N`` returns a sync message (``wire.py``) with unit ``U``'s records
after seq ``N`` as this unit holds them (its own, signed; others' as they arrived), at most
``wire.MAX_RECORDS`` of them. ``GET /units/status`` says how far this unit holds each unit and what
it knows of its peers. In simulation only, ``POST /units/link?peer=U&up=0|1`` cuts or restores the
link to a peer (both directions: this unit neither pulls from nor answers it).

It reads only the ``UnitLog`` and the client's ``Links`` (their own locks); it never calls the owner.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import wire
from .client import Links
from .log import UnitLog

log = logging.getLogger("pollbox.sync")
UNIT_HEADER = "X-Pollbox-Unit"


class SyncServer:
    """The HTTP server on ``host:port``; ``start`` runs it on a daemon thread, ``close`` stops it."""

    def __init__(self, *, host: str, port: int, log_: UnitLog, links: Links, wall: Callable[[], float],
                 status: Callable[[], dict[str, Any]], simulation: bool) -> None:
        handler = _handler(log_, links, wall, status, simulation)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pollbox-sync-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5.0)
        self._httpd.server_close()


def _handler(unit_log: UnitLog, links: Links, wall: Callable[[], float], status: Callable[[], dict[str, Any]],
             simulation: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
            log.debug("sync server: " + format, *args)

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, code: int, why: str) -> None:
            self._send(code, json.dumps({"error": why}).encode())

        def do_GET(self) -> None:  # noqa: N802 - the base class names it so
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if links.is_cut(self.headers.get(UNIT_HEADER, "")):
                self._refuse(503, "the link to this unit is cut")
            elif url.path == "/units/records":
                unit = query.get("unit", [""])[0]
                try:
                    after = int(query.get("after", ["0"])[0])
                except ValueError:
                    self._refuse(400, "after must be a whole number")
                    return
                close = unit_log.close_of(unit)  # read before the records: it never names more than they hold
                records = unit_log.records_after(unit, max(after, 0), wire.MAX_RECORDS)
                if close is not None and close["body"]["admissions"] > max(after, 0) + len(records):
                    close = None  # a later page carries it
                self._send(200, wire.message(unit_log.station, unit_log.own, wall(), records, unit_log.held_all(),
                                             close))
            elif url.path == "/units/status":
                self._send(200, json.dumps(status()).encode())
            else:
                self._refuse(404, "no such sync path")

        def do_POST(self) -> None:  # noqa: N802 - the base class names it so
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path != "/units/link" or not simulation:
                self._refuse(404, "no such sync path (links are cut only in simulation)")
                return
            peer, up = query.get("peer", [""])[0], query.get("up", ["1"])[0] == "1"
            links.set(peer, up)
            self._send(200, json.dumps({"peer": peer, "up": up}).encode())

    return Handler
