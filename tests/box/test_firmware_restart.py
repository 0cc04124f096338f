"""Fault: the smart box firmware restarts in the middle of voting (a brown-out, its own watchdog)."""

from __future__ import annotations

from pathlib import Path

from device.hardware.interfaces import BoxSignal

from .rigs import SmartRig, Station


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
    rig.clear()
    station.advance(0.2)
    assert not rig.box.health()["uncounted_block"]
    assert station.counted() == []
