"""Fault: the smart box firmware restarts in the middle of voting (a brown-out, its own watchdog)."""

from __future__ import annotations

from pathlib import Path

from device.core import events as ev
from device.core import interlock as il
from device.hardware.interfaces import BoxSignal, ScanRead

from .fakes import CHIP_ID
from .rigs import SmartRig, SmartStation, Station


def test_restart_mid_vote_keeps_the_count_and_is_reported(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    station = Station(rig)
    station.start()
    for _ in range(3):
        station.admit()
        station.advance(0.05)
        station.drop()
    token = station.admit()
    station.advance(0.05)
    assert rig.slot_open
    rig.board = rig.boot_firmware()  # power blip: a fresh interpreter, same flash
    assert not rig.slot_open, "a restarted unit boots locked"
    station.advance(0.5)
    assert station.unit_events == [BoxSignal.UNIT_LOST, BoxSignal.UNIT_FOUND]
    assert rig.box.health()["unit_restarts"] == 1
    assert rig.box.health()["unit_drops"] == 3
    station.drop()  # the open token is consumed: each ballot counted once, none twice
    assert station.counted() == [1, 2, 3, token]


def test_a_drop_just_before_the_restart_is_not_lost(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    station = Station(rig)
    station.start()
    station.admit()
    station.advance(0.05)
    rig.wire.fault = lambda frames: []  # the status with the drop never arrives
    rig.block()
    rig.advance(0.03)
    rig.clear()
    rig.advance(0.03)
    rig.board = rig.boot_firmware()
    rig.wire.fault = None
    station.advance(0.5)
    assert station.counted() == [1]
    assert rig.box.health()["unit_drops"] == 1


def test_restart_with_the_beam_blocked_counts_nothing(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    station = Station(rig)
    station.start()
    rig.block()
    rig.board = rig.boot_firmware()
    station.advance(0.5)
    assert station.counted() == []
    assert rig.box.health()["uncounted_block"]
    assert BoxSignal.JAMMED in rig.names() and BoxSignal.BEAM_BLOCKED not in rig.names()
    assert station.alarms() == ["jam"] and station.state.jammed
    rig.clear()
    station.advance(0.2)
    assert not rig.box.health()["uncounted_block"]
    assert rig.names()[-1] is BoxSignal.BEAM_CLEARED and il.JamEnded() in station.outcomes
    assert station.counted() == []


def test_restart_with_the_beam_blocked_is_a_jam_at_the_station(smart_station: SmartStation, pins: list[str]) -> None:
    """The real appliance hears of a block the restarted unit did not count: a jam alarm, no ballot."""
    app = smart_station.boot()
    app.open_polls()
    smart_station.unit.block()           # something is pushed into the slot as the unit browns out:
    smart_station.restart_unit()         # it boots with the beam already blocked
    smart_station.advance(0.5)
    assert smart_station.unit.board.logic.uncounted
    assert [k for k, _ in smart_station.alarms()] == ["box_unit_lost", "jam"]
    assert smart_station.alarms()[-1][1] == il.UNIT_JAM_DETAIL
    assert app.counters()["ballots"] == 0 and app.status()["interlock"]["jammed"]
    app.identify(ScanRead(pins[0], "qr", "t"))
    smart_station.advance(0.1)
    assert not smart_station.unit.slot_open, "a jammed slot stays locked for the admitted voter"
    smart_station.unit.clear()
    smart_station.advance(0.1)
    assert smart_station.events("jam_cleared") and not app.status()["interlock"]["jammed"]
    assert smart_station.unit.slot_open
    smart_station.drop()
    assert [(e.token, e.unit_count) for e in smart_station.events("ballot_counted")] == [(1, 1)]
    assert app.verify().ok


def test_restart_mid_vote_counts_each_ballot_once_at_the_station(smart_station: SmartStation,
                                                                 pins: list[str]) -> None:
    app = smart_station.boot()
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    smart_station.advance(0.05)
    smart_station.drop()
    smart_station.restart_unit()
    smart_station.advance(0.5)
    smart_station.drop()                 # without an identification, after the restart
    assert [(e.token, e.unit_count) for e in smart_station.events("ballot_counted")] == [(1, 1), (None, 2)]
    assert smart_station.events("box_counter_noted") == [ev.BoxCounterNoted(0, None, CHIP_ID)]
    assert app.counters()["ballots"] == 2


def test_a_unit_first_heard_after_start_with_the_beam_blocked_reports_a_jam(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir, beam_blocked=True, lid_open=True)
    station = Station(rig)
    rig.wire.fault = lambda frames: []   # silent while the station starts
    inputs = station.start()
    assert (inputs.beam_blocked, inputs.lid_open, inputs.unit_drops) == (False, False, None)
    rig.wire.fault = None
    station.advance(0.3)
    assert rig.names() == [BoxSignal.UNIT_LOST, BoxSignal.UNIT_FOUND, BoxSignal.JAMMED, BoxSignal.LID_OPENED]
    assert station.alarms() == ["jam", "lid_opened"] and station.counted() == []
