"""The background waitress server stops cleanly, even with requests and streams in flight."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator

import pytest
import waitress.server
from flask import Flask, Response

from device.webserver import ServerThread


def _app(streaming: threading.Event) -> Flask:
    app = Flask("webserver-test")

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            streaming.set()
            while True:  # ends only when the client is gone
                yield b"data: tick\n\n" * 64

        return Response(chunks(), mimetype="text/event-stream")

    return app


def _server(app: Flask) -> ServerThread:
    return ServerThread(waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4))


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def test_serves_and_then_releases_its_port() -> None:
    server = _server(_app(threading.Event())).start()
    port = server.port
    assert _get(port, "/hello") == b"hello"
    server.stop()
    server.stop()  # a second stop does nothing
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))  # the listening socket is closed
    assert not any(t.name == "http" and t.is_alive() for t in threading.enumerate())


def test_stop_ends_an_endless_stream_and_its_worker() -> None:
    streaming = threading.Event()
    server = _server(_app(streaming)).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/stream")
    reply = conn.getresponse()
    assert reply.read(16) == b"data: tick\n\ndata"
    assert streaming.wait(30)
    workers = list(server.server.task_dispatcher.threads)
    assert workers
    server.stop()
    assert server.server.task_dispatcher.threads == set()
    conn.close()


def _hammer(port: int, done: threading.Event, errors: list[BaseException]) -> None:
    """GET /hello until ``done`` or until the server goes away; anything unexpected goes to ``errors``."""
    while not done.is_set():
        try:
            _get(port, "/hello")
        except (OSError, http.client.HTTPException):
            return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            return


def test_stop_while_many_requests_are_in_flight_raises_nothing_in_any_thread(
        caplog: pytest.LogCaptureFixture) -> None:
    """The failures this guards against: the loop polling sockets already closed under it, and a
    worker waking the loop through a pipe already closed (waitress logs that as an error)."""
    caplog.set_level(logging.ERROR, logger="waitress")
    for _ in range(15):
        server = _server(_app(threading.Event())).start()
        done = threading.Event()
        errors: list[BaseException] = []
        clients = [threading.Thread(target=_hammer, args=(server.port, done, errors)) for _ in range(6)]
        for client in clients:
            client.start()
        assert _get(server.port, "/hello") == b"hello"
        server.stop()
        done.set()
        for client in clients:
            client.join(30)
        assert errors == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("waitress")] == []
