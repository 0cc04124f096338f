"""Fault family: tampering — the lid opened, ballots without identification, a second ballot."""

from __future__ import annotations

from typing import Any

import pytest

from device.appliance import Appliance
from device.hardware.interfaces import ScanRead


def kinds(app: Appliance) -> list[str]:
    return [a["kind"] for a in app.status()["alarms"]]


@pytest.mark.parametrize("armed", [True, False])
def test_lid_opened(app: Appliance, pins: list[str], armed: bool) -> None:
    app.open_polls()
    if armed:
        app.identify(ScanRead(pins[0], "qr", "t"))
        assert app.sim.box.slot_open
    app.sim.box.open_lid()
    assert kinds(app) == ["lid_opened"] and not app.sim.box.slot_open
    detail = app.status()["alarms"][0]["detail"]
    assert detail == ("while armed" if armed else "while idle")
    app.sim.box.close_lid()
    assert app.sim.box.slot_open == armed
    assert "lid_closed" in [r.event.kind for r in app.journal.recorded()]


def test_lid_open_at_start_up_alarms(make_app: Any) -> None:
    app = make_app(start=False)
    app.sim.box.open_lid()  # before start: the level is read at start-up
    app.start(background=False)
    assert kinds(app) == ["lid_opened"]


def test_drop_without_identification(app: Appliance) -> None:
    app.open_polls()
    app.sim.box.drop()
    assert app.counters()["ballots"] == 1 and app.counters()["difference"] == 1
    assert kinds(app) == ["drop_without_token"]


def test_second_ballot_on_one_identification(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    app.sim.box.drop()
    clock.advance(app.delays.double_drop_window)
    app.sim.box.drop()
    assert kinds(app) == ["second_ballot"]
    assert app.counters() | {} == app.counters() and app.counters()["ballots"] == 2


def test_voter_walks_away_slot_relocks(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    clock.advance(app.delays.arm_timeout)
    app.tick()
    assert not app.sim.box.slot_open
    assert "arm_expired" in [r.event.kind for r in app.journal.recorded()][-2:]  # beside the count update
    app.sim.box.drop()
    assert kinds(app) == ["drop_without_token"]


def test_box_unit_lost_locks_and_alarms(app: Appliance) -> None:
    app.open_polls()
    app.sim.box.unplug()
    assert kinds(app) == ["box_unit_lost"]
    app.sim.box.replug()
    assert app.status()["box"]["present"]


def test_scanner_unplugged_while_open(app: Appliance) -> None:
    app.open_polls()
    app.sim.scanner.unplug()
    assert kinds(app) == ["scanner_lost"] and app.status()["scanner"]["state"] == "disconnected"
    app.sim.scanner.replug()
    assert app.status()["scanner"]["state"] == "connected"
