"""Voter list import speed: rows per second for 100,000 rows, against a plain csv.reader pass.

The baseline is a bare ``csv.reader`` pass over the same file in the same run
(no checks, no hashing), so the ratio shows what the checks and keyed hashes
cost on this machine. ``quick`` uses 20,000 rows.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from provisioning.samplelist import write_sample_csv
from provisioning.voterlist import import_csv


def _plain_pass(path: Path) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def run(quick: bool = False) -> list[dict[str, Any]]:
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
    return [{"name": f"voter list import, {rows} rows (baseline: plain csv.reader pass)", "value": rate,
             "unit": "rows/s", "baseline": plain, "ratio": rate / plain}]
