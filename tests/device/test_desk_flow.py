"""The desk in simulation: every document format through the simulated camera, keyboard-mode typing,
double reads, and a scan arriving while the previous decision is still on screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.appliance import Appliance
from device.demo import demo_pins
from device.hardware.interfaces import ScanRead

EXPECTED = [("pin", "code128", 1), ("td1", "datamatrix", 2), ("td3", "datamatrix", 3),
            ("aamva", "pdf417", 2001), ("slip", "qr", 4)]


@pytest.mark.parametrize(("name", "symbology", "line"), EXPECTED)
def test_each_document_image_through_the_camera(app: Appliance, station_dir: Path, name: str,
                                                 symbology: str, line: int) -> None:
    app.open_polls()
    assert app.sim.feed_image(station_dir / "documents" / f"{name}.png") == [symbology]
    assert app.last_decision.outcome == "admitted" and app.last_decision.line == line


def test_every_document_admits_its_own_voter(app: Appliance, station_dir: Path, clock: Any) -> None:
    app.open_polls()
    for name, _, _ in EXPECTED:
        app.sim.feed_image(station_dir / "documents" / f"{name}.png")
        app.sim.box.drop()
        clock.advance(app.delays.duplicate_read_window)
    c = app.counters()
    assert (c["identified"], c["ballots"], c["difference"]) == (5, 5, 0)


@pytest.mark.parametrize("layout", ["us", "de"])
def test_keyboard_mode_scan(app: Appliance, layout: str) -> None:
    app.open_polls()
    app.sim.type_keys(demo_pins(6)[5], layout)
    assert app.last_decision.outcome == "admitted" and app.last_decision.line == 6


def test_front_and_back_of_card_count_once(app: Appliance, station_dir: Path, clock: Any) -> None:
    """The MRZ and the 1D barcode of the same card carry the same number: one check-in."""
    app.open_polls()
    pin = demo_pins(2)[1]
    app.sim.feed_image(station_dir / "documents" / "td1.png")
    clock.advance(1)
    d = app.identify(ScanRead(pin, "code128", "camera"))
    assert d.outcome == "duplicate_read" and d.line == 2
    assert app.counters()["identified"] == 1 and app.counters()["refusals"] == {}


def test_scan_during_previous_decision_is_queued(app: Appliance, clock: Any) -> None:
    app.open_polls()
    pins = demo_pins(3)
    app.identify(ScanRead(pins[0], "qr", "t"))
    clock.advance(1)
    app.identify(ScanRead(pins[1], "qr", "t"))
    desk = app.status()["desk"]
    assert desk["current"]["line"] == 1 and desk["pending"] == 1
    clock.advance(app.delays.decision_display - 1)
    assert app.status()["desk"]["current"]["line"] == 2
    clock.advance(app.delays.decision_display)
    assert app.status()["desk"]["current"] is None
    assert app.counters()["identified"] == 2


def test_garbage_read_twice_counts_once(app: Appliance) -> None:
    app.open_polls()
    assert app.identify(ScanRead("hello world", "qr", "t")).outcome == "invalid_document"
    assert app.identify(ScanRead("hello world", "qr", "t")).outcome == "duplicate_read"
    assert app.counters()["refusals"] == {"invalid_document": 1}
