"""Production wiring: the registry builds the real backends by name from their typed settings, and a
production unit refuses simulated parts and a plain-HTTP receiver, each with a clear error."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from device import config as schema
from device.config import Config, HardwareSettings, KeyboardSettings, SerialSettings, load_config
from device.core.delays import Delays
from device.hardware import registry
from device.hardware.boxes.pins import DEFAULT_PINS, PinSpec
from device.hardware.clock import FakeClock
from device.hardware.registry import BackendError, build_box, build_decoder, build_scanner


def production(tmp_path: Path, **settings: Any) -> Config:
    hardware = HardwareSettings(**{"ballot_box": "gpio", "scanner": "keyboard", **settings})
    return Config(path=tmp_path / "station.toml", mode="production", election_id="e", cec_public_key="k",
                  station_package=tmp_path / "p.json", data_dir=tmp_path, hardware=hardware)


def test_every_config_name_has_a_factory() -> None:
    assert tuple(registry.BOXES) == schema.BOXES
    assert tuple(registry.SCANNERS) == schema.SCANNERS
    assert tuple(registry.DECODERS) == schema.DECODERS


def test_gpio_box_from_the_default_pin_map_locks_at_start(fake_gpio: tuple[Any, Any], tmp_path: Path) -> None:
    module, fake = fake_gpio
    box = build_box(production(tmp_path), clock=FakeClock(), delays=Delays(), timers=False)
    assert isinstance(box, module.GpioBallotBox) and box.pins == DEFAULT_PINS
    box.start(lambda *a: None)
    try:
        assert not box.health()["slot_open"]
    finally:
        box.stop()


def test_gpio_box_gets_the_configured_pin_map(fake_gpio: tuple[Any, Any], tmp_path: Path) -> None:
    module, _ = fake_gpio
    pins = replace(DEFAULT_PINS, lock=PinSpec(6, False))
    box = build_box(production(tmp_path, pins=pins), clock=FakeClock(), delays=Delays(), timers=False)
    assert isinstance(box, module.GpioBallotBox) and box.pins.lock == PinSpec(6, False)


def test_keyboard_scanner_needs_its_device(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="hardware.keyboard.device"):
        build_scanner(production(tmp_path), clock=FakeClock())
    config = production(tmp_path, keyboard=KeyboardSettings(device="Honeywell", layout="de"))
    scanner = build_scanner(config, clock=FakeClock())
    from device.hardware.scanners.keyboard import KeyboardScanner
    assert isinstance(scanner, KeyboardScanner) and scanner.state().value == "disconnected"
    assert (scanner.device, scanner.layout.name) == ("Honeywell", "de")


def test_serial_scanner_from_its_settings(tmp_path: Path) -> None:
    config = production(tmp_path, scanner="serial", serial=SerialSettings(port="/dev/ttyUSB3", baudrate=19200))
    scanner = build_scanner(config, clock=FakeClock())
    assert scanner.name == "serial" and scanner.state().value == "disconnected"


def test_missing_library_names_it_and_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "device.hardware.scanners.serial", raising=False)
    monkeypatch.setitem(sys.modules, "serial", None)  # pyserial not installed
    with pytest.raises(BackendError, match=r"serial scanner backend needs the serial library.*pollbox\[scan\]"):
        build_scanner(production(tmp_path, scanner="serial"), clock=FakeClock())


def test_decoder_formats_come_from_the_camera_settings(tmp_path: Path) -> None:
    from device.hardware.decoders.zxing import ZxingDecoder
    camera = replace(schema.CameraSettings(), formats=("qr", "pdf417"))
    decoder = build_decoder(production(tmp_path, camera=camera))
    assert isinstance(decoder, ZxingDecoder) and decoder.formats == ("qr", "pdf417")
    with pytest.raises(BackendError, match="hardware.decoder: the zbar decoder cannot read pdf417"):
        build_decoder(production(tmp_path, decoder="zbar", camera=camera))


def test_unknown_backend_names_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"hardware.ballot_box: unknown backend 'relay' \(known: sim, gpio"):
        build_box(production(tmp_path, ballot_box="relay"), clock=FakeClock(), delays=Delays())
    with pytest.raises(BackendError, match="hardware.scanner: unknown backend 'laser'"):
        build_scanner(production(tmp_path, scanner="laser"), clock=FakeClock())


def test_simulated_parts_refused_even_past_config_validation(tmp_path: Path) -> None:
    sim = production(tmp_path, ballot_box="sim", scanner="sim")
    with pytest.raises(BackendError, match="simulated ballot box refused in production"):
        build_box(sim, clock=FakeClock(), delays=Delays())
    with pytest.raises(BackendError, match="simulated scanner refused in production"):
        build_scanner(sim, clock=FakeClock())
    with pytest.raises(BackendError, match="simulated camera refused in production"):
        build_scanner(production(tmp_path, scanner="simcamera"), clock=FakeClock())


def test_simulated_parts_built_by_name_in_simulation(tmp_path: Path) -> None:
    sim = replace(production(tmp_path, ballot_box="sim", scanner="simcamera"), mode="simulation")
    assert build_box(sim, clock=FakeClock(), delays=Delays(), timers=False).name == "sim"
    assert build_scanner(sim, clock=FakeClock()).name == "sim-camera"


def test_production_unit_refuses_a_plain_http_receiver(tmp_path: Path, demo_template: Path) -> None:
    """The demo package points at http://127.0.0.1: fine in simulation, refused in production."""
    import shutil

    from device.compose import build_appliance
    from device.upstream.uplink import UplinkConfigError
    station = tmp_path / "station"
    shutil.copytree(demo_template, station)
    text = (station / "station.toml").read_text()
    text = text.replace('mode = "simulation"', 'mode = "production"').replace('"sim"', '"serial"', 1)
    text = text.replace('ballot_box = "sim"', 'ballot_box = "smartbox"').replace('transport = "sim"', 'transport = "https"')
    (station / "station.toml").write_text(text)
    with pytest.raises(UplinkConfigError, match="(?i)https"):
        build_appliance(load_config(station / "station.toml"), clock=FakeClock())
