"""Group commit: one writer, many batches per durable commit, nothing acknowledged before its commit.

The kill test runs a real receiver process behind waitress, stops its writer
just before COMMIT, kills the process there with SIGKILL and checks that the
unit got no answer and that nothing of the batch is in the database; the
batch, sent again to a new receiver, is stored whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import BATCH, Setup, Unit, post, stored

from device.hardware.clock import FakeClock
from protocol.batch import encode_batch
from protocol.receipts import verify_receipt
from receiver.app import create_app
from receiver.ingest import Outcome, Rejection
from receiver.service import Receiver
from receiver.storage import Storage, open_storage
from receiver.store.db import StorageError

DEADLINE = 60.0

SERVE = """
import json, os, pathlib, sys, time
import waitress.server
from receiver.app import create_app
config, hold = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2])
app = create_app(config)
def stop_before_commit(size):
    hold.with_suffix(".part").write_text(str(size))
    os.replace(hold.with_suffix(".part"), hold)
    time.sleep(3600)
app.extensions["pollbox_receiver"].storage.writer.before_commit = stop_before_commit
server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
print(server.effective_port, flush=True)
server.run()
"""


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for another thread or process, up to DEADLINE seconds."""
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def receiver_of(app: Flask) -> Receiver:
    found: Receiver = app.extensions["pollbox_receiver"]
    return found


def test_a_receiver_killed_between_verify_and_commit_has_acknowledged_nothing(setup: Setup, db_url: str,
                                                                              clock: FakeClock) -> None:
    config = {k: v for k, v in setup.config(db_url, clock).items() if k not in ("CLOCK", "TESTING")}
    hold = setup.directory / "holding"
    proc = subprocess.Popen([sys.executable, "-c", SERVE, json.dumps(config), str(hold)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        records = setup.units["KG-0001"].records(3)
        answer: dict[str, Any] = {}

        def send() -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/records", data=encode_batch(records),
                                             headers={"Content-Type": BATCH}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=DEADLINE) as reply:
                    answer["status"] = reply.status
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                answer["error"] = exc

        unit = threading.Thread(target=send)
        unit.start()
        until(hold.exists, "the writer to reach its commit")
        assert hold.read_text() == "1" and unit.is_alive() and answer == {}  # verified, written, not committed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
        unit.join(DEADLINE)
        assert "status" not in answer and "error" in answer  # the unit was told nothing: it will send again
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    storage = open_storage(db_url)
    try:
        assert (storage.count_records(), storage.tree()[0], storage.highest_seq("KG-0001")) == (0, 0, 0)
    finally:
        storage.close()
    again = create_app(setup.config(db_url, clock))
    try:
        reply = post(again.test_client(), records)
        assert reply.status_code == 200 and reply.get_json()["accepted"] == 3
        assert verify_receipt(reply.get_json()["receipt"], setup.receiver_key.public_key(), "KG-0001") == 3
    finally:
        receiver_of(again).storage.close()


class HeldCommit:
    """Holds the writer at its first COMMIT until released; records every group's size."""

    def __init__(self, storage: Storage) -> None:
        self.sizes: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()
        storage.writer.before_commit = self

    def __call__(self, size: int) -> None:
        self.sizes.append(size)
        if len(self.sizes) == 1:
            self.entered.set()
            assert self.release.wait(DEADLINE)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as exc:  # handed back to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_batches_waiting_for_the_writer_are_committed_together_and_answered_after_it(app: Flask,
                                                                                    setup: Setup) -> None:
    receiver = receiver_of(app)
    held = HeldCommit(receiver.storage)
    first, second = setup.units["KG-0001"], setup.units["KG-0002"]
    a = in_thread(lambda: receiver.ingestor.ingest_records(first.records(3), "test"))
    assert held.entered.wait(DEADLINE)
    b = in_thread(lambda: receiver.ingestor.ingest_records(second.records(2), "test"))
    c = in_thread(lambda: receiver.ingestor.ingest_records(first.records(4), "test"))  # continues a's chain
    until(lambda: receiver.storage.writer._queue.qsize() == 2, "both batches to reach the writer")
    assert a[1] == b[1] == c[1] == []  # nobody answered while the first commit is held
    assert receiver.storage.count_records() == 0  # nothing is visible before it (this thread's own connection)
    held.release.set()
    for thread, _ in (a, b, c):
        thread.join(DEADLINE)
    outcomes: list[Outcome] = [a[1][0], b[1][0], c[1][0]]
    assert [(o.accepted, o.rejection) for o in outcomes] == [(3, None), (2, None), (4, None)]
    assert held.sizes == [1, 2] and stored(app) == (9, 9)
    key = setup.receiver_key.public_key()
    assert verify_receipt(outcomes[2].receipt or "", key, "KG-0001") == 7
    assert verify_receipt(outcomes[1].receipt or "", key, "KG-0002") == 2


def test_one_failing_piece_of_work_is_undone_alone(app: Flask, setup: Setup) -> None:
    receiver = receiver_of(app)
    storage = receiver.storage
    held = HeldCommit(storage)
    a = in_thread(lambda: receiver.ingestor.ingest_records(setup.units["KG-0001"].records(2), "test"))
    assert held.entered.wait(DEADLINE)

    def fails_halfway() -> None:
        storage._log_rejection_now(Rejection("malformed", "written, then undone"), 0.0, "test")
        raise ValueError("a bug in one piece of work")

    b = in_thread(lambda: storage.writer.write(fails_halfway))
    c = in_thread(lambda: receiver.ingestor.ingest_records(setup.units["KG-0002"].records(3), "test"))
    until(lambda: storage.writer._queue.qsize() == 2, "both pieces of work to reach the writer")
    held.release.set()
    for thread, _ in (a, b, c):
        thread.join(DEADLINE)
    assert isinstance(b[1][0], ValueError)
    assert (a[1][0].accepted, c[1][0].accepted) == (2, 3) and held.sizes == [1, 2]
    assert stored(app) == (5, 5) and storage.rejections() == []


def test_a_failed_commit_answers_every_batch_of_the_group_unavailable_and_stores_none(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    storage = receiver_of(app).storage
    failures = [StorageError("disk I/O error")]

    def commit_fails(size: int) -> None:
        if failures:
            raise failures.pop()

    storage.writer.before_commit = commit_fails
    records = setup.units["KG-0001"].records(3)
    reply = post(client, records)
    assert reply.status_code == 503 and stored(app) == (0, 0)
    reply = post(client, records)
    assert reply.status_code == 200 and reply.get_json()["accepted"] == 3 and stored(app) == (3, 3)


def test_every_refusal_is_still_answered_and_nothing_of_a_refused_batch_is_stored(app: Flask, client: FlaskClient,
                                                                                  setup: Setup) -> None:
    unit, stranger = setup.units["KG-0001"], Unit("KG-0001")
    good = unit.records(2)
    assert post(client, good).get_json()["accepted"] == 2
    forged = stranger.records(1)
    answers = [post(client, b"not a batch"), post(client, forged), post(client, good[:1])]
    assert [r.status_code for r in answers] == [400, 403, 200]
    assert answers[2].get_json()["duplicates"] == 1
    assert stored(app) == (2, 2)
    assert {r["code"] for r in receiver_of(app).storage.rejections()} == {"malformed", "unknown_key"}


def test_a_batch_repeating_one_of_the_same_group_is_told_duplicates_and_the_log_is_written_once_per_group(
        app: Flask, setup: Setup) -> None:
    receiver = receiver_of(app)
    storage = receiver.storage
    held = HeldCommit(storage)
    appends: list[int] = []
    append_leaves = storage._append_leaves

    def counted(leaves: Any, **kwargs: Any) -> int:
        appends.append(len(leaves))
        return append_leaves(leaves, **kwargs)

    storage._append_leaves = counted  # type: ignore[method-assign]
    records = setup.units["KG-0001"].records(5)
    other = setup.units["KG-0002"]
    a = in_thread(lambda: receiver.ingestor.ingest_records(other.records(1), "test"))
    assert held.entered.wait(DEADLINE)
    b = in_thread(lambda: receiver.ingestor.ingest_records(records[:3], "test"))
    until(lambda: storage.writer._queue.qsize() == 1, "the first batch to reach the writer")
    c = in_thread(lambda: receiver.ingestor.ingest_records(records[1:5], "test"))  # repeats 2 of b's, adds 2
    d = in_thread(lambda: receiver.ingestor.ingest_records(other.records(2), "test"))
    until(lambda: storage.writer._queue.qsize() == 3, "every batch to reach the writer")
    held.release.set()
    for thread, _ in (a, b, c, d):
        thread.join(DEADLINE)
    outcomes: list[Outcome] = [a[1][0], b[1][0], c[1][0], d[1][0]]
    assert [(o.accepted, o.duplicates, o.rejection) for o in outcomes] == [(1, 0, None), (3, 0, None), (2, 2, None),
                                                                          (2, 0, None)]
    assert held.sizes == [1, 3] and appends == [1, 7] and stored(app) == (8, 8)
    assert storage.conflicts_of("KG-0001") == []
    assert [line for _, line in storage.leaves()][1:6] == [r.line() for r in records]
    assert storage.tallies()["reported"] == 2


def test_a_failing_piece_of_work_leaves_nothing_deferred(app: Flask, setup: Setup) -> None:
    receiver = receiver_of(app)
    storage = receiver.storage
    held = HeldCommit(storage)
    a = in_thread(lambda: receiver.ingestor.ingest_records(setup.units["KG-0001"].records(1), "test"))
    assert held.entered.wait(DEADLINE)
    records = setup.units["KG-0002"].records(2)

    def stores_then_fails() -> None:
        storage.store_now("KG-0002", records, 0.0, "test")
        raise ValueError("a bug after the records were handed over")

    b = in_thread(lambda: storage.writer.write(stores_then_fails, order="KG-0002"))
    c = in_thread(lambda: receiver.ingestor.ingest_records(setup.units["KG-0001"].records(2), "test"))
    until(lambda: storage.writer._queue.qsize() == 2, "both pieces of work to reach the writer")
    held.release.set()
    for thread, _ in (a, b, c):
        thread.join(DEADLINE)
    assert isinstance(b[1][0], ValueError) and c[1][0].accepted == 2
    assert stored(app) == (3, 3) and storage.highest_seq("KG-0002") == 0
    assert storage.tallies()["reported"] == 1


def test_a_group_reads_and_writes_its_station_rows_in_one_statement_each(app: Flask, setup: Setup) -> None:
    """On PostgreSQL every statement is a round trip the whole group waits for: a group of batches of several
    stations locks and reads their rows in one statement and writes them back in one ``executemany``."""
    receiver = receiver_of(app)
    storage = receiver.storage
    first, second = setup.units["KG-0001"], setup.units["KG-0002"]
    assert receiver.ingestor.ingest_records(first.records(1), "test").accepted == 1
    assert receiver.ingestor.ingest_records(second.records(1), "test").accepted == 1
    held = HeldCommit(storage)
    a = in_thread(lambda: receiver.ingestor.ingest_records(first.records(1), "test"))
    assert held.entered.wait(DEADLINE)
    statements: list[str] = []
    query, many = storage._q, storage._many

    def counted_q(sql: str, params: Any = ()) -> Any:
        statements.append(sql)
        return query(sql, params)

    def counted_many(sql: str, rows: Any) -> int:
        statements.append(sql)
        return many(sql, rows)

    storage._q, storage._many = counted_q, counted_many  # type: ignore[method-assign]
    b = in_thread(lambda: receiver.ingestor.ingest_records(second.records(2), "test"))
    c = in_thread(lambda: receiver.ingestor.ingest_records(first.records(3), "test"))
    until(lambda: storage.writer._queue.qsize() == 2, "both batches to reach the writer")
    held.release.set()
    for thread, _ in (a, b, c):
        thread.join(DEADLINE)
    storage._q, storage._many = query, many  # type: ignore[method-assign]
    assert [(o[0].accepted, o[0].duplicates, o[0].rejection) for _, o in (a, b, c)] == [
        (1, 0, None), (2, 0, None), (3, 0, None)]
    assert held.sizes == [1, 2] and stored(app) == (8, 8)
    assert (storage.highest_seq("KG-0001"), storage.highest_seq("KG-0002")) == (5, 3)
    assert len([s for s in statements if "FROM stations" in s]) == 1
    assert len([s for s in statements if s.startswith("UPDATE stations")]) == 1
    assert storage.tallies()["reported"] == 2
