"""A training unit through the real process: ``pollbox run`` on a training package, a real receiver beside it.

The day of exercises the chair guide scripts (open, admit, a refused second
vote, a jam, the lid alarm, close) runs on the unit's own process. The unit
writes ``training-journal.db`` only, the receiver stores every record with
the signed training flag and counts none of them, and the close report and
its QR say TRAINING. Then the refusals both ways through the technician's
command line and ``pollbox run`` itself, and the way out: zeroize, after
which the unit takes a live package.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.demo import STATION, demo_pins
from protocol.envelope import parse_line
from tests.process_station import RunningStation

from .kit import TRAINING_STATION, TrainingSetup

DELIVERED_WITHIN = 60.0  # seconds for the unit's outbox to reach the receiver over loopback


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[TrainingSetup]:
    made = TrainingSetup.make(tmp_path)
    made.start_receiver()
    yield made
    made.stop_receiver()


def wait_delivered(station: RunningStation, setup: TrainingSetup) -> int:
    """Poll (no sleep: a named deadline) until the receiver holds every record the unit signed."""
    deadline = time.monotonic() + DELIVERED_WITHIN
    while True:
        up = station.status()["upstream"]
        stored = int(setup.receiver.storage.highest_seq(TRAINING_STATION))
        if up["waiting"] == 0 and stored == up["last_seq"] > 0:
            return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered within {DELIVERED_WITHIN:g} s: unit {up}, receiver {stored}")
        station.control({"cmd": "status"})  # a round trip to the unit between looks


def training_day(station: RunningStation) -> dict[str, object]:
    """The chair guide's exercises, through the unit's control socket; returns the close report."""
    first, second = demo_pins(2)
    station.ok({"cmd": "open"})
    admitted = station.ok({"cmd": "manual", "number": first})["decision"]
    assert admitted["outcome"] == "admitted", admitted
    station.ok({"cmd": "drop"})
    again = station.ok({"cmd": "manual", "number": first})["decision"]
    assert again["outcome"] != "admitted", again  # the refused second vote
    assert station.ok({"cmd": "manual", "number": second})["decision"]["outcome"] == "admitted"
    station.ok({"cmd": "jam"})
    station.ok({"cmd": "unjam"})
    station.ok({"cmd": "lid-open"})
    station.ok({"cmd": "lid-close"})
    for alarm in station.status()["alarms"]:
        station.ok({"cmd": "ack", "alarm": alarm["id"], "note": "training"})
    report: dict[str, object] = station.ok({"cmd": "close"})
    return report


def test_a_training_day_is_flagged_kept_apart_and_never_counted(setup: TrainingSetup) -> None:
    station = RunningStation(setup.directory).start()
    try:
        status = station.status()
        assert status["station"]["training"] is True and status["station"]["id"] == TRAINING_STATION
        report = training_day(station)
        stored = wait_delivered(station, setup)
        code, page = station.http_get("/report/close")
        assert code == 200 and b'class="training-mark"' in page and b'id="training-banner"' in page
    finally:
        assert station.stop() == 0
    assert (setup.data / "training-journal.db").exists()
    assert not (setup.data / "journal.db").exists() and not (setup.data / "journal.mark").exists()
    assert report["training"] is True
    signed = parse_line(str(report["signed"]))
    assert signed.training and b'"training":true' in signed.data and signed.station == TRAINING_STATION
    storage = setup.receiver.storage
    row = storage.status(TRAINING_STATION)
    assert row.training == 1 and row.phase == "closed" and row.highest_seq == stored
    flags = storage._q("SELECT DISTINCT training FROM records WHERE station = ?", (TRAINING_STATION,)).fetchall()
    assert flags == [(1,)]
    assert all(parse_line(storage.record_line(TRAINING_STATION, seq)).training for seq in range(1, stored + 1))
    tallies = storage.tallies()
    assert (tallies["reported"], tallies["closed"], tallies["identified"], tallies["ballots"]) == (0, 0, 0, 0)
    assert tallies == storage.counted_tallies()
    assert storage.summary(0.0, 2e9).training == 1


def test_a_live_package_is_refused_on_a_unit_holding_training_data(setup: TrainingSetup) -> None:
    station = RunningStation(setup.directory).start()
    try:
        station.ok({"cmd": "open"})
        wait_delivered(station, setup)
    finally:
        station.stop()
    list_key = (setup.data / "list.key").read_bytes()
    before = (setup.data / "training-journal.db").read_bytes()
    done = setup.provision("install-package", "--from", str(setup.stick("live-stick", "live-package.json", list_key)))
    assert done.returncode == 4, done
    assert "E024" in done.stderr and "holds training data" in done.stderr
    assert "pollbox-provision unit zeroize" in done.stderr
    assert (setup.data / "training-journal.db").read_bytes() == before  # nothing was touched
    # a live package put in place by hand: the unit refuses to start on it
    (setup.directory / "station-package.json").write_bytes((setup.directory / "live-package.json").read_bytes())
    started = setup.run_briefly()
    assert started.returncode != 0 and "holds training data" in started.stderr, started.stderr[-2000:]
    assert not (setup.data / "journal.db").exists()
    # the way out: zeroize (every record is with the CEC), then the live package goes in
    (setup.directory / "station-package.json").write_bytes((setup.directory / "training-package.json").read_bytes())
    wiped = setup.provision("zeroize")
    assert wiped.returncode == 0, wiped.stderr
    assert "training-journal.db" in wiped.stdout
    assert not any(p.exists() for p in (setup.data / "training-journal.db", setup.data / "training-journal.mark"))
    assert (setup.data / "training-zeroize-record.json").exists()
    installed = setup.provision("install-package", "--from", str(setup.directory / "live-stick"))
    assert installed.returncode == 0, installed.stderr
    assert f"installed {STATION}" in installed.stdout


def test_a_training_package_is_refused_on_a_unit_holding_live_data(tmp_path: Path) -> None:
    setup = TrainingSetup.make(tmp_path)
    live = (setup.directory / "live-package.json").read_bytes()
    (setup.directory / "station-package.json").write_bytes(live)  # the unit is set up for the live election
    list_key = (setup.data / "list.key").read_bytes()
    stick = setup.stick("training-stick", "training-package.json", list_key)
    done = setup.provision("install-package", "--from", str(stick))
    assert done.returncode == 4 and "E024" in done.stderr and "set up for a live election" in done.stderr, done
    assert "pollbox-provision unit zeroize" in done.stderr
    assert (setup.directory / "station-package.json").read_bytes() == live
    # a live journal (the live package gone by hand, no zeroize): the unit refuses to train on it
    (setup.data / "journal.db").write_bytes(b"")
    (setup.directory / "station-package.json").write_bytes((setup.directory / "training-package.json").read_bytes())
    started = setup.run_briefly()
    assert started.returncode != 0 and "holds live election data" in started.stderr, started.stderr[-2000:]
    assert not (setup.data / "training-journal.db").exists()
