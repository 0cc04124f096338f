"""Provisioning speed: the voter list import, and building every station's package at once.

1. Rows per second importing 100,000 rows. The baseline is a bare ``csv.reader``
   pass over the same file in the same run (no checks, no hashing), so the ratio
   shows what the checks and keyed hashes cost on this machine. ``quick``: 20,000 rows.
2. Stations packaged per second by ``cec packages`` (``bulk.build_all``) for a
   plan of 50 stations of 1,500 voters each. The baseline builds the same
   stations in the same run by calling ``package.build_station`` (what
   ``cec package`` runs) in a loop, so the ratio is the bulk command's overhead
   (up-front checks, partial folder and rename, fsyncs, manifest) or gain.
   ``quick``: 10 stations of 500 voters.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provisioning.bulk import BulkOrder, build_all
from provisioning.election import ElectionPlan, load_plan
from provisioning.package import build_station
from provisioning.samplelist import write_sample_csv
from provisioning.voterlist import import_csv

PLAN = """
[election]
id = "kg-bench"
name = "Benchmark election"
poll_date = "2026-11-29"
opens = "08:00"
closes = "20:00"
timezone = "Asia/Bishkek"
expires_at = "2099-12-31T00:00:00Z"

[receiver]
url = "http://127.0.0.1:8090"
public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
"""
STATION = """
[[stations]]
id = "{id}"
name = "Station {id}"
region = "Bishkek"
"""


def _plain_pass(path: Path) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _bench_plan(root: Path, stations: int, voters: int) -> ElectionPlan:
    ids = [f"KG-{n:04d}" for n in range(1, stations + 1)]
    (root / "election.toml").write_text(PLAN + "".join(STATION.format(id=sid) for sid in ids))
    (root / "lists").mkdir()
    for n, sid in enumerate(ids, 1):
        write_sample_csv(root / "lists" / f"{sid}.csv", sid, voters, seed=n)
    return load_plan(root / "election.toml")


def _single_loop(plan: ElectionPlan, root: Path, key: Ed25519PrivateKey, out: Path) -> float:
    start = time.perf_counter()
    for sid in plan.stations:
        build_station(plan, sid, root / "lists" / f"{sid}.csv", key, out / sid / "pollbox", time.time())
    return len(plan.stations) / (time.perf_counter() - start)


def _bulk_run(plan: ElectionPlan, root: Path, key: Ed25519PrivateKey, out: Path) -> float:
    start = time.perf_counter()
    result = build_all(plan, key, BulkOrder(root / "lists", out))
    rate = len(plan.stations) / (time.perf_counter() - start)
    if result.count("built") != len(plan.stations):
        raise RuntimeError(f"benchmark plan did not build: {result.summary()}")
    return rate


def _stations_per_second(quick: bool) -> dict[str, Any]:
    """Best of two alternating passes each, so a neighbour's load on a shared machine skews neither side."""
    stations, voters = (10, 500) if quick else (50, 1_500)
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = _bench_plan(root, stations, voters)
        bulk = single = 0.0
        for n in range(2):
            bulk = max(bulk, _bulk_run(plan, root, key, root / f"bulk{n}"))
            single = max(single, _single_loop(plan, root, key, root / f"single{n}"))
    return {"name": f"cec packages, {stations} stations x {voters} voters (baseline: cec package's function in a loop)",
            "value": bulk, "unit": "stations/s", "baseline": single, "ratio": bulk / single}


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [_import_rate(quick), _stations_per_second(quick)]


def _import_rate(quick: bool) -> dict[str, Any]:
    rows = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "voters.csv"
        write_sample_csv(path, "KG-0001", rows, seed=11)
        start = time.perf_counter()
        _plain_pass(path)
        plain = rows / (time.perf_counter() - start)
        start = time.perf_counter()
        result = import_csv(path, "KG-0001", os.urandom(32))
        rate = rows / (time.perf_counter() - start)
    if not result.ok:
        raise RuntimeError(f"benchmark list did not import: {result.errors[:3]}")
    return {"name": f"voter list import, {rows} rows (baseline: plain csv.reader pass)", "value": rate,
            "unit": "rows/s", "baseline": plain, "ratio": rate / plain}
