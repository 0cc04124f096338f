"""The open results export at a million stations: stations per second and peak memory, SQLite and PostgreSQL.

The database is filled the way the overview benchmark fills it (``bench_receiver.fill``: rows written
straight into ``stations``, an hour after close of polls), and then each closed station gets its close
report (``close_report`` JSON in its row) and its ``polls_closed`` record in ``records`` (a synthetic line,
never verified by the export), with the log's size covering them, so every closed station is exported with
its counts, hash and proof link. 1,000,000 stations (quick: 50,000).

Each export runs in its own process, which creates the receiver's Flask app on that database and streams
the whole download through the WSGI test client into nothing: the figure is stations per second and the
process's peak resident memory. The baselines, measured in the same run: for speed, the same keyset pages
read with no formatting at all (what the database alone allows); for memory, the peak of a process that
created the same app and answered one tree-head request (so the ratio is what the export adds: near 1
means constant memory). Peak memory is the child's ``VmHWM`` (its own address space's high-water mark).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bench.bench_receiver import fill, receiver_files
from receiver.pgcluster import ClusterError, start_cluster
from receiver.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
ROUTES = {"JSON": "/api/v1/results.json", "CSV": "/api/v1/results.csv", "NIST CDF": "/api/v1/results.cdf.json"}

CHILD = textwrap.dedent("""
    import json, sys, time
    from receiver.app import create_app
    from receiver.result_rows import ResultsReader
    config = json.loads(sys.argv[1])
    app = create_app(config)
    route = sys.argv[2]
    client = app.test_client()
    start = time.perf_counter()
    if route == "idle":
        client.get("/api/v1/tree/head").get_data()
        n = 0
    elif route == "raw":
        reader = ResultsReader(app.extensions["pollbox_receiver"].storage)
        n = sum(len(page) for page in reader.rows())
    else:
        response = client.get(route, buffered=False)
        n = 0
        for chunk in response.response:
            n += chunk.count(b"\\n")
        response.close()
    seconds = time.perf_counter() - start
    # VmHWM, not getrusage's ru_maxrss: a child's ru_maxrss starts from its parent's peak (kept across exec).
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"seconds": seconds, "lines": n, "peak_kib": peak}))
""")


def add_close_reports(storage: Storage) -> int:
    """Give every closed station its close report and its ``polls_closed`` record; returns how many."""
    postgres = storage.dialect.name == "postgresql"
    conn = storage.conn()
    closed = conn.execute("SELECT station, highest_seq, identified, ballots, alarms_open FROM stations "
                          "WHERE phase = 'closed' ORDER BY station").fetchall()
    reports, records = [], []
    for leaf, (station, seq, identified, ballots, alarms) in enumerate(closed):
        body = {"alarms_open": alarms, "alarms_total": alarms, "ballots": ballots, "difference": ballots - identified,
                "identified": identified, "journal_hash": "5e" * 32, "journal_seq": 2 * seq}
        report = json.dumps(body, sort_keys=True)
        fields = {"at": "2026-11-29T14:00:00.000000Z", "body": body, "key": "0123456789abcdef", "prev": "0" * 64,
                  "seq": seq, "station": station, "type": "polls_closed", "v": 1}
        line = "A" * 86 + " " + json.dumps(fields, sort_keys=True, separators=(",", ":"))
        reports.append((report, station))
        records.append((station, seq, f"{leaf:064x}", "polls_closed", fields["at"], 0.0, leaf, line, fields["key"]))
    mark = "%s" if postgres else "?"
    conn.execute("BEGIN")
    with conn.cursor() if postgres else _Same(conn) as cur:
        cur.executemany(f"UPDATE stations SET close_report = {mark} WHERE station = {mark}", reports)
        cur.executemany("INSERT INTO records (station, seq, hash, type, at, received_at, leaf_index, line, key_id) "
                        f"VALUES ({', '.join([mark] * 9)})", records)
    conn.execute(f"UPDATE tree SET size = {len(records)} WHERE id = 1")
    conn.execute("COMMIT")
    conn.execute("VACUUM ANALYZE" if postgres else "ANALYZE")
    return len(records)


class _Same:
    """SQLite's connection has ``executemany`` itself: a context manager handing it out as the cursor."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def _child(config: dict[str, Any], route: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), route], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _entries(config: dict[str, Any], db: str, count: int) -> list[dict[str, Any]]:
    label = f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"
    raw = _child(config, "raw")
    idle = _child(config, "idle")
    assert raw["lines"] == count, raw
    print(f"   results: {label} {db}: raw keyset pages {count / raw['seconds']:,.0f} stations/s; idle receiver "
          f"process peak {idle['peak_kib'] / 1024:.0f} MiB", flush=True)
    out = []
    for fmt, route in ROUTES.items():
        run = _child(config, route)
        rate, raw_rate = count / run["seconds"], count / raw["seconds"]
        print(f"   results: {fmt} {label} {db}: {run['seconds']:.1f} s, {rate:,.0f} stations/s, "
              f"peak {run['peak_kib'] / 1024:.0f} MiB", flush=True)
        out.append({"name": f"results export {fmt} {label} stations {db} (vs raw keyset pages)",
                    "value": round(rate), "unit": "stations/s", "baseline": round(raw_rate),
                    "ratio": round(rate / raw_rate, 4)})
        peak, idle_peak = run["peak_kib"] / 1024, idle["peak_kib"] / 1024
        out.append({"name": f"results export {fmt} {label} stations {db}, peak memory (vs idle receiver process)",
                    "value": round(peak, 1), "unit": "MiB", "baseline": round(idle_peak, 1),
                    "ratio": round(peak / idle_peak, 4)})
    return out


def _measure(directory: Path, url: str, db: str, count: int) -> list[dict[str, Any]]:
    storage, seconds = fill(url, count)
    try:
        closed = add_close_reports(storage)
    finally:
        storage.close()
    print(f"   results: {count} stations ({closed} closed) written to {db} in {seconds:.1f} s", flush=True)
    cec_public = receiver_files(directory, [])
    config = {"DATABASE_URL": url, "REGISTRY_PATH": str(directory / "registry.json"), "CEC_PUBLIC_KEY": cec_public,
              "RECEIVER_KEY_PATH": str(directory / "receiver.key")}
    return _entries(config, db, count)


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 50_000 if quick else 1_000_000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-results-") as tmp:
        directory = Path(tmp)
        results += _measure(directory, str(directory / "results.db"), "SQLite", count)
        try:
            cluster = start_cluster(durable=True)
        except ClusterError as exc:
            print(f"   results: PostgreSQL skipped: {exc}")
            return results
        try:
            results += _measure(directory, cluster.create_database(), "PostgreSQL", count)
        finally:
            cluster.stop()
    return results
