"""Fault family: a jammed slot. The fake clock advances by exactly the named delay."""

from __future__ import annotations

from typing import Any

from device.appliance import Appliance
from device.hardware.interfaces import BoxSignal, ScanRead


def kinds(app: Appliance) -> list[str]:
    return [a["kind"] for a in app.status()["alarms"]]


def test_jam_while_armed(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    app.sim.box.block_beam()                     # the ballot goes in and sticks
    assert app.counters()["ballots"] == 1 and not app.sim.box.slot_open
    clock.advance(app.delays.jam_after - 0.01)
    app.tick()
    assert kinds(app) == []
    clock.advance(0.01)
    app.tick()
    assert kinds(app) == ["jam"] and app.status()["interlock"]["jammed"]
    app.identify(ScanRead(pins[1], "qr", "t"))   # next voter admitted, but the slot stays locked while jammed
    assert not app.sim.box.slot_open
    app.sim.box.clear_beam()
    assert app.sim.box.slot_open and not app.status()["interlock"]["jammed"]
    app.acknowledge_alarm(1, "cleared with a ruler")
    assert kinds(app) == [] and app.counters()["ballots"] == 1


def test_jam_at_start_up_is_not_a_ballot(make_app: Any, station_dir: Any) -> None:
    app = make_app(start=False)
    app.sim.box.block_beam()  # before start: the level is read at start-up
    app.start(background=False)
    assert app.counters()["ballots"] == 0 and kinds(app) == ["jam"]


def test_jam_is_reported_once(app: Appliance, clock: Any) -> None:
    app.sim.box.block_beam()
    for _ in range(5):
        clock.advance(app.delays.jam_after)
        app.tick()
    assert kinds(app).count("jam") == 1


def test_a_jam_the_unit_reports_is_an_alarm_not_a_ballot(app: Appliance, pins: list[str], clock: Any) -> None:
    """A unit that restarted with its beam blocked says so (JAMMED): alarmed once, never counted, slot locked."""
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    assert app.sim.box.slot_open
    app._on_box_signal(BoxSignal.JAMMED, clock.monotonic())
    app._on_box_signal(BoxSignal.JAMMED, clock.monotonic())   # said again: changes nothing
    clock.advance(app.delays.jam_after)
    app.tick()
    assert kinds(app) == ["jam"] and app.counters()["ballots"] == 0
    assert not app.sim.box.slot_open and app.status()["interlock"]["jammed"]
    app._on_box_signal(BoxSignal.BEAM_CLEARED, clock.monotonic())
    assert not app.status()["interlock"]["jammed"] and app.sim.box.slot_open
    assert [r.event.kind for r in app.journal.recorded()][-1] == "jam_cleared"
