"""Serve the chair's screen with waitress, a production WSGI server.

``pollbox run`` builds the appliance and the app in one process and calls
``serve(app, host, port)``; it blocks until the process is asked to stop.
Each open live stream (``/events``) holds one worker thread for at most
``SSE_MAX_SECONDS``, so the thread pool is sized for a few screens plus
ordinary requests.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from waitress.server import create_server

from . import hosts

THREADS = 12


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8080) -> Any:
    """A waitress server bound to ``host:port`` (port 0: a free port, see ``.effective_port``); the app
    answers under ``host`` from now on (``hosts.allow``)."""
    hosts.allow(app, host)
    return create_server(app, host=host, port=port, threads=THREADS, channel_timeout=120,
                         ident="pollbox", clear_untrusted_proxy_headers=True)


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``app`` until interrupted."""
    server = make_server(app, host, port)
    try:
        server.run()
    finally:
        server.close()
