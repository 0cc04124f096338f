"""Fault family: the link to the CEC is lost. The station keeps working; everything reaches the receiver
once the link returns, or on a USB stick, exactly once and in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import STATION, demo_pins, make_demo_station
from device.hardware.clock import FakeClock
from device.hardware.interfaces import ScanRead
from device.package import public_key_from_b64
from device.webserver import ServerThread
from protocol.envelope import parse_line
from protocol.keys import key_id
from tests.process_station import free_port


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Appliance, Any, FakeClock]]:
    """A demo station whose package points at a real receiver served on loopback."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from receiver.app import create_app
    from receiver.registry import DeviceEntry, Registry

    port = free_port()
    config_path = make_demo_station(tmp_path / "station", voters=50, receiver_url=f"http://127.0.0.1:{port}")
    d = config_path.parent
    device_pub = (d / "data" / "device.pub").read_text().strip()
    registry = Registry()
    registry.add(DeviceEntry(station=STATION, serial="SN-1", public_key=device_pub,
                             key_id=key_id(public_key_from_b64(device_pub)), software="test",
                             enrolled_at="2026-11-20T10:00:00.000000Z"))
    registry.sign_and_save(d / "registry.json", Ed25519PrivateKey.from_private_bytes((d / "cec.key").read_bytes()))
    rx = create_app({"DATABASE_URL": str(d / "receiver.db"), "REGISTRY_PATH": str(d / "registry.json"),
                     "CEC_PUBLIC_KEY": (d / "cec.pub").read_text().strip(),
                     "RECEIVER_KEY_PATH": str(d / "receiver.key"), "TESTING": True})
    server = ServerThread(waitress.create_server(rx, host="127.0.0.1", port=port, threads=2)).start()
    clock = FakeClock()
    app = build_appliance(load_config(config_path), clock=clock)
    app.start(background=False)
    try:
        yield app, rx.extensions["pollbox_receiver"], clock
    finally:
        app.stop()
        server.stop()


def voting_day(app: Appliance, clock: FakeClock, voters: int) -> None:
    app.open_polls()
    for pin in demo_pins(voters):
        app.identify(ScanRead(pin, "qr", "t"))
        app.sim.box.drop()
        clock.advance(30)
    app.sim.box.open_lid()
    app.sim.box.close_lid()
    app.acknowledge_alarm(1, "sealed again")
    clock.advance(app.delays.turnout_snapshot_every)
    app.tick()


def test_offline_day_then_link_returns(wired: tuple[Appliance, Any, FakeClock]) -> None:
    app, receiver, clock = wired
    storage = receiver.storage
    app.sim.cut_link()
    voting_day(app, clock, 10)
    report = app.close_polls()
    result = app.upstream.drain_once(force=True)
    assert result.error and app.upstream.status()["waiting"] > 0 and not app.upstream.status()["online"]
    assert storage.highest_seq(STATION) == 0
    assert app.counters()["identified"] == 10  # the station kept working
    app.sim.restore_link()
    app.upstream.drain_once(force=True)
    status = app.upstream.status()
    assert status["waiting"] == 0 and status["online"]
    assert storage.highest_seq(STATION) == status["delivered_through"] == status["last_seq"]
    types = [parse_line(storage.record_line(STATION, s)).fields["type"] for s in range(1, status["last_seq"] + 1)]
    assert types[0] == "polls_opened" and types[-1] == "polls_closed"
    assert {"alarm_raised", "alarm_acknowledged", "turnout_snapshot"} <= set(types)
    closed = parse_line(report["signed"])
    assert closed.fields["body"]["identified"] == 10 and closed.fields["body"]["difference"] == 0


def test_usb_export_then_network_catches_up(wired: tuple[Appliance, Any, FakeClock], tmp_path: Path) -> None:
    app, receiver, clock = wired
    app.sim.cut_link()
    voting_day(app, clock, 5)
    exported = app.upstream.export(tmp_path / "usb")
    carried = app.upstream.status()["last_seq"]
    app.close_polls()                                   # one more record after the stick left
    for _ in range(2):                                  # importing the same stick twice is harmless
        outcomes = receiver.import_export(exported.read_bytes(), "usb")
        assert all(o.rejection is None for o in outcomes)
        assert receiver.storage.highest_seq(STATION) == carried
    app.sim.restore_link()
    app.upstream.drain_once(force=True)
    status = app.upstream.status()
    assert status["waiting"] == 0 and receiver.storage.highest_seq(STATION) == status["last_seq"] == carried + 1
    assert receiver.storage.count_records() == carried + 1  # nothing stored twice


def test_export_over_the_control_socket_is_journaled(wired: tuple[Appliance, Any, FakeClock], tmp_path: Path) -> None:
    from device.control import handle
    app, _, clock = wired
    app.sim.cut_link()
    voting_day(app, clock, 2)
    answer = handle(app, {"cmd": "export", "path": str(tmp_path / "stick")})
    assert answer["ok"] and answer["result"]["records"] > 0 and Path(answer["result"]["path"]).exists()
    assert [r.event.kind for r in app.journal.recorded()][-1] == "annotation"
