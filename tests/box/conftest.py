"""Fixtures for the ballot box tests: the fake RPi.GPIO module, the staged firmware, one rig per backend."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device.firmware import stage

from .fakes import FakeGPIO
from .rigs import FIRMWARE_MODULES, GpioRig, Rig, SimRig, SmartRig, SmartStation


@pytest.fixture
def fake_gpio(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FakeGPIO]]:
    """A fresh FakeGPIO installed as RPi.GPIO; yields (the gpio backend module, the fake)."""
    fake = FakeGPIO()
    package = types.ModuleType("RPi")
    package.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake)
    module = importlib.import_module("device.hardware.boxes.gpio")
    monkeypatch.setattr(module, "GPIO", fake)
    yield module, fake


@pytest.fixture
def firmware_dir(tmp_path: Path) -> Iterator[Path]:
    """The firmware files as they sit on the Pico, importable by their flat names."""
    target = tmp_path / "pico"
    stage(target, include_main=False)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in FIRMWARE_MODULES:
        sys.modules.pop(name, None)


RigFactory = Callable[..., Rig]


@pytest.fixture(params=["sim", "gpio", "smartbox"])
def make_rig(request: pytest.FixtureRequest) -> Iterator[RigFactory]:
    """Builds a rig for each backend in turn: ``make_rig(beam_blocked=..., lid_open=..., delays=...)``.

    Every box built is stopped at the end of the test (as the appliance does at shutdown).
    """
    built: list[Rig] = []

    def keep(rig: Rig) -> Rig:
        built.append(rig)
        return rig

    if request.param == "sim":
        yield lambda **kw: keep(SimRig(**kw))
    elif request.param == "gpio":
        module, fake = request.getfixturevalue("fake_gpio")
        yield lambda **kw: keep(GpioRig(module, fake, **kw))
    else:
        directory = request.getfixturevalue("firmware_dir")
        yield lambda **kw: keep(SmartRig(directory, **kw))
    for rig in built:
        rig.box.stop()


@pytest.fixture
def smart_station(station_dir: Path, firmware_dir: Path) -> Iterator[SmartStation]:
    """The real appliance on a demo station, with the smart box backend and the real firmware (not yet booted)."""
    station = SmartStation(station_dir, firmware_dir)
    yield station
    if station.app is not None:
        station.shutdown()
