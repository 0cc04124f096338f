"""Foundation benchmarks: durable journal appends, check-in latency, memory and start-up.

- ``journal_appends_per_s``: one event per durable transaction through
  ``Journal.append`` (hashing, canonical JSON, triggers), against plain SQLite
  inserts of the same rows with the same durability (WAL, synchronous=FULL,
  one transaction each) into a plain table of the same database file, in
  short alternating blocks. Target ratio >= 0.8.
- ``checkin_to_armed_p50/p99``: from a decoded payload to "slot armed" with the
  check-in committed, against the latency of one plain durable SQLite insert.
  Target p99 < 5 ms.
- ``appliance_rss_3000``: resident memory of a process that loaded a 3,000-voter
  package and started, against a bare interpreter. Target < 60 MB.
- ``start_to_ready``: process start to a started appliance, against starting a
  bare interpreter. Target < 1.5 s.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
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
    from device.appliance import build_appliance
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


CHILD = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from device.appliance import build_appliance
from device.config import load_config
app = build_appliance(load_config(Path(sys.argv[1])))
app.start(background=False)
ready = time.perf_counter() - t0
rss = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024
print(json.dumps({"ready": ready, "rss": rss}))
app.stop()
"""
BARE = "import time; print(int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024)"


def _timed(args: list[str]) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True, env=env).stdout
    return time.perf_counter() - t, out


def bench_process(tmp: Path) -> list[dict[str, object]]:
    from device.demo import make_demo_station
    config = make_demo_station(tmp / "mem", voters=3000)
    _timed(["-c", CHILD, str(config)])  # first start creates the journal; measure a normal restart
    runs = [_timed(["-c", CHILD, str(config)]) for _ in range(3)]
    bare = [_timed(["-c", BARE]) for _ in range(3)]
    wall = statistics.median(r[0] for r in runs)
    rss = statistics.median(json.loads(r[1])["rss"] for r in runs) / 2**20
    bare_wall = statistics.median(b[0] for b in bare)
    bare_rss = statistics.median(int(b[1]) for b in bare) / 2**20
    return [entry("appliance_rss_3000_voters (vs bare python)", rss, "MB", bare_rss),
            entry("start_to_ready (process start to started appliance, vs bare python start)", wall, "s", bare_wall)]


def run(quick: bool = False) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = bench_appends(tmp, 300 if quick else 2000)
        out += bench_checkin(tmp, 200 if quick else 1000)
        out += bench_process(tmp)
    return out
