"""A training station for tests: the demo station re-signed as a training package, and a CEC receiver beside it.

``TrainingSetup.make`` writes the demo station (``device.demo``), keeps its live
package as ``live-package.json`` and installs, in its place, the same payload
turned into a training package by ``provisioning.training.training_payload``
and signed with the demo CEC key. A real receiver (``receiver.app``) runs on a
loopback port under waitress, with the unit's device key enrolled for the
training station id (a key is enrolled for one station only). ``stick`` writes a technician's stick folder for
``pollbox-provision unit install-package``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import waitress
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.demo import STATION, make_demo_station
from device.package import public_key_from_b64, sign_package
from device.webserver import ServerThread
from protocol.keys import key_id
from protocol.training import training_station_id
from provisioning.training import training_payload
from tests.process_station import ROOT, child_env, free_port

TRAINING_STATION = training_station_id(STATION)


@dataclass
class TrainingSetup:
    directory: Path
    port: int
    receiver: Any = None
    server: ServerThread | None = None

    @property
    def config(self) -> Path:
        return self.directory / "station.toml"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def cec(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes((self.directory / "cec.key").read_bytes())

    @classmethod
    def make(cls, root: Path, voters: int = 50) -> TrainingSetup:
        port = free_port()
        config = make_demo_station(root / "station", voters=voters, receiver_url=f"http://127.0.0.1:{port}")
        setup = cls(config.parent, port)
        live = setup.directory / "station-package.json"
        shutil.copyfile(live, setup.directory / "live-package.json")
        payload = json.loads(live.read_bytes())["payload"]
        (setup.directory / "training-package.json").write_bytes(sign_package(training_payload(payload), setup.cec))
        shutil.copyfile(setup.directory / "training-package.json", live)
        return setup

    def start_receiver(self) -> Any:
        """The CEC receiver on the package's loopback port; the unit's key enrolled for the training id."""
        from receiver.app import create_app
        from receiver.registry import DeviceEntry, Registry

        d = self.directory
        device_pub = (self.data / "device.pub").read_text().strip()
        registry = Registry()
        registry.add(DeviceEntry(station=TRAINING_STATION, serial="SN-TRAINING", public_key=device_pub,
                                 key_id=key_id(public_key_from_b64(device_pub)), software="test",
                                 enrolled_at="2026-11-20T10:00:00.000000Z"))
        registry.sign_and_save(d / "registry.json", self.cec)
        rx = create_app({"DATABASE_URL": str(d / "receiver.db"), "REGISTRY_PATH": str(d / "registry.json"),
                         "CEC_PUBLIC_KEY": (d / "cec.pub").read_text().strip(),
                         "RECEIVER_KEY_PATH": str(d / "receiver.key"), "TESTING": True})
        self.server = ServerThread(waitress.create_server(rx, host="127.0.0.1", port=self.port, threads=2)).start()
        self.receiver = rx.extensions["pollbox_receiver"]
        return self.receiver

    def stop_receiver(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.receiver is not None:
            self.receiver.storage.close()
            self.receiver = None

    def stick(self, name: str, package: str, list_key: bytes) -> Path:
        """A technician's stick folder holding ``package`` (a file of the station folder) and a plain list key."""
        folder = self.directory / name
        folder.mkdir(exist_ok=True)
        shutil.copyfile(self.directory / package, folder / "station.pkg")
        (folder / "list.key").write_bytes(list_key)
        (folder / "list.key").chmod(0o600)
        return folder

    def provision(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``pollbox-provision unit ...`` on this station, as the technician runs it."""
        return subprocess.run([sys.executable, "-m", "provisioning.cli", "unit", *args, "--config", str(self.config)],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), input=stdin, timeout=120,
                              check=False)

    def run_briefly(self) -> subprocess.CompletedProcess[str]:
        """``pollbox run`` when it is expected to refuse to start: it must exit on its own."""
        return subprocess.run([sys.executable, "-m", "device.cli", "--config", str(self.config), "run"],
                              capture_output=True, text=True, cwd=self.directory, env=child_env(), timeout=120,
                              check=False)
