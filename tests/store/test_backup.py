"""Journal backups to a USB stick, and a replacement unit carrying on from one."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import STATION, demo_pins
from device.hardware.interfaces import ScanRead
from device.keys import create_device_key
from device.store.backup import BackupError, backup_journal, backup_name
from device.store.journal import Journal
from device.store.verify import verify_journal


def day(app: Appliance, voters: int) -> None:
    app.open_polls()
    for pin in demo_pins(voters):
        app.identify(ScanRead(pin, "qr", "t"))
        app.sim.box.drop()


def test_backup_is_a_verified_copy_of_the_live_journal(app: Appliance, tmp_path: Path) -> None:
    day(app, 3)
    stick = tmp_path / "stick"
    stick.mkdir()
    done = app.backup(stick)
    copy = Journal(stick / backup_name(STATION), STATION, anchored=False)
    report = verify_journal(copy)
    copy.close()
    assert report.ok and report.events == app.journal.last_seq == done["events"]
    assert report.head_hash == app.journal.last_hash.hex()
    assert app.status()["backup"]["ok"] and not list(stick.glob("*.part"))


def test_missing_stick_keeps_the_previous_backup(app: Appliance, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    day(app, 1)
    app.backup(stick)
    before = (stick / backup_name(STATION)).read_bytes()
    with pytest.raises(BackupError, match="is the USB stick inserted"):
        app.backup(tmp_path / "unplugged")
    status = app.status()["backup"]
    assert status["ok"] is False and "USB stick" in status["error"]
    assert (stick / backup_name(STATION)).read_bytes() == before


def test_a_copy_that_does_not_verify_never_replaces_the_backup(app: Appliance, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    day(app, 1)
    app.backup(stick)
    before = (stick / backup_name(STATION)).read_bytes()
    damaged = tmp_path / "damaged.db"
    backup_journal(app.journal.path, STATION, tmp_path)          # a consistent copy to damage
    (tmp_path / backup_name(STATION)).rename(damaged)
    conn = sqlite3.connect(damaged)
    conn.executescript("DROP TRIGGER events_no_update; UPDATE events SET at_us = at_us + 1 WHERE seq = 2;")
    conn.close()
    with pytest.raises(BackupError, match="does not verify"):
        backup_journal(damaged, STATION, stick)
    assert (stick / backup_name(STATION)).read_bytes() == before and not list(stick.glob("*.part"))


def test_periodic_backup_every_named_delay(station_dir: Path, clock: Any, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    config_path = station_dir / "station.toml"
    config_path.write_text(config_path.read_text().replace('directory = "usb-stick"', f'directory = "{stick}"'))
    app = build_appliance(load_config(config_path), clock=clock)
    app.start(background=False)

    def backup_if_due() -> dict[str, Any]:
        """The periodic backup runs on a thread of its own (a slow stick never delays a voter): wait for it."""
        app.backups.start_if_due()
        for thread in threading.enumerate():
            if thread.name == "pollbox-backup":
                thread.join()
        return dict(app.status()["backup"])

    try:
        first = backup_if_due()
        assert first["ok"] and first["configured"]
        day(app, 2)
        clock.advance(app.delays.backup_every - 1)
        assert backup_if_due()["events"] == first["events"]
        clock.advance(1)
        assert backup_if_due()["events"] == app.journal.last_seq > first["events"]
    finally:
        app.stop()


def test_replacement_unit_carries_on_from_the_backup(make_app: Any, station_dir: Path, tmp_path: Path,
                                                     clock: Any) -> None:
    app = make_app()
    day(app, 3)
    stick = tmp_path / "stick"
    stick.mkdir()
    app.backup(stick)
    app.stop()
    spare = tmp_path / "spare"                           # the spare unit: same package, its own device key
    shutil.copytree(station_dir, spare, ignore=shutil.ignore_patterns("journal.*", "device.*", "control.sock"))
    create_device_key(spare / "data")
    shutil.copy(stick / backup_name(STATION), spare / "data" / "journal.db")
    replacement = build_appliance(load_config(spare / "station.toml"), clock=clock)
    replacement.start(background=False)
    try:
        assert replacement.state.poll.value == "open" and replacement.counters()["identified"] == 3
        clock.advance(10)
        assert replacement.identify(ScanRead(demo_pins(1)[0], "qr", "t")).outcome == "already_voted"
        assert replacement.identify(ScanRead(demo_pins(4)[3], "qr", "t")).outcome == "admitted"
        assert verify_journal(replacement.journal).ok
    finally:
        replacement.stop()


def test_the_chairs_screen_shows_the_last_backup(app: Appliance, tmp_path: Path) -> None:
    from web_ui import create_app
    web = create_app(app, {"TESTING": True}, instance_path=tmp_path / "web")
    page = web.test_client().get("/details").get_data(as_text=True)  # the status screen's details, one tap away
    assert "Journal backup" in page and "not yet" in page  # configured (the demo has a stick), not yet run
    with pytest.raises(BackupError):
        app.backup(tmp_path / "no-stick")
    assert "is the USB stick inserted?" in web.test_client().get("/details").get_data(as_text=True)
    (tmp_path / "stick").mkdir()
    app.backup(tmp_path / "stick")
    assert "is the USB stick inserted?" not in web.test_client().get("/details").get_data(as_text=True)
