"""Fault: a ballot jams in the slot while it is armed."""

from __future__ import annotations

from device.core import interlock as il

from .conftest import RigFactory
from .rigs import Station


def test_jam_while_armed_counts_once_alarms_and_locks(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    token = station.admit()
    station.advance(0.05)
    assert rig.slot_open
    rig.block()
    station.advance(rig.delays.jam_after / 2)
    assert station.alarms() == []
    station.advance(rig.delays.jam_after / 2 + 0.1)
    assert station.counted() == [token]
    assert station.alarms() == ["jam"]
    assert not rig.slot_open
    assert station.state.jammed


def test_jam_refuses_the_next_arm_until_cleared(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.admit()
    rig.block()
    station.advance(rig.delays.jam_after + 0.1)
    rig.box.arm()  # the station would not, but the unit must refuse on its own
    station.advance(0.05)
    assert not rig.slot_open
    rig.clear()
    station.advance(0.1)
    assert il.JamEnded() in station.outcomes
    assert not station.state.jammed
    assert station.counted() == [1]
