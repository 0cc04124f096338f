"""``pollbox-receiver serve --processes 2``: two receiver processes on one port, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rx_kit import BATCH, Setup, Unit

from protocol.batch import encode_batch
from protocol.receipts import verify_receipt
from receiver.processes import listening_sockets
from receiver.storage import open_storage
from tests.process_station import free_port

DEADLINE = 60.0
CONNECTIONS = 16


def until(check: object, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def units(setup: Setup) -> list[Unit]:
    """One station per connection, enrolled before the receiver starts."""
    found = [Unit(f"KG-{i:04d}") for i in range(100, 100 + CONNECTIONS)]
    setup.enroll(*found)
    return found


@pytest.fixture
def served(setup: Setup, db_url: str, units: list[Unit]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", *setup.cli_args(db_url), "--port", str(port),
                             "--threads", "2", "--processes", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the receiver stopped: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/tree/head", timeout=5):
                return len(children(proc.pid)) == 2
        except OSError:
            return False

    pids: list[int] = []
    try:
        until(answers, "two receiver processes answering")
        pids = children(proc.pid)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in pids:
            if _state(pid) != "Z":
                os.kill(pid, signal.SIGKILL)
        proc.stderr.close()  # type: ignore[union-attr]


def server_side_owner(port: int, client: socket.socket | None, pids: list[int]) -> int | None:
    """Which process holds the server end of ``client``'s connection (from /proc/net/tcp and the fds); None
    while no process has accepted it yet."""
    assert client is not None
    local = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and int(fields[2].split(":")[1], 16) == local:
            inode = fields[9]
    assert inode is not None
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_two_processes_share_the_port_and_store_each_record_once(served: tuple[subprocess.Popen[bytes], int],
                                                                  setup: Setup, db_url: str,
                                                                  units: list[Unit]) -> None:
    proc, port = served
    pids = children(proc.pid)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE) for _ in units]
    for conn in conns:
        conn.connect()
    until(lambda: all(server_side_owner(port, conn.sock, pids) for conn in conns), "every connection accepted")
    owners = [server_side_owner(port, conn.sock, pids) for conn in conns]
    assert set(owners) == set(pids)  # the kernel spread the connections over both processes
    first = owners.index(pids[0])
    other = owners.index(pids[1])
    shared = units[first].records(3)  # the same batch, sent through both processes
    batches = {n: [unit.records(3) for _ in range(2 if n in (first, other) else 3)] for n, unit in enumerate(units)}
    batches[first].insert(0, shared)
    batches[other].insert(0, shared)
    answers: dict[int, list[dict[str, object]]] = {n: [] for n in batches}
    for round_ in range(3):
        for n, conn in enumerate(conns):  # every connection's batch is in flight before any answer is read
            conn.request("POST", "/api/v1/records", body=encode_batch(batches[n][round_]),
                         headers={"Content-Type": BATCH})
        for n, conn in enumerate(conns):
            reply = conn.getresponse()
            doc = json.loads(reply.read())
            assert reply.status == 200, doc
            answers[n].append(doc)
    for conn in conns:
        conn.close()
    # The batch sent through both processes at once: stored by one, a duplicate for the other, receipted by both.
    both = (answers[first][0], answers[other][0])
    assert sorted((int(str(a["accepted"])), int(str(a["duplicates"]))) for a in both) == [(0, 3), (3, 0)]
    for doc in both:
        assert verify_receipt(str(doc["receipt"]), setup.receiver_key.public_key(), units[first].station) == 3
    storage = open_storage(db_url)
    try:
        assert storage.highest_seq(units[first].station) == 9
        assert storage.highest_seq(units[other].station) == 6
        assert all(storage.highest_seq(unit.station) == 9 for n, unit in enumerate(units) if n != other)
        leaves = storage.leaves()
        assert storage.count_records() == storage.tree()[0] == len(leaves) == 9 * (CONNECTIONS - 1) + 6
        assert [i for i, _ in leaves] == list(range(len(leaves)))
        assert len({line for _, line in leaves}) == len(leaves)
    finally:
        storage.close()


def test_port_0_gives_every_process_the_same_free_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and 0 not in ports
        with socket.create_connection(("127.0.0.1", ports.pop()), timeout=DEADLINE):
            pass
    finally:
        for sock in sockets:
            sock.close()


def test_a_stopped_receiver_stops_every_process(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, _ = served
    pids = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 0
    for pid in pids:
        until(lambda pid=pid: _state(pid) == "Z", f"process {pid} to end")


def test_a_process_that_dies_takes_the_receiver_down_for_a_restart(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, _ = served
    victim, survivor = children(proc.pid)
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=DEADLINE) != 0
    until(lambda: _state(survivor) == "Z", "the other process to end")


def test_a_parent_killed_outright_leaves_no_receiver_process(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, _ = served
    pids = children(proc.pid)
    proc.kill()
    proc.wait(timeout=DEADLINE)
    for pid in pids:
        until(lambda pid=pid: _state(pid) == "Z", f"process {pid} to end with its parent")


def _state(pid: int) -> str:
    """The process's state letter from /proc ("Z" also once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
