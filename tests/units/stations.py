"""Three appliances of one station in one process, built by the composition root from their own configs
(``device/sync/demo.py``) with a fake clock; sync servers up, clients driven round by round by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.core import events as ev
from device.demo import demo_pins
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.store.verify import verify_journal
from device.sync.demo import HOME_VOTING, make_demo_units
from tests.process_station import free_port

PINS = demo_pins(40)
HOME_PIN = PINS[HOME_VOTING[0] - 1]


def make_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three units' directories, made once and copied for each test."""
    root = tmp_path_factory.mktemp("units-template") / "units"
    make_demo_units(root, voters=60, web_ports=(free_port(), free_port(), free_port()),
                    sync_ports=(free_port(), free_port(), free_port()))
    return root


class Station:
    """The three units, started with a fake clock each; sync servers up, clients driven by hand."""

    def __init__(self, root: Path) -> None:
        self.clock = FakeClock()
        self.apps: dict[str, Appliance] = {}
        for uid in ("desk-1", "desk-2", "mobile"):
            app = build_appliance(load_config(root / uid / "station.toml"), clock=self.clock)
            app.start(background=False)
            assert app.unit_sync is not None and app.unit_sync.server is not None
            app.unit_sync.server.start()
            app.open_polls()
            self.apps[uid] = app

    def sync(self, *units: str) -> None:
        for uid in units or tuple(self.apps):
            assert self.apps[uid].unit_sync is not None
            self.apps[uid].unit_sync.client.run_once()

    def events(self, uid: str, kind: type[ev.Event]) -> list[Any]:
        return [r.event for r in self.apps[uid].journal.recorded() if isinstance(r.event, kind)]

    def close(self) -> None:
        for app in self.apps.values():
            assert app.unit_sync is not None and app.unit_sync.server is not None
            app.unit_sync.server.close()
            app.stop()


def running_station(template: Path, tmp_path: Path) -> Iterator[Station]:
    """A fresh copy of the three units, started; closed after the test."""
    import shutil
    root = tmp_path / "units"
    shutil.copytree(template, root)
    s = Station(root)
    yield s
    s.close()


def journal_of(directory: Path) -> list[ev.Recorded]:
    """The events of the unit in ``directory`` (a demo unit's folder), after its journal verified."""
    journal = Journal(directory / "data" / "journal.db", "KG-DEMO-0001")
    try:
        report = verify_journal(journal)
        assert report.ok, report.sentence()
        return list(journal.recorded())
    finally:
        journal.close()
