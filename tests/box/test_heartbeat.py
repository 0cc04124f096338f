"""Fault: the station core stops sending heartbeats while the slot is open."""

from __future__ import annotations

import logging

import pytest

from .conftest import RigFactory
from .rigs import Station


def test_heartbeat_loss_locks_the_slot(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.admit()
    station.advance(1.0)
    assert rig.slot_open
    rig.box.heartbeat()
    station.heartbeats = False
    station.advance(rig.delays.heartbeat_timeout - 0.1)
    assert rig.slot_open
    station.advance(0.2)
    assert not rig.slot_open
    assert rig.box.health()["watchdog_tripped"]


def test_heartbeats_back_allow_arming_again(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.heartbeats = False
    station.advance(rig.delays.heartbeat_timeout + 0.2)
    station.heartbeats = True
    station.advance(1.0)
    assert not rig.box.health()["watchdog_tripped"]
    station.admit()
    station.advance(0.05)
    assert rig.slot_open


def test_a_steady_heartbeat_keeps_an_armed_slot_open(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.admit()
    station.advance(rig.delays.arm_timeout - 0.5)
    assert rig.slot_open
    assert rig.box.health()["watchdog_trips"] == 0


def test_the_watchdog_clock_starts_with_the_first_heartbeat_not_with_the_box(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    """The station checks its journal between starting the box and its first heartbeat; a check
    longer than the watchdog period trips nothing (no error, no red lamp); the first heartbeat starts the clock."""
    rig = make_rig()
    with caplog.at_level(logging.ERROR, logger="pollbox.box"):
        rig.start()
        rig.advance(3 * rig.delays.heartbeat_timeout)  # a slow start: no heartbeat yet
    health = rig.box.health()
    assert not health["watchdog_tripped"] and health["watchdog_trips"] == 0
    assert not health.get("unit_watchdog_tripped", False)
    assert "no heartbeat" not in caplog.text
    assert not rig.slot_open
    rig.box.heartbeat()
    rig.advance(rig.delays.heartbeat_timeout - 0.1)
    assert not rig.box.health()["watchdog_tripped"]
    rig.advance(0.3)
    assert rig.box.health()["watchdog_tripped"] and "no heartbeat" in caplog.text
