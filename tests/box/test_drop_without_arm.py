"""Fault: a ballot drops while nobody was admitted; it is counted and alarmed."""

from __future__ import annotations

from .conftest import RigFactory
from .rigs import Station


def test_drop_without_arm_is_counted_with_an_alarm(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    station.advance(0.1)
    assert not rig.slot_open
    station.drop()
    assert station.counted() == [None]
    assert station.alarms() == ["drop_without_token"]
    assert not rig.slot_open


def test_drop_after_the_window_is_without_token(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    token = station.admit()
    station.drop()
    station.advance(rig.delays.double_drop_window + 0.5)
    station.drop()
    assert station.counted() == [token, None]
    assert station.alarms() == ["drop_without_token"]
