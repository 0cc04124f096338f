"""Foundation benchmarks: durable journal appends and check-in latency in-process.

- ``journal_appends_per_s``: one event per durable transaction through
  ``Journal.append`` (hashing, canonical JSON, triggers), against plain SQLite
  inserts of the same rows with the same durability (WAL, synchronous=FULL,
  one transaction each) into a plain table of the same database file, in
  short alternating blocks. Target ratio >= 0.8.
- ``checkin_to_armed_p50/p99``: from a decoded payload to "slot armed" with the
  check-in committed, against the latency of one plain durable SQLite insert.
  Target p99 < 5 ms.

Memory, start-up and check-in latency of the real ``pollbox run`` process, with
all its threads and the screen polled, are in ``bench_process.py``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from device.core import events as ev
from device.store.journal import Journal, connect

ROOT = Path(__file__).resolve().parents[1]


def entry(name: str, value: float, unit: str, baseline: float) -> dict[str, object]:
    return {"name": name, "value": round(value, 6), "unit": unit, "baseline": round(baseline, 6),
            "ratio": round(value / baseline, 4) if baseline else 0.0}


def _journal_block(j: Journal, n: int) -> float:
    event = ev.BallotCounted(None)
    t = time.perf_counter()
    for _ in range(n):
        j.append([event], 1_800_000_000.0)
    return time.perf_counter() - t


def _plain_block(conn: sqlite3.Connection, start: int, n: int) -> float:
    row = (1_800_000_000_000_000, "ballot_counted", ev.canonical(ev.body_of(ev.BallotCounted(None))).decode(),
           bytes(32), bytes(32))
    t = time.perf_counter()
    for i in range(start, start + n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO plain_events VALUES (?, ?, ?, ?, ?, ?)", (i, *row))
        conn.execute("COMMIT")
    return time.perf_counter() - t


def bench_appends(tmp: Path, n: int, blocks: int = 20) -> list[dict[str, object]]:
    """Short alternating blocks in the same database file and WAL, so the disk treats both sides alike."""
    journal = Journal(tmp / "journal.db", "BENCH")
    plain = connect(tmp / "journal.db")
    plain.execute("CREATE TABLE plain_events (seq INTEGER PRIMARY KEY, at_us INTEGER, kind TEXT, body TEXT, "
                  "prev_hash BLOB, hash BLOB)")
    size = max(1, n // blocks)
    j_time = p_time = 0.0
    for b in range(blocks):
        if b % 2:
            j_time += _journal_block(journal, size)
            p_time += _plain_block(plain, b * size + 1, size)
        else:
            p_time += _plain_block(plain, b * size + 1, size)
            j_time += _journal_block(journal, size)
    journal.close()
    plain.close()
    total = size * blocks
    return [entry("journal_appends_per_s (vs plain durable sqlite inserts)", total / j_time, "appends/s",
                  total / p_time)]


def _plain_insert_latency(path: Path, n: int) -> list[float]:
    conn = connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    out = []
    for i in range(n):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - t)
    conn.close()
    return out


def bench_checkin(tmp: Path, n: int) -> list[dict[str, object]]:
    from device.compose import build_appliance
    from device.config import load_config
    from device.demo import demo_pins, make_demo_station
    from device.hardware.interfaces import ScanRead

    config = make_demo_station(tmp / "station", voters=max(n, 3000))
    app = build_appliance(load_config(config))
    app.start(background=False)
    app.open_polls()
    latencies = []
    for pin in demo_pins(n):
        read = ScanRead(pin, "qr", "bench")
        t = time.perf_counter()
        decision = app.identify(read)
        latencies.append(time.perf_counter() - t)
        assert decision.outcome == "admitted" and app.sim.box.slot_open
        app.sim.box.drop()
    app.stop()
    base = sorted(_plain_insert_latency(tmp / "lat.db", n))
    lat = sorted(latencies)

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000

    return [entry("checkin_to_armed_p50 (vs one durable sqlite insert p50)", pct(lat, 0.5), "ms", pct(base, 0.5)),
            entry("checkin_to_armed_p99 (vs one durable sqlite insert p99)", pct(lat, 0.99), "ms", pct(base, 0.99))]


def run(quick: bool = False) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = bench_appends(tmp, 300 if quick else 2000)
        out += bench_checkin(tmp, 200 if quick else 1000)
    return out
