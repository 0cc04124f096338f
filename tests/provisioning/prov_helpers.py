"""Constants, the election plan and a live receiver shared by the provisioning tests (a top-level module).

``serve_receiver`` serves the real receiver (``receiver.app.create_app``) with
waitress on a loopback socket the ``receiver_socket`` fixture reserved (bound,
not listening: until it is served, connecting to it is refused at once, as to
a receiver that is down). The plan's receiver URL names that socket.
``provision`` runs the technician's CLI steps for one unit in a temporary
directory; ``running`` starts its appliance in simulation on a fake clock.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import Config
from device.hardware.clock import FakeClock
from device.keys import write_private
from device.webserver import ServerThread
from provisioning import cli

STATION = "KG-0001"
ELECTION = "kg-2026-test"
NOW = 1_790_000_000.0  # 2026-09-21, before the plan's expiry


def b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


PLAN = """
[election]
id = "{election}"
name = "Test election"
poll_date = "2026-11-29"
opens = "08:00"
closes = "20:00"
timezone = "Asia/Bishkek"
expires_at = "2099-12-31T00:00:00Z"

[receiver]
url = "{url}"
public_key = "{receiver}"

[documents]
pin_rule = {{ country = "KGZ" }}

[[stations]]
id = "{station}"
name = "School No. 5"
region = "Bishkek"
languages = ["ky", "ru"]

[[stations]]
id = "KG-0002"
name = "School No. 6"
region = "Bishkek"
"""


@dataclass
class LiveReceiver:
    app: Any

    @property
    def storage(self) -> Any:
        return self.app.extensions["pollbox_receiver"].storage


@contextmanager
def serve_receiver(sock: socket.socket, directory: Path, registry: Path, cec_public_b64: str,
                   key: Ed25519PrivateKey) -> Iterator[LiveReceiver]:
    """The real receiver with ``registry`` (as the CEC enrollment wrote it) and receipt key ``key`` on ``sock``."""
    import waitress

    from receiver.app import create_app

    write_private(directory / "receiver.key", key)
    app = create_app({"DATABASE_URL": str(directory / "receiver.db"), "REGISTRY_PATH": str(registry),
                      "CEC_PUBLIC_KEY": cec_public_b64, "RECEIVER_KEY_PATH": str(directory / "receiver.key"),
                      "TESTING": True})
    server = ServerThread(waitress.create_server(app, sockets=[sock], threads=2, ident="pollbox-receiver"),
                          name="test-receiver").start()
    try:
        yield LiveReceiver(app)
    finally:
        server.stop()
        app.extensions["pollbox_receiver"].storage.close()


Cec = tuple[Path, Ed25519PrivateKey]


def provision(tmp_path: Path, cec: Cec, plan: Path, voters: Path) -> Path:
    unit = tmp_path / "unit"
    (unit / "data").mkdir(parents=True)
    config = unit / "station.toml"
    config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(cec[1])}"\n'
                      'station_package = "data/station.pkg"\ndata_dir = "data"\n[uplink]\ntransport = "sim"\n')
    stick, cec_dir = tmp_path / "stick" / "pollbox", cec[0].parent
    request = stick / "requests" / "unit.request.json"
    steps = [
        ["unit", "keygen", "--config", str(config)],
        ["unit", "enroll-request", "--config", str(config), "--station", STATION, "--serial", "10000000abcdef",
         "--out", str(request)],
        ["cec", "enroll", "--cec-key", str(cec[0]), "--registry", str(cec_dir / "registry.json"), "--out",
         str(stick), "--plan", str(plan), str(request)],
        ["cec", "package", "--plan", str(plan), "--station", STATION, "--voters", str(voters), "--cec-key",
         str(cec[0]), "--out", str(stick), "--seal-to", str(request)],
        ["unit", "install-package", "--config", str(config), "--from", str(stick)],
    ]
    for step in steps:
        assert cli.main(step) == 0, step
    return config


@contextmanager
def receiver_of(tmp_path: Path, cec: Cec, sock: socket.socket, key: Ed25519PrivateKey) -> Iterator[LiveReceiver]:
    """The CEC receiver with the registry the provisioning CLI's enrollment wrote, serving ``sock``."""
    directory = tmp_path / "receiver"
    directory.mkdir(exist_ok=True)
    with serve_receiver(sock, directory, cec[0].parent / "registry.json", b64(cec[1]), key) as live:
        yield live


@contextmanager
def running(config: Config, now: float) -> Iterator[Appliance]:
    app = build_appliance(config, clock=FakeClock(wall=now))
    app.start(background=False)
    try:
        yield app
    finally:
        app.stop()
