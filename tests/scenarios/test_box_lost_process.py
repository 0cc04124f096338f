"""The ballot box unit lost and heard again, in the real process (``pollbox run``, the simulated box).

The box's cable is pulled (``sim box-unplug``), a voter is identified and admitted meanwhile, the cable
is plugged back in: the slot opens for that voter at once (``arm_resumed`` journaled), and the ballot
they drop is counted against their admission, not as a drop without identification.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.demo import demo_pins
from tests.process_station import RunningStation

SHOWS_WITHIN = 10.0
"""How long the screen's status may take to show the box as it stands (its part is refreshed every tick)."""


def shown(station: RunningStation, what: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The station's status once ``check`` holds on it (polled until ``SHOWS_WITHIN``)."""
    deadline = time.monotonic() + SHOWS_WITHIN
    while True:
        status = station.status()
        if check(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was not shown within {SHOWS_WITHIN:g} s: {status['box']}")
        station.control({"cmd": "status"})  # a round trip between polls, instead of a sleep


def test_a_voter_admitted_while_the_box_was_unplugged_gets_the_slot_when_it_is_plugged_back(
        station_dir: Path) -> None:
    station = RunningStation(station_dir).start()
    try:
        station.ok({"cmd": "open"})
        station.ok({"cmd": "box-unplug"})
        decision = station.ok({"cmd": "scan", "text": demo_pins(5)[0]})["decision"]
        assert decision["outcome"] == "admitted", decision
        shown(station, "the box unplugged", lambda s: not s["box"]["present"])
        station.ok({"cmd": "box-replug"})
        box = shown(station, "the slot open again", lambda s: s["box"]["present"] and s["box"]["slot_open"])["box"]
        assert box["arms_refused"] == 0, box  # the unit was not asked while it could not answer
        station.ok({"cmd": "drop"})
        status = shown(station, "the ballot counted", lambda s: s["counters"]["ballots"] == 1)
        assert [a["kind"] for a in status["alarms"]] == ["box_unit_lost"]  # no drop without identification
    finally:
        assert station.stop() == 0
