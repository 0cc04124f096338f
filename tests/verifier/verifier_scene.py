"""Test kit for the verifier page. A polling day: a demo station wired to a real receiver on loopback, polls closed.

``scene`` (one per module) builds the verifier page (``verifier.build``), runs the receiver with waitress
on a free port (serving ``/verify/``, the registry and the public log) and a demo station whose uplink
points at it, opens the polls, admits voters, closes, and delivers every record. It holds the close
report's signed line, the QR code the station's own close-report page draws (``web_ui.report.qr_svg``),
the device key (to sign the bad variants a forger would try) and the receiver's keys and registry.

``verifier.fakecamera.camera_frames`` turns a QR picture into the video Chromium's fake camera plays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import waitress
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import STATION, demo_pins, make_demo_station
from device.hardware.clock import FakeClock
from device.hardware.interfaces import ScanRead
from device.keys import load_device_key
from device.package import public_key_from_b64
from device.webserver import ServerThread
from protocol.keys import key_id
from receiver.registry import DeviceEntry, Registry
from tests.process_station import free_port

ELECTION_DATE = "2027-01-15"  # the fake clock's day (1_800_000_000 is 2027-01-15 08:00 UTC)


@dataclass
class Scene:
    url: str
    directory: Path
    line: str
    device_key: Ed25519PrivateKey
    cec_key: Ed25519PrivateKey
    receiver_public: str
    appliance: Appliance
    receiver: Any

    @property
    def registry_path(self) -> Path:
        return self.directory / "registry.json"


def _registry(directory: Path, device_pub: str, cec: Ed25519PrivateKey) -> None:
    registry = Registry()
    registry.add(DeviceEntry(station=STATION, serial="SN-1", public_key=device_pub,
                             key_id=key_id(public_key_from_b64(device_pub)), software="test",
                             enrolled_at="2026-11-20T10:00:00.000000Z"))
    registry.sign_and_save(directory / "registry.json", cec)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    from receiver.app import create_app
    from verifier.build import build

    build(Path(__file__).resolve().parents[2] / "receiver" / "static")
    tmp = tmp_path_factory.mktemp("verifier")
    port = free_port()
    config_path = make_demo_station(tmp / "station", voters=50, receiver_url=f"http://127.0.0.1:{port}")
    d = config_path.parent
    device_pub = (d / "data" / "device.pub").read_text().strip()
    cec = Ed25519PrivateKey.from_private_bytes((d / "cec.key").read_bytes())
    _registry(d, device_pub, cec)
    rx = create_app({"DATABASE_URL": str(d / "receiver.db"), "REGISTRY_PATH": str(d / "registry.json"),
                     "CEC_PUBLIC_KEY": (d / "cec.pub").read_text().strip(),
                     "RECEIVER_KEY_PATH": str(d / "receiver.key"), "TESTING": True,
                     "ELECTION_NAME": "test election", "ELECTION_DATE": ELECTION_DATE})
    server = ServerThread(waitress.create_server(rx, host="127.0.0.1", port=port, threads=4)).start()
    clock = FakeClock()
    app = build_appliance(load_config(config_path), clock=clock)
    app.start(background=False)
    try:
        app.open_polls()
        for pin in demo_pins(7):
            app.identify(ScanRead(pin, "qr", "t"))
            app.sim.box.drop()
            clock.advance(40)
        line = app.close_polls()["signed"]
        app.upstream.drain_once(force=True)
        assert app.upstream.status()["waiting"] == 0
        receiver_public = (d / "receiver.pub").read_text().strip() if (d / "receiver.pub").exists() else None
        if receiver_public is None:
            from protocol.keys import public_b64
            receiver_public = public_b64(rx.extensions["pollbox_receiver"].key.public_key())
        yield Scene(f"http://127.0.0.1:{port}", d, line, load_device_key(d / "data"), cec, receiver_public, app,
                    rx.extensions["pollbox_receiver"])
    finally:
        app.stop()
        server.stop()
        rx.extensions["pollbox_receiver"].storage.close()
