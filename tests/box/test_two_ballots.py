"""Fault: two ballots pushed in on one identification."""

from __future__ import annotations

from .conftest import RigFactory
from .rigs import Station


def test_second_ballot_is_counted_and_alarmed(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    token = station.admit()
    station.advance(0.05)
    station.drop()
    assert not rig.slot_open, "the slot locks after one ballot"
    station.drop()  # forced past the locked flap
    assert station.counted() == [token, None]
    assert station.alarms() == ["second_ballot"]


def test_two_admissions_two_ballots_no_alarm(make_rig: RigFactory) -> None:
    rig = make_rig()
    station = Station(rig)
    station.start()
    first = station.admit()
    station.advance(0.05)
    station.drop()
    second = station.admit()
    station.advance(0.05)
    assert rig.slot_open
    station.drop()
    assert station.counted() == [first, second]
    assert station.alarms() == []
