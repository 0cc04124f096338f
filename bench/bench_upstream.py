"""Upstream benchmark: drain a 10,000-record backlog from the outbox to acknowledged, over loopback.

A unit's journal gets 10,000 upstream records (2,000 with ``quick``) while the
link is down; then ``Upstream.drain_once`` sends them (gzip batches of 2,000)
to the real receiver (``receiver.app.create_app`` on SQLite, served by
waitress on 127.0.0.1) until every record is covered by a verified receipt.
Two passes, each on a fresh receiver and journal:

* **timed pass**, straight to the receiver: seconds from first send to the
  last verified receipt. Baseline: the time to merely Ed25519-sign the same
  records' bytes in this process (the cheapest work any producer must do).
  Target: under 3 s for 10,000 records.
* **counted pass**, through a byte-counting TCP relay: bytes on the wire per
  record (requests and answers, HTTP headers included, both directions).
  Baseline: the record's signed line uncompressed (what an uncompressed
  transfer would carry at the very least). Target: under 250 bytes.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core import events as ev
from device.hardware.clock import SystemClock
from device.keys import write_private
from device.store.journal import Journal
from device.upstream.service import Upstream
from device.upstream.uplink import HttpUplink
from device.webserver import ServerThread
from protocol.keys import key_id, public_b64

STATION = "KG-BENCH"


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-upstream-") as tmp:
        seconds, lines = _pass(Path(tmp) / "timed", count, relay=False)
        wire, _ = _pass(Path(tmp) / "counted", count, relay=True)
    sign = _sign_time(lines)
    raw = sum(len(line.encode("utf-8")) + 1 for line in lines) / count
    per_record = wire / count
    return [
        {"name": f"upstream drain {count} records to acknowledged, s (baseline: signing them)",
         "value": seconds, "unit": "s", "baseline": sign, "ratio": seconds / sign},
        {"name": "upstream bytes on the wire per record (baseline: uncompressed signed line)",
         "value": per_record, "unit": "B/record", "baseline": raw, "ratio": per_record / raw},
    ]


def _pass(directory: Path, count: int, relay: bool) -> tuple[float, list[str]]:
    """Drain ``count`` records; returns (seconds, lines) or (wire bytes, lines) for the relay pass."""
    device = Ed25519PrivateKey.generate()
    with _receiver(directory / "rx", device) as (port, receiver_key):
        with _relay(port) if relay else _direct(port) as (target, counter):
            journal = Journal(directory / "journal.db", STATION)
            uplink = HttpUplink(url=f"http://127.0.0.1:{target}", station=STATION, mode="simulation", timeout=60)
            up = Upstream(journal=journal, key=device, station_id=STATION,
                          receiver_public_key=receiver_key.public_key(), uplink=uplink, clock=SystemClock())
            up.attach()
            for start in range(0, count, 1_000):
                journal.append([ev.Annotation("bench", f"turnout note {n}") for n in range(start, start + 1_000)],
                               time.time())
            began = time.perf_counter()
            result = up.drain_once(force=True)
            elapsed = time.perf_counter() - began
            if result.waiting or result.delivered_through != count:
                raise RuntimeError(f"drain incomplete: {result}")
            lines = [r.line() for r in up.outbox.records(1, count)]
            up.close()
            journal.close()
        return (float(counter[0]) if relay else elapsed), lines


def _sign_time(lines: list[str]) -> float:
    key = Ed25519PrivateKey.generate()
    data = [line.partition(" ")[2].encode("utf-8") for line in lines]
    began = time.perf_counter()
    for item in data:
        key.sign(item)
    return time.perf_counter() - began


@contextmanager
def _receiver(directory: Path, device: Ed25519PrivateKey) -> Iterator[tuple[int, Ed25519PrivateKey]]:
    import waitress

    from receiver.app import create_app
    from receiver.registry import DeviceEntry, Registry

    directory.mkdir(parents=True)
    cec, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    registry = Registry()
    registry.add(DeviceEntry(station=STATION, serial="SN-BENCH", public_key=public_b64(device.public_key()),
                             key_id=key_id(device.public_key()), software="bench", enrolled_at="2026-01-01T00:00:00Z"))
    registry.sign_and_save(directory / "registry.json", cec)
    write_private(directory / "receiver.key", key)
    app = create_app({"DATABASE_URL": str(directory / "receiver.db"),
                      "REGISTRY_PATH": str(directory / "registry.json"),
                      "CEC_PUBLIC_KEY": public_b64(cec.public_key()),
                      "RECEIVER_KEY_PATH": str(directory / "receiver.key")})
    server = ServerThread(waitress.create_server(app, host="127.0.0.1", port=0, threads=4)).start()
    try:
        yield server.port, key
    finally:
        server.stop()
        app.extensions["pollbox_receiver"].storage.close()


@contextmanager
def _direct(port: int) -> Iterator[tuple[int, list[int]]]:
    yield port, [0]


@contextmanager
def _relay(port: int) -> Iterator[tuple[int, list[int]]]:
    """A transparent TCP relay that counts every byte it carries, both ways."""
    listener = socket.create_server(("127.0.0.1", 0))
    counter = [0]
    lock = threading.Lock()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with lock:
                    counter[0] += len(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            dst.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], counter
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
