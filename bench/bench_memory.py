"""Peak memory against size: voter list import, journal verify, package build, export, receiver start.

Each figure is the peak resident set (``VmHWM``, Linux; ``ru_maxrss`` would
carry over the benchmark process's own peak) of a fresh Python process doing
one job, in MB. The baseline is a fresh process of the same
kind in the same run that imports the same modules and only reads the same
input without doing the job (a bare ``csv.reader`` pass over the list; a
``SELECT`` over the journal's rows), so ``ratio`` near 1 means the job adds
next to nothing, and equal values at every size mean memory does not grow
with the work.

* ``voter list import peak RSS, N rows``: ``import_csv`` then streaming every
  entry out (``iter_entries``), as a region-wide check does;
* ``journal verify peak RSS, N events``: ``verify_journal`` of a journal of a
  station of 3,000 voters (each admitted and voting) and then uplink status
  changes up to N events: the station's state holds one entry per voter,
  bounded by the voter list, and the rows are read as a stream.

* ``receiver start, new registry, N stations``: a receiver process's start
  (``build_receiver`` on SQLite) on a signed device registry it has never
  met: CEC signature, checks, and indexing it in the database, as a stream
  (``receiver/registry_stream.py``); the same work as ``pollbox-receiver
  registry-import``; ``receiver start, indexed registry, N stations``: the
  next start on the same file (or a start after ``registry-import``), which
  finds it indexed and reads nothing of it but its SHA-256. In seconds, in
  peak RSS (``VmHWM``: it includes the registry file's own pages while they
  are mapped to check the signature, which are the kernel's file cache; the
  file's size is in ``detail``), and in peak private memory (``RssAnon``,
  sampled every 5 ms by a thread of the process: the memory the process
  itself allocates). The baseline is a process that only parses the same
  file with ``json.loads``.

* ``station package build peak RSS, N voters``: ``build_station`` (what
  ``pollbox-provision cec package`` runs) of one station with a list of N
  voters; baseline the same ``csv.reader`` pass. The package is signed and
  checked through a read-only mapping of its file, whose pages count in the
  peak RSS (the file's size is in ``detail``); ``station package build peak
  private memory`` is the process's own memory apart from them (``RssAnon``
  sampled every 5 ms);
* ``station export of every record peak RSS, N records``: the body of
  ``Upstream.export(everything=True)`` (the chair's USB export,
  ``device.upstream.service.export_outbox``) over an outbox of N signed
  records: stream them into the file, sync it, read it back and compare with
  the outbox, rename it; baseline a process that only reads the outbox's rows.

Sizes: 10,000 and 100,000 (``quick``: 10,000 and 30,000); 1,000,000 too when
``POLLBOX_BENCH_FULL=1`` is set (it takes minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOTERS = 3_000

_IMPORT = """
import os, sys
from pathlib import Path
from provisioning.voterlist import import_csv
result = import_csv(Path(sys.argv[1]), "KG-0001", os.urandom(32))
assert result.ok and sum(1 for _ in result.iter_entries()) == int(sys.argv[2])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_IMPORT_BASE = """
import csv, sys
from provisioning.voterlist import import_csv
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    assert sum(1 for _ in csv.reader(f)) == int(sys.argv[2]) + 1
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_IMPORT_BASE_ANON = """
import csv, sys, time
from provisioning.voterlist import import_csv
start = time.perf_counter()
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    assert sum(1 for _ in csv.reader(f)) == int(sys.argv[2]) + 1
status = open("/proc/self/status").read()
print(status.split("RssAnon:")[1].split()[0], time.perf_counter() - start, status.split("VmHWM:")[1].split()[0])
"""
_VERIFY = """
import sys
from pathlib import Path
from device.store.journal import Journal
from device.store.verify import verify_journal
journal = Journal(Path(sys.argv[1]), "BENCH")
report = verify_journal(journal)
assert report.ok and report.events == int(sys.argv[2]), report.sentence()
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_SAMPLER = """anon, done = [0], threading.Event()
def sample():  # the private (anonymous) part of the resident set, which VmHWM does not give apart
    while True:
        anon[0] = max(anon[0], int(open("/proc/self/status").read().split("RssAnon:")[1].split()[0]))
        if done.wait(0.005):
            return
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
"""
"""Started first in a measured child: samples its peak private memory (RssAnon), apart from mapped file pages."""
_REGISTRY = """
import base64, sys, threading, time
from pathlib import Path
from receiver.service import build_receiver
{sampler}start = time.perf_counter()
receiver = build_receiver({"DATABASE_URL": sys.argv[4], "REGISTRY_PATH": sys.argv[1],
                           "CEC_PUBLIC_KEY": base64.b64encode(bytes.fromhex(sys.argv[2])).decode(),
                           "RECEIVER_KEY_PATH": sys.argv[5]})
assert len(receiver.registry()) == int(sys.argv[3])
seconds = time.perf_counter() - start
receiver.storage.close()
done.set()
sampler.join()
print(anon[0], seconds, open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_REGISTRY_BASE = """
import json, sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from receiver.registry import Registry
start = time.perf_counter()
doc = json.loads(Path(sys.argv[1]).read_bytes())
assert len(doc["devices"]) == int(sys.argv[3])
status = open("/proc/self/status").read()
print(status.split("RssAnon:")[1].split()[0], time.perf_counter() - start, status.split("VmHWM:")[1].split()[0])
"""
_PACKAGE = """
import sys, threading, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from provisioning.election import load_plan
from provisioning.package import build_station
{sampler}start = time.perf_counter()
built = build_station(load_plan(Path(sys.argv[1])), "KG-0001", Path(sys.argv[2]), Ed25519PrivateKey.generate(),
                      Path(sys.argv[3]), time.time())
assert built.voters == int(sys.argv[4])
seconds = time.perf_counter() - start
done.set()
sampler.join()
print(anon[0], seconds, open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_EXPORT = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from device.upstream.outbox import Outbox
from device.upstream.service import export_outbox
outbox = Outbox(Path(sys.argv[1]), key=Ed25519PrivateKey.from_private_bytes(bytes(32)), station_id="KG-0001")
last = outbox.last_seq()
assert last == int(sys.argv[3])
# the body of Upstream.export(everything=True): stream, write synced, read back and compare, rename
written = export_outbox(outbox, Path(sys.argv[2]), 1, last, created_at=1_800_000_000.0)
assert written.stat().st_size > 0
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_EXPORT_BASE = """
import sqlite3, sys
from device.upstream.export import write_export
from device.upstream.outbox import Outbox
conn = sqlite3.connect(sys.argv[1])
assert sum(1 for _ in conn.execute("SELECT line FROM outbox ORDER BY seq")) == int(sys.argv[3])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
_VERIFY_BASE = """
import sys
from pathlib import Path
from device.store.journal import Journal
from device.store.verify import verify_journal
journal = Journal(Path(sys.argv[1]), "BENCH")
assert sum(1 for _ in journal.rows()) == int(sys.argv[2])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def run(quick: bool = False) -> list[dict[str, Any]]:
    sizes = [10_000, 30_000] if quick else [10_000, 100_000]
    if os.environ.get("POLLBOX_BENCH_FULL") == "1":
        sizes.append(1_000_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows.append(_import_row(Path(tmp), n))
        for n in sizes:
            rows.append(_verify_row(Path(tmp), n))
        for n in sizes:
            rows += _package_rows(Path(tmp), n)
        for n in sizes:
            rows.append(_export_row(Path(tmp), n))
        for n in [1_000, *sizes]:
            rows += _registry_rows(Path(tmp), n)
    return rows


def peak_mb(script: str, *args: str) -> float:
    """Peak RSS in MB of a fresh interpreter running ``script`` with ``args``."""
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return int(out.stdout.split()[-1]) / 1024.0


def _import_row(tmp: Path, n: int) -> dict[str, Any]:
    from provisioning.samplelist import write_sample_csv
    path = tmp / f"voters-{n}.csv"
    write_sample_csv(path, "KG-0001", n, seed=3)
    start = time.perf_counter()
    value = peak_mb(_IMPORT, str(path), str(n))
    seconds = time.perf_counter() - start
    base = peak_mb(_IMPORT_BASE, str(path), str(n))
    return {**_row(f"voter list import peak RSS, {n} rows (baseline: csv.reader pass)", value, base),
            "detail": {"seconds": round(seconds, 2)}}


def _verify_row(tmp: Path, n: int) -> dict[str, Any]:
    path = tmp / f"journal-{n}.db"
    write_journal(path, n)
    value = peak_mb(_VERIFY, str(path), str(n))
    base = peak_mb(_VERIFY_BASE, str(path), str(n))
    return _row(f"journal verify peak RSS, {n} events (baseline: reading the rows)", value, base)


def _package_rows(tmp: Path, n: int) -> list[dict[str, Any]]:
    from bench.bench_provisioning import PLAN, STATION
    from provisioning.samplelist import write_sample_csv
    plan, path = tmp / f"election-{n}.toml", tmp / f"package-voters-{n}.csv"
    plan.write_text(PLAN + STATION.format(id="KG-0001"))
    write_sample_csv(path, "KG-0001", n, seed=5)
    anon_kb, seconds, kb = _timed_anon(_PACKAGE, str(plan), str(path), str(tmp / f"package-{n}"), str(n))
    base_anon_kb, _, base_kb = _timed_anon(_IMPORT_BASE_ANON, str(path), str(n))
    size = (tmp / f"package-{n}" / "station.pkg").stat().st_size
    return [{**_row(f"station package build peak RSS, {n} voters (baseline: csv.reader pass)", kb / 1024,
                    base_kb / 1024), "detail": {"seconds": round(seconds, 2), "file_mb": round(size / 2 ** 20, 1)}},
            _row(f"station package build peak private memory (RssAnon sampled every 5 ms), {n} voters "
                 "(baseline: csv.reader pass, its RssAnon)", anon_kb / 1024, base_anon_kb / 1024)]


def _export_row(tmp: Path, n: int) -> dict[str, Any]:
    path = tmp / f"outbox-{n}.db"
    write_outbox(path, n)
    value = peak_mb(_EXPORT, str(path), str(tmp / f"export-{n}.txt"), str(n))
    base = peak_mb(_EXPORT_BASE, str(path), str(tmp / f"export-{n}.txt"), str(n))
    return _row(f"station export of every record peak RSS, {n} records (baseline: reading the outbox rows)",
                value, base)


def write_outbox(path: Path, records: int) -> None:
    """A station's outbox of ``records`` signed, chained records (annotations), as ``Outbox`` keeps them."""
    import sqlite3

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.upstream.outbox import SCHEMA
    from protocol.chain import ZERO_HASH
    from protocol.envelope import make_record
    key, prev = Ed25519PrivateKey.from_private_bytes(bytes(32)), ZERO_HASH
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    rows = []
    for seq in range(1, records + 1):
        record = make_record(key=key, station="KG-0001", seq=seq, prev=prev, at=1_800_000_000.0 + seq,
                             type_="annotation", body={"topic": "bench", "text": f"note {seq}",
                                                       "journal_seq": seq, "journal_hash": "0" * 64})
        rows.append((seq, seq, record.line(), record.hash))
        prev = record.hash
        if len(rows) == 10_000 or seq == records:
            conn.executemany("INSERT INTO outbox (seq, journal_seq, line, hash) VALUES (?, ?, ?, ?)", rows)
            conn.commit()
            rows = []
    conn.close()


def _registry_rows(tmp: Path, n: int) -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from device.keys import write_private
    from protocol.keys import key_id, public_b64
    from receiver.registry import DeviceEntry, Registry
    registry = Registry()
    for i in range(n):
        public = Ed25519PrivateKey.from_private_bytes(i.to_bytes(32, "big")).public_key()
        registry.add(DeviceEntry(f"KG-{i:07d}", f"SN-{i}", public_b64(public), key_id(public), "1.0",
                                 "2026-11-20T10:00:00.000000Z"))
    cec = Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x01")
    path = tmp / f"registry-{n}.json"
    registry.sign_and_save(path, cec)
    write_private(tmp / "receiver.key", Ed25519PrivateKey.generate())
    args = (str(path), cec.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(), str(n),
            str(tmp / f"receiver-{n}.db"), str(tmp / "receiver.key"))
    base_anon_kb, base_seconds, base_kb = _timed_anon(_REGISTRY_BASE, *args)
    rows = []
    for which in ("new registry", "indexed registry"):
        anon_kb, seconds, kb = _timed_anon(_REGISTRY, *args)
        rows += [{**_row(f"receiver start, {which}, peak RSS, {n} stations (baseline: json.loads of the file)",
                         kb / 1024, base_kb / 1024),
                  "detail": {"file_mb": round(path.stat().st_size / 2 ** 20, 1)}},
                 _row(f"receiver start, {which}, peak private memory (RssAnon sampled every 5 ms), {n} stations "
                      "(baseline: json.loads of the file, its RssAnon)", anon_kb / 1024, base_anon_kb / 1024),
                 {"name": f"receiver start, {which}, time, {n} stations (baseline: json.loads of the file)",
                  "value": round(seconds, 4), "unit": "s", "baseline": round(base_seconds, 4),
                  "ratio": round(seconds / base_seconds, 3)}]
    return rows


def _timed_anon(script: str, *args: str) -> tuple[int, float, int]:
    """Run ``script`` (``{sampler}`` in it is ``_SAMPLER``) in a child: peak RssAnon in kB, seconds, VmHWM in kB."""
    child = [sys.executable, "-c", script.replace("{sampler}", _SAMPLER), *args]
    out = subprocess.run(child, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    anon, seconds, kb = out.stdout.split()[-3:]
    return int(anon), float(seconds), int(kb)


def write_journal(path: Path, events: int) -> None:
    """A station's journal of ``events`` events: start, open, 3,000 voters voting, then uplink changes."""
    from device.core import events as ev
    from device.store.journal import Journal
    journal = Journal(path, "BENCH", anchored=False)
    at = 1_800_000_000.0
    todo: list[ev.Event] = [ev.DeviceStarted("bench", "BENCH"), ev.PollsOpened(0, 0)]
    for token in range(1, min(VOTERS, (events - 2) // 2) + 1):
        todo += [ev.VoterAdmitted(f"{token:064x}", token, "scan", token), ev.BallotCounted(token)]
    while len(todo) < events:
        todo.append(ev.DeviceStatusChanged("uplink", "down" if len(todo) % 2 else "up"))
    for start in range(0, events, 5_000):
        journal.append(todo[start:start + 5_000], at)
        at += 60.0
    journal.close()


def _row(name: str, value: float, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 1), "unit": "MB", "baseline": round(baseline, 1),
            "ratio": round(value / baseline, 3)}


if __name__ == "__main__":
    for entry in run(quick=True):
        print(entry)
