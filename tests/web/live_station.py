"""A running station for browser tests: the appliance and waitress in this process, on a free port.

The appliance runs its own loop thread on a fake clock; the web server runs
in a thread. ``restart`` stops both and starts them again on the same port
and data, as a power cycle of the unit would.
"""

from __future__ import annotations

from pathlib import Path

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.hardware.clock import FakeClock
from device.webserver import ServerThread
from web_ui import create_app
from web_ui.serve import make_server


class LiveStation:
    def __init__(self, station_dir: Path, instance: Path, clock: FakeClock, demo_numbers: list[str]) -> None:
        self.station_dir, self.instance, self.clock = station_dir, instance, clock
        self.demo_numbers = demo_numbers
        self.port = 0
        self.appliance: Appliance | None = None
        self._server: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.appliance = build_appliance(load_config(self.station_dir / "station.toml"), clock=self.clock)
        self.appliance.start(background=True)
        web = create_app(self.appliance, {"WALL_CLOCK": self.clock.wall, "SSE_MAX_SECONDS": 20.0,
                                          "SSE_POLL_SECONDS": 0.1, "SSE_KEEPALIVE_SECONDS": 0.5,
                                          "DEMO_NUMBERS": self.demo_numbers, "OBSERVER_RETURN_SECONDS": 1},
                         instance_path=self.instance)
        self._server = ServerThread(make_server(web, "127.0.0.1", self.port), name="web").start()
        self.port = self._server.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.appliance is not None:
            self.appliance.stop()
            self.appliance = None

    def restart(self) -> None:
        self.stop()
        self.start()
