"""Fault: ballots go into a smart box while the station software is down.

The unit keeps counting on its own (its counter survives in flash); when the
station comes back it compares the unit's counter with the last count in its
journal and records each missing drop once, as a ballot without a token plus
an alarm. A unit whose counter is lower (replaced, or its memory erased)
changes no count and is noted. Real firmware, real smart-box backend, real
appliance and journal; only the Pico's pins and the clock are fakes.
"""

from __future__ import annotations

from typing import Any

import pytest

from device.core import events as ev
from device.core.session import DOWN_DETAIL, UNHEARD_DETAIL
from device.hardware.interfaces import BoxSignal, ScanRead

from .fakes import CHIP_ID
from .rigs import SmartStation

DROP = "drop_without_token"


@pytest.fixture
def station(smart_station: SmartStation) -> SmartStation:
    return smart_station


def vote(station: SmartStation, pin: str) -> None:
    station.app.identify(ScanRead(pin, "qr", "t"))
    station.advance(0.05)
    assert station.unit.slot_open
    station.drop()


def counted(station: SmartStation) -> list[tuple[int | None, int | None]]:
    return [(e.token, e.unit_count) for e in station.events("ballot_counted")]


def test_drops_while_down_are_counted_once_with_alarms(station: SmartStation, pins: list[str]) -> None:
    app = station.boot()
    assert station.events("box_counter_noted") == [ev.BoxCounterNoted(0, None, CHIP_ID)]
    app.open_polls()
    vote(station, pins[0])
    assert counted(station) == [(1, 1)]
    station.shutdown()
    station.advance(station.delays.heartbeat_timeout + 0.1)  # the unit locks on its own
    assert not station.unit.slot_open
    station.drop()                                             # forced through while nobody listens
    station.drop()
    assert station.unit.board.logic.drops == 3

    app = station.boot()
    assert counted(station) == [(1, 1), (None, 2), (None, 3)]
    assert station.alarms() == [(DROP, DOWN_DETAIL), (DROP, DOWN_DETAIL)]
    assert app.counters()["ballots"] == 3 and app.counters()["difference"] == 2
    vote(station, pins[1])                                     # counting goes on from the unit's count
    assert counted(station)[-1] == (2, 4)

    station.shutdown()
    station.boot()                                             # nothing new: nothing recorded twice
    station.shutdown()
    app = station.boot()
    assert counted(station) == [(1, 1), (None, 2), (None, 3), (2, 4)]
    assert len(station.alarms()) == 2
    report = app.close_polls()
    assert (report["ballots"], report["identified"], report["alarms_total"]) == (4, 2, 2)
    assert app.verify().ok


def test_a_lower_counter_adds_nothing_and_is_noted(station: SmartStation, pins: list[str]) -> None:
    app = station.boot()
    app.open_polls()
    vote(station, pins[0])
    station.drop()
    assert app.counters()["ballots"] == 2
    station.shutdown()
    station.restart_unit(erase=True)                           # a different unit, counter at zero

    app = station.boot()
    assert app.counters()["ballots"] == 2
    assert station.events("box_counter_noted")[-1] == ev.BoxCounterNoted(0, 2, CHIP_ID)
    kinds = [k for k, _ in station.alarms()]
    assert kinds == ["second_ballot", "box_unit_replaced"]
    assert "lower than the 2 this station recorded" in station.alarms()[-1][1]
    station.drop()
    assert counted(station)[-1] == (None, 1) and app.counters()["ballots"] == 3
    station.shutdown()
    app = station.boot()
    assert app.counters()["ballots"] == 3 and len(station.events("box_counter_noted")) == 2
    assert app.verify().ok


def test_a_unit_that_answers_late_brings_its_drops_with_it(station: SmartStation) -> None:
    station.boot()
    station.drop()
    station.shutdown()
    station.drop()                                             # counted by the unit only
    station.unit.wire.fault = lambda frames: []                # the unit is silent while the station starts
    app = station.boot()
    assert app.status()["box"]["present"] is False
    station.unit.wire.fault = None
    station.advance(0.5)
    assert app.status()["box"]["present"] is True
    assert counted(station) == [(None, 1), (None, 2)]
    assert station.alarms() == [(DROP, ""), ("box_unit_lost", "no answer from the ballot box unit"),
                                (DROP, UNHEARD_DETAIL)]


def test_a_missed_signal_is_caught_up_by_the_next_count(make_app: Any) -> None:
    """A drop the station did not hear between two heard ones is still counted, once, before the next."""
    app = make_app()
    now = app.clock.monotonic()
    app._on_box_signal(BoxSignal.BEAM_BLOCKED, now, 41)
    app._on_box_signal(BoxSignal.BEAM_CLEARED, now + 0.1)
    app._on_box_signal(BoxSignal.BEAM_BLOCKED, now + 5, 43)
    app._on_box_signal(BoxSignal.BEAM_CLEARED, now + 5.1)
    got = [(e.token, e.unit_count) for e in (r.event for r in app.journal.recorded())
           if isinstance(e, ev.BallotCounted)]
    assert got == [(None, 41), (None, 42), (None, 43)]
    assert [e.unit_count for e in (r.event for r in app.journal.recorded())
            if isinstance(e, ev.BoxCounterNoted)] == [40]
    details = [a["detail"] for a in app.status()["alarms"]]
    assert details.count(UNHEARD_DETAIL) == 1 and app.counters()["ballots"] == 3
