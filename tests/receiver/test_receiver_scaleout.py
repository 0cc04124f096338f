"""The receiver behind waitress, and two receiver processes sharing one real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from flask import Flask
from rx_kit import BATCH, Setup, Unit
from test_receiver_merkle import naive_root

from device.webserver import ServerThread
from protocol.batch import encode_batch
from protocol.envelope import parse_line
from protocol.receipts import verify_receipt
from receiver.pgcluster import Cluster
from receiver.storage import open_storage


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app under a real waitress server on a free loopback port."""
    import waitress.server

    with ServerThread(waitress.server.create_server(app, host="127.0.0.1", port=0, threads=2)) as server:
        yield f"http://127.0.0.1:{server.port}"


def test_units_talk_to_the_receiver_through_waitress(served: str, setup: Setup) -> None:
    request = urllib.request.Request(f"{served}/api/v1/records", data=encode_batch(setup.units["KG-0001"].records(3)),
                                     headers={"Content-Type": BATCH}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        doc = json.loads(reply.read())
    assert verify_receipt(doc["receipt"], setup.receiver_key.public_key(), "KG-0001") == 3
    with urllib.request.urlopen(f"{served}/", timeout=30) as reply:
        assert "KG-0001" in reply.read().decode()


@pytest.mark.postgres
def test_two_receiver_processes_share_one_postgresql(pg_cluster: Cluster, setup: Setup) -> None:
    units = [Unit(f"KG-{i:04d}") for i in range(100, 130)]
    setup.enroll(*units)
    files = {}
    for unit in units:
        for k in range(10):
            path = setup.directory / f"{unit.station}-{k}.batch"
            path.write_bytes(encode_batch(unit.records(4)))
            files[(unit.station, k)] = path
    forward = [str(files[(u.station, k)]) for k in range(10) for u in units]
    backward = [str(files[(u.station, k)]) for k in range(10) for u in reversed(units)]
    url = pg_cluster.create_database()
    command = [sys.executable, "-m", "receiver.cli", "ingest", *setup.cli_args(url)]
    procs = [subprocess.Popen([*command, *order], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for order in (forward, backward)]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    accepted = sum(int(line.split(": ")[2].split()[0]) for out, _ in results for line in out.splitlines())
    assert accepted == 1200
    storage = open_storage(url)
    try:
        leaves = storage.leaves()
        assert [index for index, _ in leaves] == list(range(1200)) and storage.tree()[0] == 1200
        records = [parse_line(line) for _, line in leaves]
        assert storage.tree()[1] == naive_root([r.data for r in records])
        for unit in units:
            assert [r.seq for r in records if r.station == unit.station] == list(range(1, 41))
            assert storage.highest_seq(unit.station) == 40
        assert storage.rejections() == []
    finally:
        storage.close()
