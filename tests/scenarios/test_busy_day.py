"""A busy polling day against the real process: ``pollbox run`` with all its threads, under load.

The station is started as a subprocess (owner thread, web server, control
socket, the simulated box and scanner with their own threads), and driven the
way a station is used: every voter scanned and a ballot dropped, double reads,
a voter who comes back, ballots without an identification, a second ballot,
the lid opened, jams, pause and resume, the link to the CEC cut and restored,
the scanner and the box unplugged, alarms acknowledged. All the while the
chair's screen, the observer view and ``/api/status`` are polled by two
threads and the control socket's status by a third.

A watchdog fails the test on any stall: every request must be answered within
``STALL`` seconds, or the process's thread stacks are dumped into the failure.
At the end the counters on the screen must equal a fresh replay of the journal
(``pollbox verify``), and the process must stop cleanly on SIGTERM.

The short day (3,000 voters as fast as they can come) runs in every test run;
the long one (a 14-hour day compressed to about a minute, hourly turnout
snapshots and all) is in the slow suite.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from device.demo import demo_pins, make_demo_station
from tests.process_station import RunningStation, child_env, free_port

STALL = 2.0
"""Seconds: an answer slower than this is a stall, and the test fails with every thread's stack."""


@pytest.fixture(scope="module")
def big_station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo station with 3,200 voters and a receiver address where nothing listens (the link is down)."""
    root = tmp_path_factory.mktemp("busy-day-template") / "station"
    make_demo_station(root, voters=3200, receiver_url=f"http://127.0.0.1:{free_port()}")
    return root


@pytest.fixture
def station(big_station: Path, tmp_path: Path) -> Iterator[Path]:
    import shutil
    target = tmp_path / "station"
    shutil.copytree(big_station, target)
    yield target


@dataclass
class Watch:
    """What the pollers saw: requests made, failures (with the stacks taken at the first stall)."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str, station: RunningStation) -> None:
        with self.lock:
            first = not self.failures
            self.failures.append(what)
        if first:
            self.failures.append("thread stacks of the station process:\n" + station.stacks())
        self.stop.set()


def _poll_screen(station: RunningStation, watch: Watch, paths: tuple[str, ...], pace: float) -> None:
    n = 0
    while not watch.stop.is_set():
        path = paths[n % len(paths)]
        n += 1
        try:
            code, body = station.http_get(path, timeout=STALL)
        except OSError as exc:
            watch.fail(f"GET {path}: no answer within {STALL:g} s ({exc!r})", station)
            return
        if code != 200:
            watch.fail(f"GET {path}: HTTP {code}: {body[:200]!r}", station)
            return
        with watch.lock:
            watch.requests += 1
        watch.stop.wait(pace)  # the load's pace: several reads a second, like a screen and an observer


def _poll_socket(station: RunningStation, watch: Watch, pace: float) -> None:
    while not watch.stop.is_set():
        try:
            answer = station.control({"cmd": "status"}, timeout=STALL)
        except OSError as exc:
            watch.fail(f"control status: no answer within {STALL:g} s ({exc!r})", station)
            return
        if not answer.get("ok"):
            watch.fail(f"control status refused: {answer}", station)
            return
        with watch.lock:
            watch.requests += 1
        watch.stop.wait(pace)


class Stalled(Exception):
    """A request went unanswered; the watch holds what was seen and the stacks."""


class Day:
    """Drives the day through the control socket; counts what it did, so the end can be checked."""

    def __init__(self, station: RunningStation, watch: Watch) -> None:
        self.station, self.watch = station, watch
        self.admitted = 0
        self.beam_blocks = 0
        self.outcomes: dict[str, int] = {}

    def do(self, cmd: str, **fields: Any) -> Any:
        if self.watch.stop.is_set():
            raise Stalled()
        try:
            answer = self.station.control({"cmd": cmd, **fields}, timeout=STALL)
        except OSError as exc:
            self.watch.fail(f"control {cmd}: no answer within {STALL:g} s ({exc!r})", self.station)
            raise Stalled() from None
        assert answer.get("ok"), f"{cmd}: {answer.get('error')}"
        return answer.get("result")

    def scan(self, pin: str) -> str:
        result = self.do("scan", text=pin)
        outcome = str(result.get("decision", result)["outcome"])  # a simulated read answers with its decision
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.admitted += outcome == "admitted"
        return outcome

    def drop(self) -> None:
        self.do("drop")
        self.beam_blocks += 1

    def ack_all(self) -> None:
        for alarm in self.station.status()["alarms"]:
            if alarm["kind"] == "lid_opened" and self.station.status()["interlock"]["lid_open"]:
                continue
            self.do("ack", alarm=alarm["id"], note="seen by the chair")

    def wait_for(self, what: str, check: Any, within: float = 10.0) -> None:
        """Poll the screen until ``check(status)`` holds (the station's own timers are real time)."""
        done = threading.Event()
        for _ in range(int(within / 0.05)):
            if check(self.station.status()):
                return
            done.wait(0.05)
        raise AssertionError(f"{what} did not happen within {within:g} s")


def run_day(station_dir: Path, voters: int, hour_seconds: float | None) -> None:
    hours = 14
    extra = "\n[delays]\njam_after = 0.3\n"
    if hour_seconds is not None:
        extra += f"turnout_snapshot_every = {hour_seconds}\n"
    station = RunningStation(station_dir, extra_config=extra).start()
    try:
        _run(station, voters, hour_seconds, hours)
    finally:
        station.stop()


def _run(station: RunningStation, voters: int, hour_seconds: float | None, hours: int) -> None:
    watch = Watch()
    pollers = [
        threading.Thread(target=_poll_screen, args=(station, watch, ("/", "/api/status"), 0.1), daemon=True),
        threading.Thread(target=_poll_screen, args=(station, watch, ("/observer", "/api/status?view=observer"), 0.2),
                         daemon=True),
        threading.Thread(target=_poll_socket, args=(station, watch, 0.2), daemon=True),
    ]
    for t in pollers:
        t.start()
    day = Day(station, watch)
    pins = demo_pins(voters)
    pace = threading.Event()
    try:
        day.do("open")
        per_hour = -(-voters // hours)
        for i, pin in enumerate(pins):
            if hour_seconds is not None and i % per_hour == 0 and i:
                pace.wait(hour_seconds)  # the compressed hour passes: the station's hourly snapshot is due
            _voter(day, i, pin, pins)
        day.ack_all()
        report = day.do("close")
    except Stalled:
        report = {}
    finally:
        watch.stop.set()
        for t in pollers:
            t.join(STALL * 3)
    assert not watch.failures, "\n".join(watch.failures)
    assert watch.requests > 0
    status = station.status()
    assert status["poll"] == "closed"
    counters = status["counters"]
    assert counters["identified"] == day.admitted == report["identified"]
    assert counters["ballots"] == day.beam_blocks == report["ballots"]
    assert day.admitted > voters * 0.9
    assert station.stop() == 0, station.stderr()[-3000:]
    verified = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(station.config), "verify"],
                              capture_output=True, text=True, timeout=120, env=child_env())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    if hour_seconds is not None:
        with sqlite3.connect(station.dir / "data" / "journal.db") as db:
            (snapshots,) = db.execute("SELECT count(*) FROM events WHERE kind = 'turnout_snapshot'").fetchone()
        assert snapshots >= hours - 1, f"{snapshots} turnout snapshots in a day of {hours} compressed hours"

def _voter(day: Day, i: int, pin: str, pins: list[str]) -> None:
    """One voter's turn, with the day's incidents laid over it."""
    if i % 600 == 300:
        day.do("pause", reason="break")
        assert day.scan(pins[-1]) == "polls_not_open"
        day.do("resume")
    outcome = day.scan(pin)
    assert outcome == "admitted", f"voter {i}: {outcome}"
    if i % 37 == 5:
        assert day.scan(pin) == "duplicate_read"  # the back of the card read after the front
    if i % 101 == 7 and i > 50:
        assert day.scan(pins[i - 50]) in ("already_voted", "duplicate_read")  # a voter who comes back
    day.drop()
    if i % 400 == 17:
        day.drop()  # a second ballot on one identification
        day.ack_all()
    if i % 250 == 90:
        day.do("lid-open")
        day.do("lid-close")
        day.ack_all()
    if i % 500 == 130:
        day.do("jam")
        day.beam_blocks += 1
        day.wait_for("the jam alarm", lambda s: s["interlock"]["jammed"])
        day.do("unjam")
        day.ack_all()
    if i % 300 == 40:
        day.do("link-cut")
    if i % 300 == 190:
        day.do("link-restore")
    if i % 700 == 350:
        day.do("scanner-unplug")
        day.do("scanner-replug")
        day.ack_all()


def test_a_busy_day_never_stalls(station: Path) -> None:
    run_day(station, voters=3000, hour_seconds=None)


@pytest.mark.slow
def test_a_whole_compressed_day_never_stalls(station: Path) -> None:
    run_day(station, voters=3000, hour_seconds=4.0)
