"""Fixtures for the units' tests: three units of one station in this process (``stations.py``), and desk-1's
chair's screen served for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device.webserver import ServerThread
from tests.web.conftest import CHAIR_PIN, build_web
from web_ui.pin import set_pin
from web_ui.serve import make_server

from .stations import Station, make_template, running_station


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def station(template: Path, tmp_path: Path) -> Iterator[Station]:
    yield from running_station(template, tmp_path)


@pytest.fixture
def desk1_screen(station: Station, tmp_path: Path) -> Iterator[str]:
    """desk-1's chair's screen served by waitress on a free port, live updates polled every 0.1 s."""
    set_pin(tmp_path / "web" / "chair_pin.json", CHAIR_PIN)
    web = build_web(station.apps["desk-1"], tmp_path / "web", station.clock, SSE_MAX_SECONDS=20.0,
                    SSE_POLL_SECONDS=0.1, SSE_KEEPALIVE_SECONDS=0.5)
    server = ServerThread(make_server(web, "127.0.0.1", 0), name="web").start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
