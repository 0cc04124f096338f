"""Shared fixtures: a demo station in a temporary directory, a fake clock, a started appliance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from device.appliance import Appliance, build_appliance
from device.config import load_config
from device.demo import demo_pins, make_demo_station
from device.hardware.clock import FakeClock

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo station built once per session (keys and a 2,000-voter package)."""
    return make_demo_station(tmp_path_factory.mktemp("demo-template") / "station", voters=2000).parent


@pytest.fixture
def station_dir(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo station with an empty journal."""
    import shutil
    target = tmp_path / "station"
    shutil.copytree(demo_template, target)
    return target


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(station_dir: Path, clock: FakeClock) -> Iterator[object]:
    """Build (and on teardown stop) appliances on the same station directory."""
    built: list[Appliance] = []

    def make(start: bool = True) -> Appliance:
        app = build_appliance(load_config(station_dir / "station.toml"), clock=clock)
        if start:
            app.start(background=False)
        built.append(app)
        return app

    yield make
    for app in built:
        app.stop()  # idempotent: tests that stopped an appliance themselves are fine


@pytest.fixture
def app(make_app: object) -> Appliance:
    return make_app()  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="session")
def pins() -> list[str]:
    return demo_pins(50)
