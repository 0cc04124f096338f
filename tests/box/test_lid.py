"""Fault: the lid is opened, while the slot is armed and while it is idle."""

from __future__ import annotations

from device.core import interlock as il

from .conftest import RigFactory
from .rigs import Station


def _lid_alarms(station: Station) -> list[str]:
    return [o.detail for o in station.outcomes if isinstance(o, il.Alarm) and o.kind.value == "lid_opened"]


def test_lid_opened_while_armed_locks_and_alarms(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.admit()
    station.advance(0.05)
    assert rig.slot_open
    rig.open_lid()
    station.advance(0.1)
    assert _lid_alarms(station) == ["while armed"]
    assert not rig.slot_open
    rig.box.arm()
    station.advance(0.05)
    assert not rig.slot_open, "the unit must refuse to open with the lid open"


def test_lid_opened_while_idle_alarms_and_closing_is_seen(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    rig.open_lid()
    station.advance(0.1)
    rig.close_lid()
    station.advance(0.1)
    assert _lid_alarms(station) == ["while idle"]
    assert il.LidShut() in station.outcomes
    assert not rig.slot_open
    station.admit()
    station.advance(0.05)
    assert rig.slot_open
