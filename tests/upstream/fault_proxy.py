"""A fault-injecting HTTP proxy on 127.0.0.1, between the uplink and the real receiver.

Each request the uplink sends is read whole, then handled by a fault drawn from
a seeded random generator: passed through, dropped, reset, answered 500,
forwarded with the answer lost or cut short, forwarded twice, delayed, stalled
past the client's timeout, or held back and replayed later, after newer
requests (reordering). Optionally the proxy terminates TLS with a test
certificate, so the uplink's pinned-CA HTTPS path is exercised too. Bytes on
the wire (client side, both directions) are counted for the benchmark.
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

FAULTS = ("pass", "drop", "reset", "error500", "lost_answer", "cut_answer", "duplicate", "delay", "stall", "hold")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Plan:
    """How often each fault happens (weights), and the random seed."""

    weights: dict[str, float] = field(default_factory=lambda: {"pass": 1.0})
    seed: int = 1
    delay: float = 0.02
    stall: float = 1.0


class FaultProxy:
    """Forwards HTTP/1.1 requests to ``target`` and injects the faults of ``plan``."""

    def __init__(self, target: tuple[str, int], plan: Plan, tls: ssl.SSLContext | None = None) -> None:
        self.target, self.plan, self.tls = target, plan, tls
        self.random = random.Random(plan.seed)
        self.counts: Counter[str] = Counter()
        self.bytes_in = self.bytes_out = 0
        self._held: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._clients: list[socket.socket] = []

    # Lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._threads[0].join(5)
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(5)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    # One client connection -----------------------------------------------------------

    def _serve(self, raw: socket.socket) -> None:
        with self._lock:
            self._clients.append(raw)
        try:
            client = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
        except (ssl.SSLError, OSError):
            raw.close()
            return
        try:
            with client, client.makefile("rb") as reader:
                while not self._stop.is_set():
                    request = self._read_request(reader)
                    if request is None or not self._handle(client, request):
                        return
        except (OSError, ValueError):
            return

    def _read_request(self, reader: BinaryIO) -> Request | None:
        line = reader.readline(65536)
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (header := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        body = reader.read(int(headers.get("Content-Length", "0")))
        with self._lock:
            self.bytes_in += len(line) + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2 + len(body)
        return Request(method, path, headers, body)

    def _choose(self) -> str:
        with self._lock:
            names = list(self.plan.weights)
            fault = self.random.choices(names, weights=[self.plan.weights[n] for n in names])[0]
            self.counts[fault] += 1
            return fault

    def _handle(self, client: socket.socket, request: Request) -> bool:
        """Apply one fault; returns False when the connection is finished."""
        fault = self._choose()
        if fault in ("drop", "reset", "error500", "hold"):
            return self._refuse(client, request, fault)
        if fault == "delay":
            self._stop.wait(self.plan.delay * self.random.random())
        answer = self._forward(request)
        if fault == "duplicate":
            answer = self._forward(request)
        self._replay_held()
        if fault == "stall":
            self._stop.wait(self.plan.stall)
            return False
        if fault == "lost_answer":
            return False
        if fault == "cut_answer":
            self._send(client, answer[: len(answer) // 2])
            return False
        self._send(client, answer)
        return True

    def _refuse(self, client: socket.socket, request: Request, fault: str) -> bool:
        if fault == "hold":
            with self._lock:
                self._held.append(request)
        if fault == "error500":
            self._send(client, _response(500, b'{"error":"unavailable","reason":"injected"}', keep=True))
            return True
        if fault in ("reset", "hold"):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False

    def _replay_held(self) -> None:
        """Forward some held-back requests now, after newer ones, in a shuffled order."""
        with self._lock:
            if not self._held or self.random.random() < 0.5:
                return
            held, self._held = self._held, []
            self.random.shuffle(held)
        for request in held:
            self._forward(request)

    def _forward(self, request: Request) -> bytes:
        conn = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(request.method, request.path, body=request.body or None, headers=headers)
            response = conn.getresponse()
            return _response(response.status, response.read(), keep=True)
        finally:
            conn.close()

    def _send(self, client: socket.socket, data: bytes) -> None:
        with self._lock:
            self.bytes_out += len(data)
        client.sendall(data)


def _response(status: int, body: bytes, keep: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n")
    return head.encode("latin-1") + body


@contextmanager
def running(proxy: FaultProxy) -> Iterator[FaultProxy]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
