"""Fault: the drop sensor is already blocked when the unit starts."""

from __future__ import annotations

from device.core import interlock as il
from device.hardware.interfaces import BoxSignal

from .conftest import RigFactory
from .rigs import Station


def test_blocked_at_startup_is_a_jam_not_a_ballot(make_rig: RigFactory) -> None:
    rig = make_rig(beam_blocked=True)
    station = Station(rig)
    inputs = station.start()
    assert inputs.beam_blocked
    station.advance(0.2)
    assert station.counted() == []
    assert station.alarms() == ["jam"]
    assert not rig.slot_open
    rig.clear()
    station.advance(0.2)
    assert rig.names() == [BoxSignal.BEAM_CLEARED]
    assert il.JamEnded() in station.outcomes
    assert station.counted() == []
    station.admit()
    station.advance(0.05)
    assert rig.slot_open
