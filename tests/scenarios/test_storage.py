"""Fault family: storage. A damaged or lost journal tail, a deleted journal, a full disk, a read-only journal.

A voting day runs on a live station; its data folder is then copied as a kill
would leave it (the database, its WAL and the high-water mark, not cleanly
closed) and damaged the ways seen in the field: bytes flipped in the middle of
``journal.db-wal``, a few bytes cut off its end, the WAL deleted,
``journal.db`` deleted. Every time the station must refuse to record (nobody
is admitted again, the polls cannot be opened again), ``verify`` must say
what happened and what to do, the files as found are kept, and the documented
recovery from the backup stick must bring back every event.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.core import events as ev
from device.decision import ActionRefused
from device.demo import STATION, demo_pins
from device.hardware.interfaces import ScanRead
from device.store.backup import backup_name
from device.store.errors import JournalMissing, StorageError, StorageFull, StorageReadOnly
from device.store.journal import Journal
from device.store.mark import read_mark
from device.store.recovery import RecoveryRefused, accept_as_found, restore
from device.store.verify import verify_journal, verify_path

VOTERS = 20


def voting_day(app: Appliance, voters: int = VOTERS) -> None:
    """Open, admit ``voters`` who each drop a ballot, then a break: the last event is an acknowledged resume."""
    app.open_polls()
    for pin in demo_pins(voters):
        assert app.identify(ScanRead(pin, "qr", "t")).outcome == "admitted"
        app.sim.box.drop()
    app.pause_polls("break")
    app.resume_polls()


def as_killed(station_dir: Path, target: Path) -> Path:
    """The station's files as a kill -9 leaves them: the live WAL and mark, copied while the journal is open."""
    shutil.copytree(station_dir, target, ignore=shutil.ignore_patterns("control.sock", "*.db-shm"))
    return target


def flip_middle_of_wal(data: Path) -> None:
    wal = data / "journal.db-wal"
    raw = bytearray(wal.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 8] = bytes(b ^ 0x5A for b in raw[middle:middle + 8])
    wal.write_bytes(bytes(raw))


def cut_end_of_wal(data: Path) -> None:
    wal = data / "journal.db-wal"
    wal.write_bytes(wal.read_bytes()[:-7])


def delete_wal(data: Path) -> None:
    (data / "journal.db-wal").unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flip bytes in the middle of the WAL": flip_middle_of_wal,
    "cut bytes off the end of the WAL": cut_end_of_wal,
    "delete the WAL": delete_wal,
}


@pytest.fixture
def killed(make_app: Any, station_dir: Path, tmp_path: Path) -> tuple[Path, int]:
    """A copy of a station killed after a voting day (with a backup on its stick): (its folder, events recorded)."""
    app = make_app()
    voting_day(app)
    app.backup(station_dir / "usb-stick")
    assert app.journal.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == app.journal.last_seq
    return as_killed(station_dir, tmp_path / "killed"), app.journal.last_seq


def start(station: Path, clock: Any) -> Appliance:
    app = build_appliance(load_config(station / "station.toml"), clock=clock)
    app.start(background=False)
    return app


@pytest.mark.parametrize("damage", ["flip bytes in the middle of the WAL", "cut bytes off the end of the WAL"])
def test_a_lost_or_damaged_wal_tail_is_refused_not_replayed(killed: tuple[Path, int], clock: Any,
                                                            damage: str) -> None:
    station, recorded = killed
    DAMAGE[damage](station / "data")
    app = start(station, clock)
    try:
        assert app.journal.refusal is not None and app.journal.last_seq < recorded
        report = app.verify()
        assert not report.ok and report.advice
        sentence = report.sentence()
        assert "REFUSED" in sentence and f"{recorded} events were recorded" in sentence
        assert "lost or damaged" in sentence and "backup stick" in sentence and "chain intact" not in sentence
        with pytest.raises(ActionRefused):                 # an admitted voter is not admitted again
            app.identify(ScanRead(demo_pins(1)[0], "qr", "t"))
        with pytest.raises(ActionRefused):                 # and the polls cannot be opened again
            app.open_polls()
    finally:
        app.stop()
    assert read_mark(station / "data" / "journal.mark").seq == recorded        # type: ignore[union-attr]
    kept = list((station / "data").glob("journal-refused-*"))
    assert len(kept) == 1 and (kept[0] / "journal.mark").exists()
    assert not verify_path(station / "data" / "journal.db", STATION).ok         # what 'pollbox verify' reports


def test_the_damaged_wal_is_kept_as_found(killed: tuple[Path, int], clock: Any) -> None:
    station, _ = killed
    flip_middle_of_wal(station / "data")
    damaged = (station / "data" / "journal.db-wal").read_bytes()
    start(station, clock).stop()
    kept = next((station / "data").glob("journal-refused-*"))
    assert (kept / "journal.db-wal").read_bytes() == damaged


@pytest.mark.parametrize("deleted", ["journal.db", "journal.db-wal"])
def test_a_deleted_journal_or_wal_is_refused_never_a_fresh_station(killed: tuple[Path, int], clock: Any,
                                                                   deleted: str) -> None:
    station, recorded = killed
    data = station / "data"
    (data / deleted).unlink()
    db = data / "journal.db"
    before = db.read_bytes() if db.exists() else None
    with pytest.raises(JournalMissing) as caught:
        build_appliance(load_config(station / "station.toml"), clock=clock)
    assert f"{recorded} events were recorded" in str(caught.value) and "backup stick" in str(caught.value)
    assert isinstance(caught.value, StorageError) and caught.value.code == "journal_missing"
    assert (db.read_bytes() if db.exists() else None) == before  # no fresh journal was started
    report = verify_path(data / "journal.db", STATION)
    assert not report.ok and "REFUSED" in report.sentence() and "backup stick" in report.sentence()


def test_the_backup_stick_is_a_second_anchor(killed: tuple[Path, int]) -> None:
    """Even with the mark gone too, a journal shorter than its copy on the stick is refused."""
    station, recorded = killed
    data = station / "data"
    delete_wal(data)
    (data / "journal.mark").unlink()
    journal = Journal(data / "journal.db", STATION)
    try:
        assert verify_journal(journal).ok                           # nothing on the unit itself can tell
        report = verify_journal(journal, backup_dir=station / "usb-stick")
        assert not report.ok and f"the backup on the stick holds {recorded} events" in report.reason
    finally:
        journal.close()


@pytest.mark.parametrize("damage", list(DAMAGE) + ["delete journal.db"])
def test_recovery_from_the_backup_stick_brings_back_every_event(killed: tuple[Path, int], clock: Any,
                                                                damage: str) -> None:
    station, recorded = killed
    data = station / "data"
    if damage == "delete journal.db":
        (data / "journal.db").unlink()
    else:
        DAMAGE[damage](data)
    done = restore(station / "usb-stick" / backup_name(STATION), data / "journal.db", STATION)
    assert done.lost == 0 and done.events == recorded and done.replaced.is_dir()
    app = start(station, clock)
    try:
        assert app.verify().ok and app.state.poll.value == "open"
        assert app.identify(ScanRead(demo_pins(1)[0], "qr", "t")).outcome == "already_voted"
        assert app.identify(ScanRead(demo_pins(VOTERS + 1)[VOTERS], "qr", "t")).outcome == "admitted"
    finally:
        app.stop()


def test_a_shorter_backup_is_refused_unless_the_loss_is_accepted_and_noted(make_app: Any, station_dir: Path,
                                                                          tmp_path: Path) -> None:
    app = make_app()
    app.open_polls()
    app.backup(station_dir / "usb-stick")                  # the last backup, before the voters came
    for pin in demo_pins(3):
        app.identify(ScanRead(pin, "qr", "t"))
    recorded = app.journal.last_seq
    station = as_killed(station_dir, tmp_path / "killed")
    data = station / "data"
    delete_wal(data)
    copy = station / "usb-stick" / backup_name(STATION)
    with pytest.raises(RecoveryRefused, match="would be lost"):
        restore(copy, data / "journal.db", STATION)
    assert (data / "journal.mark").exists()                # nothing was changed
    done = restore(copy, data / "journal.db", STATION, accept_loss=True, at=2_000_000_000.0)
    assert done.lost == recorded - done.events > 0
    journal = Journal(data / "journal.db", STATION)
    try:
        note = list(journal.recorded())[-1].event
        assert isinstance(note, ev.Annotation) and note.topic == "journal_recovered"
        assert f"{recorded} were recorded" in note.text and verify_journal(journal).ok
    finally:
        journal.close()


def test_without_any_backup_the_journal_is_accepted_as_found_with_the_loss_noted(killed: tuple[Path, int]) -> None:
    station, recorded = killed
    data = station / "data"
    flip_middle_of_wal(data)
    done = accept_as_found(data / "journal.db", STATION, at=2_000_000_000.0)
    assert done.recorded == recorded and 0 < done.events < recorded
    kept = done.replaced
    assert (kept / "journal.db-wal").exists() and (kept / "journal.mark").exists()
    journal = Journal(data / "journal.db", STATION)
    try:
        assert verify_journal(journal).ok and journal.last_seq == done.events + 1
    finally:
        journal.close()


def test_a_full_disk_refuses_the_event_then_recording_resumes_without_restart(app: Appliance,
                                                                             full_disk: Any) -> None:
    """At the journal: the failed event is not recorded, nothing half-written remains, the next one works."""
    app.open_polls()
    before = app.journal.last_seq
    full_disk.fill(app.journal.conn)
    with pytest.raises(StorageFull) as caught:
        for _ in range(2000):
            app.journal.append([ev.Annotation("note", "x" * 2000)], 1_800_000_000.0)
    assert isinstance(caught.value, StorageError) and "Free space" in caught.value.advice
    full_disk.free()
    app.journal.append([ev.Annotation("note", "space is back")], 1_800_000_001.0)
    assert app.journal.last_seq > before and app.verify().ok


def test_a_restore_never_replaces_a_longer_journal_even_without_its_mark(make_app: Any, station_dir: Path,
                                                                        tmp_path: Path) -> None:
    app = make_app()
    app.open_polls()
    app.backup(station_dir / "usb-stick")
    app.identify(ScanRead(demo_pins(1)[0], "qr", "t"))
    station = as_killed(station_dir, tmp_path / "killed")
    (station / "data" / "journal.mark").unlink()
    with pytest.raises(RecoveryRefused, match="1 would be lost"):
        restore(station / "usb-stick" / backup_name(STATION), station / "data" / "journal.db", STATION)
    assert not list((station / "data").glob("journal-replaced-*"))


def test_verify_says_what_happened_and_what_to_do(killed: tuple[Path, int], clock: Any) -> None:
    station, recorded = killed
    flip_middle_of_wal(station / "data")
    report = verify_path(station / "data" / "journal.db", STATION)
    assert report.sentence().startswith(f"journal REFUSED at event {report.events + 1}: the journal ends at event "
                                        f"{report.events}, but {recorded} events were recorded (journal.mark): "
                                        "its tail was lost or damaged; the files as found are kept in ")
    assert report.sentence().endswith("Do not record on this unit: call the technician, who restores the journal "
                                      "from the backup stick (technician guide, \"Journal refused at start\").")


def test_a_read_only_journal_at_start_is_a_typed_error_with_advice(make_app: Any, station_dir: Path, clock: Any,
                                                                   make_unwritable: Any) -> None:
    make_app().stop()
    make_unwritable(station_dir / "data" / "journal.db")
    with pytest.raises(StorageReadOnly) as caught:
        build_appliance(load_config(station_dir / "station.toml"), clock=clock)
    assert "cannot be written" in str(caught.value) and "call the technician" in caught.value.advice


def test_the_documented_recovery_command(killed: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    from device.store.recovery import main
    station, recorded = killed
    data = station / "data"
    cut_end_of_wal(data)
    copy = station / "usb-stick" / backup_name(STATION)
    assert main(["--journal", str(data / "journal.db"), "--station", "KG-OTHER", "restore", str(copy)]) == 1
    assert "not done:" in capsys.readouterr().err
    assert main(["--journal", str(data / "journal.db"), "--station", STATION, "restore", str(copy)]) == 0
    assert f"journal restored: {recorded} events, nothing lost" in capsys.readouterr().out
    assert verify_path(data / "journal.db", STATION).ok


# The interlock on a full disk -------------------------------------------------------------------------------------

def _fill_until_refused(app: Appliance, full_disk: Any) -> None:
    """Fill the card: refused reads (small events) go in until the journal has no room left."""
    full_disk.fill(app.journal.conn)
    for n in range(500):
        try:
            app.identify_manual(f"0000000000{n:04d}")
        except StorageFull:
            return
    raise AssertionError("the journal never filled up")


def test_a_ballot_dropped_on_a_full_disk_is_kept_the_slot_stays_locked_and_all_resumes(
        app: Appliance, full_disk: Any, pins: list[str], clock: Any) -> None:
    app.open_polls()
    assert app.identify(ScanRead(pins[0], "qr", "t")).outcome == "admitted"
    assert app.sim.box.slot_open
    _fill_until_refused(app, full_disk)
    assert not app.sim.box.slot_open, "a station that cannot record must lock the slot"
    status = app.status()
    assert status["storage"]["code"] == "storage_full" and not status["interlock"]["slot_open"]
    app.sim.box.drop()  # the admitted voter's ballot goes in while the card is full
    assert app.status()["storage"]["waiting"] == 2  # the beam's two edges, kept in order
    with pytest.raises(StorageFull):
        app.identify(ScanRead(pins[1], "qr", "t"))  # nobody is admitted while nothing can be recorded
    assert app.counters()["identified"] == 1 and app.counters()["ballots"] == 0
    full_disk.free()
    clock.advance(1)
    app.tick()  # no restart: the next tick records what happened, then the kept ballot
    status = app.status()
    assert status["storage"] == {"ok": True, "code": "", "problem": "", "low": False, "waiting": 0}
    assert status["counters"]["ballots"] == 1 and status["counters"]["difference"] == 0
    kinds = [a["kind"] for a in status["alarms"]]
    assert kinds == ["storage_failed"], kinds  # a ballot with its token: no drop-without-token alarm
    assert "recorded now, in order" in status["alarms"][0]["detail"]
    assert app.identify(ScanRead(pins[1], "qr", "t")).outcome == "admitted"
    assert app.sim.box.slot_open, "the slot arms again without a restart"
    assert app.verify().ok


def test_low_space_raises_one_alarm_before_the_card_is_full(app: Appliance, monkeypatch: Any, clock: Any) -> None:
    from device.store.space import StorageSpace
    app.open_polls()
    free = [10 * 2**30]
    monkeypatch.setattr(app.journal, "space", lambda reserve_bytes=64 * 2**20: StorageSpace(free[0], 64 * 2**20))
    app.tick()
    free[0] = 5 * 2**20
    for _ in range(3):
        clock.advance(1)
        app.tick()
    alarms = app.status()["alarms"]
    assert [a["kind"] for a in alarms] == ["storage_low"] and "only 5.0 MiB free" in alarms[0]["detail"]
    assert app.status()["storage"]["low"]
    free[0] = 10 * 2**30
    clock.advance(1)
    app.tick()
    assert not app.status()["storage"]["low"] and len(app.status()["alarms"]) == 1  # kept until acknowledged


def test_the_running_unit_on_a_card_that_fills_up_refuses_keeps_and_resumes(station_dir: Path, tmp_path: Path,
                                                                             pins: list[str]) -> None:
    """``pollbox run`` with its data folder on a small real file system (tmpfs) that fills up and is freed."""
    with _data_on_tmpfs(station_dir, tmp_path) as (station, data):
        _card_fills_up(station, data, pins)


def test_the_running_unit_whose_journal_turns_unwritable_refuses_keeps_and_resumes(
        station_dir: Path, pins: list[str], make_unwritable: Callable[..., Callable[[], None]]) -> None:
    """The journal's files turn unwritable under a running ``pollbox run`` (a card that locks itself), then heal."""
    from tests.process_station import RunningStation
    station = RunningStation(station_dir).start()
    try:
        station.ok({"cmd": "open"})
        assert station.ok({"cmd": "scan", "text": pins[0]})["decision"]["outcome"] == "admitted"
        data = station_dir / "data"
        undo = [make_unwritable(data / name, live=True) for name in ("journal.db", "journal.db-wal")]
        try:
            refused = station.control({"cmd": "scan", "text": pins[1]})
            assert not refused["ok"] and "Traceback" not in refused["error"], refused
            status = station.ok({"cmd": "status"})
            assert status["storage"]["code"] in ("storage_read_only", "storage_damaged"), (refused, status["storage"])
            assert not status["interlock"]["slot_open"] and status["counters"]["identified"] == 1
            station.ok({"cmd": "drop"})  # the admitted voter's ballot is kept until it can be written
            assert station.ok({"cmd": "status"})["storage"]["waiting"] == 2
        finally:
            for u in undo:
                u()
        status = _until_storage_ok(station)
        assert status["counters"]["ballots"] == 1 and status["counters"]["identified"] == 1
        assert "storage_failed" in [a["kind"] for a in status["alarms"]]
        assert station.ok({"cmd": "scan", "text": pins[1]})["decision"]["outcome"] == "admitted"
        assert station.ok({"cmd": "verify"})["ok"]
        assert station.proc is not None and station.proc.poll() is None, "the unit must survive its card"
    finally:
        station.stop()


@contextlib.contextmanager
def _data_on_tmpfs(station_dir: Path, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """The station's data folder on an 8 MiB tmpfs, ``pollbox run`` started on it (root only)."""
    import os
    import subprocess

    from tests.process_station import RunningStation
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system for the data folder needs root")
    data = station_dir / "data"
    saved = tmp_path / "data-saved"
    shutil.copytree(data, saved)
    shutil.rmtree(data)
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(data)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(saved, data, dirs_exist_ok=True)
        station = RunningStation(station_dir).start()
        try:
            yield station, data
        finally:
            station.stop()
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def _until_storage_ok(station: Any) -> dict[str, Any]:
    ready = threading.Event()
    for _ in range(200):  # the owner's next tick records what happened
        status: dict[str, Any] = station.ok({"cmd": "status"})
        if status["storage"]["ok"]:
            return status
        ready.wait(0.05)
    raise AssertionError(f"the journal did not take writes again: {status['storage']}")


def _card_fills_up(station: Any, data: Path, pins: list[str]) -> None:
    station.ok({"cmd": "open"})
    assert station.ok({"cmd": "scan", "text": pins[0]})["decision"]["outcome"] == "admitted"
    filler = data / "filler"
    with open(filler, "wb") as f:  # whatever else fills the card
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    for n in range(200):  # refused reads (small events) until the card takes no more
        failed = station.control({"cmd": "manual", "number": f"0000000000{n:04d}"})
        if not failed["ok"]:
            break
    else:
        raise AssertionError("the full card never refused a record")
    assert "Free space" in failed["error"] and "Traceback" not in failed["error"]
    # A full file system still takes a write now and then (SQLite reuses room in its files), so what is
    # checked here is the outcome; the in-process test above holds every step on a card that takes nothing.
    station.ok({"cmd": "drop"})  # the admitted voter's ballot, while the card is full
    filler.unlink()
    status = _until_storage_ok(station)
    assert status["storage"]["ok"] and status["counters"]["ballots"] == 1
    assert "storage_failed" in [a["kind"] for a in status["alarms"]]
    assert station.ok({"cmd": "scan", "text": pins[1]})["decision"]["outcome"] == "admitted"
    assert station.ok({"cmd": "verify"})["ok"]


def test_the_chairs_screen_says_what_to_do_while_the_card_is_full(app: Appliance, full_disk: Any,
                                                                 pins: list[str], tmp_path: Path) -> None:
    from web_ui import create_app
    app.open_polls()
    _fill_until_refused(app, full_disk)
    client = create_app(app, {"TESTING": True, "STATION_LANGUAGE": "ky"}, instance_path=tmp_path / "web").test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'data-storage="storage_full"' in page and "Traceback" not in page
    full_disk.free()
    app.tick()
    assert "data-storage" not in client.get("/").get_data(as_text=True)


def test_pollbox_verify_refuses_a_deleted_journal_instead_of_saying_there_is_none(
        make_app: Any, station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from device.cli import main
    app = make_app()
    voting_day(app, 3)
    app.stop()
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (station_dir / "data" / name).unlink(missing_ok=True)
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 1
    out = capsys.readouterr().out
    assert "no journal yet" not in out and "technician" in out
    assert not (station_dir / "data" / "journal.db").exists(), "verify must not create a fresh journal"
