"""Production wiring: the registry builds the real backends by name, and a production unit refuses
simulated parts and a plain-HTTP receiver, each with a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.config import Config, load_config
from device.core.delays import Delays
from device.hardware.clock import FakeClock
from device.hardware.registry import BackendError, build_box, build_scanner


def production(tmp_path: Path, **hardware: Any) -> Config:
    return Config(path=tmp_path / "station.toml", mode="production", election_id="e", cec_public_key="k",
                  station_package=tmp_path / "p.json", data_dir=tmp_path, hardware=hardware,
                  **{k: v for k, v in (("ballot_box", "gpio"), ("scanner", "keyboard"))})


def test_gpio_box_from_the_default_pin_map_locks_at_start(fake_gpio: tuple[Any, Any], tmp_path: Path) -> None:
    module, fake = fake_gpio
    box = build_box(production(tmp_path), clock=FakeClock(), delays=Delays(), timers=False)
    assert isinstance(box, module.GpioBallotBox)
    box.start(lambda *a: None)
    try:
        assert not box.health()["slot_open"]
    finally:
        box.stop()


def test_bad_pin_table_is_a_clear_error(fake_gpio: tuple[Any, Any], tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="hardware.pins"):
        build_box(production(tmp_path, pins={"lock": {"bcm": 99}}), clock=FakeClock(), delays=Delays())


def test_keyboard_scanner_needs_its_device(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="hardware.keyboard.device"):
        build_scanner(production(tmp_path), clock=FakeClock())
    scanner = build_scanner(production(tmp_path, keyboard={"device": "Honeywell", "layout": "de"}), clock=FakeClock())
    assert scanner.name and scanner.state().value == "disconnected"


def test_simulated_parts_refused_even_past_config_validation(tmp_path: Path) -> None:
    config = production(tmp_path)
    sim = Config(**{**config.__dict__, "ballot_box": "sim", "scanner": "sim"})
    with pytest.raises(BackendError, match="simulated ballot box refused in production"):
        build_box(sim, clock=FakeClock(), delays=Delays())
    with pytest.raises(BackendError, match="simulated scanner refused in production"):
        build_scanner(sim, clock=FakeClock())


def test_production_unit_refuses_a_plain_http_receiver(tmp_path: Path, demo_template: Path) -> None:
    """The demo package points at http://127.0.0.1: fine in simulation, refused in production."""
    import shutil

    from device.appliance import build_appliance
    from device.upstream.uplink import UplinkConfigError
    station = tmp_path / "station"
    shutil.copytree(demo_template, station)
    text = (station / "station.toml").read_text()
    text = text.replace('mode = "simulation"', 'mode = "production"').replace('"sim"', '"serial"', 1)
    text = text.replace('ballot_box = "sim"', 'ballot_box = "smartbox"').replace('transport = "sim"', 'transport = "https"')
    (station / "station.toml").write_text(text)
    with pytest.raises(UplinkConfigError, match="(?i)https"):
        build_appliance(load_config(station / "station.toml"), clock=FakeClock())
