"""Receiver ingest over real HTTP, the way units reach it: ``pollbox-receiver serve`` (waitress) in its own process.

Stations send gzip batches concurrently, each station its own batches in
order over one kept-alive connection, the way units do. Two batch sizes:
3 records (a unit during the day sends 2-4 at a time) and 50 (a unit
catching up at close of polls). Records per second counts records stored
and acknowledged (HTTP 200 with a receipt) over the wall time of the whole
send.

The baseline, measured in the same run while the server is idle, is the raw
Ed25519 verification rate of the same records on one thread with the
library the receiver uses (libsodium through PyNaCl), parsing excluded: the
limit of one core. The server may use both cores (libsodium lets go of
Python's global lock while it verifies), so a ratio above 1 is possible;
the client threads share the same two cores.

Beside each rate, the receiver process's CPU time per record (user and
system, from ``/proc``, over the same send) against the CPU time of one raw
verification: a figure that depends much less on what else runs on the
machine than the rates do (on a busy machine every rate falls, this one
hardly moves). Its ratio is raw verify CPU over receiver CPU per record: 1
would mean the receiver spends nothing but the verification. The entry's
``detail`` says how many cores the receiver and the sending clients used
(measured values stay out of ``name``, which is the same in every run).

Each database is measured with one receiver process of 16 threads and with
``serve --processes 2`` (two processes of 8 threads on one port, the
kernel spreading the stations' connections over them); the scale-out entry
compares the two at batches of 50. On PostgreSQL, beside the receiver's CPU per
record, the database server's (the postmaster and every backend, from
``/proc``): the receiver's figure alone leaves out the work it hands over;
its ``detail`` says how many cores the database server used.

SQLite (WAL, ``synchronous=FULL``) always; PostgreSQL (a local throwaway
server, durable commits) when its server binary is installed.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.bench_receiver import _fleet, receiver_files
from protocol.batch import encode_batch
from protocol.envelope import SignedRecord
from receiver.pgcluster import ClusterError, start_cluster

SERVER_THREADS = 16
"""waitress threads: ``pollbox-receiver serve``'s default."""
CLIENTS = 16
"""Stations sending at the same time."""


def run(quick: bool = False) -> list[dict[str, Any]]:
    stations, per_station = (16, 150) if quick else (32, 300)
    keys, streams = _fleet(stations, per_station)
    directory = Path(tempfile.mkdtemp(prefix="pollbox-bench-http-"))
    results: list[dict[str, Any]] = []
    try:
        args = _files(directory, keys)
        one = _database("SQLite", str(directory / "receiver.db"), args, keys, streams)
        two = _database("SQLite", str(directory / "receiver-2.db"), args, keys, streams, processes=2)
        results += [*one, *two, _scale_out("SQLite", one, two)]
        try:
            cluster = start_cluster(durable=True)
        except ClusterError as exc:
            print(f"   ingest_http: PostgreSQL skipped: {exc}")
        else:
            try:
                server_cpu = lambda: _server_cpu(cluster.directory / "data" / "postmaster.pid")  # noqa: E731
                one = _database("PostgreSQL", cluster.create_database(), args, keys, streams, server_cpu=server_cpu)
                two = _database("PostgreSQL", cluster.create_database(), args, keys, streams, processes=2,
                                server_cpu=server_cpu)
                results += [*one, *two, _scale_out("PostgreSQL", one, two)]
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def _database(name: str, db: str, args: list[str], keys: list[Ed25519PrivateKey],
              streams: list[list[SignedRecord]], processes: int = 1,
              server_cpu: Callable[[], float] | None = None) -> list[dict[str, Any]]:
    """Batches of 3 for the first half of every station's records, then batches of 50 for the second half.

    With ``processes`` 2, ``serve --processes 2`` of half the threads each (the same threads in all).
    """
    half = len(streams[0]) // 2
    rows = []
    threads = max(1, SERVER_THREADS // processes)
    server = Served([*args, "--db", db], threads=threads, processes=processes)
    served_by = (f"{SERVER_THREADS} server threads" if processes == 1
                 else f"{processes} receiver processes of {threads} threads")
    with server as url:
        for size, part in ((3, slice(0, half)), (50, slice(half, None))):
            records = [s[part] for s in streams]
            count = sum(map(len, records))
            raw, raw_cpu = _raw_rate(keys, records)
            batches = [[gzip.compress(encode_batch(s[i:i + size])) for i in range(0, len(s), size)] for s in records]
            database = server_cpu() if server_cpu else 0.0
            cpu, own, start = server.cpu_seconds(), _own_cpu(), time.perf_counter()
            rate = _send([url], batches, count)
            wall = time.perf_counter() - start
            used, clients = server.cpu_seconds() - cpu, (_own_cpu() - own) / wall
            database = (server_cpu() - database) if server_cpu else 0.0
            rows.append({"name": f"ingest over HTTP {name}, batches of {size}, {CLIENTS} stations at once, "
                                 f"{served_by} (vs raw libsodium verify, one thread)",
                         "value": round(rate, 1), "unit": "records/s", "baseline": round(raw, 1),
                         "ratio": round(rate / raw, 3)})
            if used > 0:
                rows.append({"name": f"receiver CPU per record over HTTP, {name}, batches of {size}, {served_by} "
                                     "(vs CPU of one raw libsodium verify)",
                             "value": round(used / count * 1e6, 1), "unit": "us/record",
                             "baseline": round(raw_cpu * 1e6, 1), "ratio": round(raw_cpu / (used / count), 3),
                             "detail": {"receiver_cores": round(used / wall, 2), "client_cores": round(clients, 2)}})
            if database > 0:
                rows.append({"name": f"database server CPU per record over HTTP, {name}, batches of {size}, "
                                     f"{served_by} (vs CPU of one raw libsodium verify)",
                             "value": round(database / count * 1e6, 1), "unit": "us/record",
                             "baseline": round(raw_cpu * 1e6, 1), "ratio": round(raw_cpu / (database / count), 3),
                             "detail": {"database_server_cores": round(database / wall, 2)}})
    return rows


def _scale_out(name: str, one: list[dict[str, Any]], two: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches of 50 through two receiver processes sharing one database and port, against one process
    (both measured in this run, each against its own raw verify: the ratio of their ratios, so a change of
    the machine's load between the two runs counts less)."""
    first, second = (next(r for r in rows if "batches of 50" in r["name"] and r["unit"] == "records/s")
                     for rows in (one, two))
    return {"name": f"ingest over HTTP {name}, batches of 50, two receiver processes of {SERVER_THREADS // 2} "
                    f"threads sharing one database and port (vs one process of {SERVER_THREADS}; rates relative "
                    "to raw verify in the same run)",
            "value": second["ratio"], "unit": "of raw verify", "baseline": first["ratio"],
            "ratio": round(second["ratio"] / first["ratio"], 3)}


def _files(directory: Path, keys: list[Ed25519PrivateKey]) -> list[str]:
    cec_public = receiver_files(directory, keys)
    return ["--registry", str(directory / "registry.json"), "--cec-public-key", cec_public,
            "--key", str(directory / "receiver.key")]


class Served:
    """``pollbox-receiver serve`` in its own process (``processes`` of them on one port) on a free loopback port."""

    def __init__(self, args: list[str], threads: int = SERVER_THREADS, processes: int = 1) -> None:
        self.args, self.threads, self.processes = args, threads, processes

    def __enter__(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", *self.args, "--port", str(port),
                                      "--threads", str(self.threads), "--processes", str(self.processes)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/tree/head", timeout=5):
                    if self.processes == 1 or len(self._pids()) == self.processes + 1:
                        return url
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError("the benchmark receiver did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def _pids(self) -> list[int]:
        """The server process and its children (the receiver processes of ``--processes``)."""
        pid = self.proc.pid
        try:
            return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        except OSError:
            return [pid]

    def cpu_seconds(self) -> float:
        """User and system CPU the server's processes have used so far (Linux ``/proc``; 0 where it is missing)."""
        total = 0.0
        for pid in self._pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def _server_cpu(pid_file: Path) -> float:
    """User and system CPU of a PostgreSQL server so far: its postmaster and every process under it (``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    todo, total = [int(pid_file.read_text().split()[0])], 0.0
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _raw_rate(keys: list[Ed25519PrivateKey], streams: list[list[SignedRecord]]) -> tuple[float, float]:
    """(verifications per second, CPU seconds per verification) of the raw verify on this thread."""
    publics = [k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in keys]
    count, start, cpu = 0, time.perf_counter(), time.thread_time()
    for public, records in zip(publics, streams, strict=True):
        for record in records:
            nacl.bindings.crypto_sign_open(record.signature + record.data, public)
            count += 1
    return count / (time.perf_counter() - start), (time.thread_time() - cpu) / count


def _send(urls: list[str], per_station: list[list[bytes]], total: int) -> float:
    """Every station's batches, ``CLIENTS`` stations at a time, client n to server n modulo their number;
    records/s acknowledged."""
    servers = [url.removeprefix("http://").split(":") for url in urls]
    todo = list(range(len(per_station)))
    lock, failures = threading.Lock(), []

    def client(n: int) -> None:
        host, port = servers[n % len(servers)]
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while True:
            with lock:
                if not todo:
                    break
                station = todo.pop(0)
            for body in per_station[station]:
                conn.request("POST", "/api/v1/records", body=body,
                             headers={"Content-Type": "application/x-pollbox-batch", "Content-Encoding": "gzip"})
                reply = conn.getresponse()
                answer = reply.read()
                if reply.status != 200:
                    failures.append(answer[:200])
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"benchmark batches refused: {failures[:3]}")
    return total / elapsed


if __name__ == "__main__":
    for entry in run(quick=True):
        print(entry)
