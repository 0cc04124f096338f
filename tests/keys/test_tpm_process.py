"""The TPM-held key through the real process: ``pollbox run`` signing every record in a software TPM.

The demo station's key file is replaced, as a technician provisions a unit
with a TPM, by ``pollbox-provision unit keygen`` and ``enroll-request`` with
``[key] store = "tpm"`` in the config; the CEC enrolls the request into the
device registry of a real receiver (waitress on loopback). The unit opens,
admits voters and closes; the receiver stores every record, each naming
``"alg":"p256"`` and the TPM key's id, the zero and close reports naming the
software that signed them. Then the TPM is cleared, and
``pollbox run`` refuses to start with the technician's message. The
technician's readiness check and zeroize sign with the TPM key too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import waitress
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.demo import STATION, demo_pins, make_demo_station
from device.package import public_key_from_b64
from device.software import running_software
from device.webserver import ServerThread
from protocol.envelope import parse_line
from protocol.keys import P256
from provisioning.enrollment import enroll, record_enrollment
from receiver.app import create_app
from tests.keys.swtpm import SoftTpm, needs_swtpm
from tests.process_station import ROOT, RunningStation, child_env, free_port

pytestmark = needs_swtpm

DELIVERED_WITHIN = 60.0  # seconds for the unit's outbox to reach the receiver over loopback


@dataclass
class TpmStation:
    directory: Path
    tpm: SoftTpm
    receiver: Any = None
    server: ServerThread | None = None

    @property
    def config(self) -> Path:
        return self.directory / "station.toml"

    def provision(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "provisioning.cli", "unit", *args, "--config", str(self.config)],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)


@pytest.fixture
def station(tmp_path: Path, soft_tpm: SoftTpm) -> Iterator[TpmStation]:
    port = free_port()
    config = make_demo_station(tmp_path / "station", voters=50, receiver_url=f"http://127.0.0.1:{port}")
    data = config.parent / "data"
    for name in ("device.key", "device.pub"):
        (data / name).unlink()
    config.write_text(config.read_text() + f'\n[key]\nstore = "tpm"\ntcti = "{soft_tpm.tcti}"\n')
    made = TpmStation(config.parent, soft_tpm)
    keygen = made.provision("keygen")
    assert keygen.returncode == 0, keygen.stderr
    request = config.parent / "request.json"
    asked = made.provision("enroll-request", "--station", STATION, "--serial", "SN-TPM-1", "--out", str(request))
    assert asked.returncode == 0, asked.stderr
    cec = Ed25519PrivateKey.from_private_bytes((config.parent / "cec.key").read_bytes())
    (config.parent / "certs").mkdir()
    enroll([request], config.parent / "registry.json", cec, config.parent / "certs", time.time())
    rx = create_app({"DATABASE_URL": str(config.parent / "receiver.db"),
                     "REGISTRY_PATH": str(config.parent / "registry.json"),
                     "CEC_PUBLIC_KEY": (config.parent / "cec.pub").read_text().strip(),
                     "RECEIVER_KEY_PATH": str(config.parent / "receiver.key"), "TESTING": True})
    made.server = ServerThread(waitress.create_server(rx, host="127.0.0.1", port=port, threads=2)).start()
    made.receiver = rx.extensions["pollbox_receiver"]
    yield made
    made.server.stop()
    made.receiver.storage.close()


def wait_delivered(running: RunningStation, station: TpmStation) -> int:
    """Poll (no sleep: a named deadline) until the receiver holds every record the unit signed."""
    deadline = time.monotonic() + DELIVERED_WITHIN
    while True:
        up = running.status()["upstream"]
        stored = int(station.receiver.storage.highest_seq(STATION))
        if up["waiting"] == 0 and stored == up["last_seq"] > 0:
            return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered within {DELIVERED_WITHIN:g} s: unit {up}, receiver {stored}")
        running.control({"cmd": "status"})  # a round trip to the unit between looks


def test_pollbox_run_signs_every_record_in_the_tpm_and_the_receiver_takes_them(station: TpmStation) -> None:
    request = json.loads((station.directory / "request.json").read_text())
    assert request["alg"] == P256 and not (station.directory / "data" / "device.key").exists()
    running = RunningStation(station.directory).start()
    try:
        running.ok({"cmd": "open"})
        for pin in demo_pins(3):
            assert running.ok({"cmd": "manual", "number": pin})["decision"]["outcome"] == "admitted"
            running.ok({"cmd": "drop"})
        running.ok({"cmd": "close"})
        stored = wait_delivered(running, station)
    finally:
        assert running.stop() == 0, running.stderr()[-2000:]
    storage = station.receiver.storage
    lines = [parse_line(storage.record_line(STATION, seq)) for seq in range(1, stored + 1)]
    assert stored >= 2 and {r.alg for r in lines} == {P256} and {r.key for r in lines} == {request["key_id"]}
    assert {"polls_opened", "polls_closed"} <= {r.type for r in lines}
    software = running_software()  # this checkout's code, which the child process runs
    for report in (r for r in lines if r.type in ("polls_opened", "polls_closed")):
        assert (report.body["software_version"], report.body["software_hash"]) == (software["version"],
                                                                                    software["hash"])


def test_pollbox_run_refuses_to_start_on_a_cleared_tpm(station: TpmStation) -> None:
    station.tpm.clear()
    started = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(station.config), "run"],
                             capture_output=True, text=True, cwd=station.directory, env=child_env(), timeout=120,
                             check=False)
    assert started.returncode != 0
    assert "TPM was cleared" in started.stderr and "docs/keys.md" in started.stderr, started.stderr[-2000:]
    assert not (station.directory / "data" / "journal.db").exists()


def test_readiness_and_zeroize_use_the_tpm_key(station: TpmStation) -> None:
    """The technician's readiness check signs its note with the TPM key (naming the software); zeroize signs its
    record with it and wipes the key's blob, after which the unit cannot sign again."""
    request = json.loads((station.directory / "request.json").read_text())
    cert = next((station.directory / "certs").iterdir())  # the CEC's certificate, brought back to the unit
    record_enrollment(cert, public_key_from_b64((station.directory / "cec.pub").read_text().strip()),
                      station.directory / "data")
    ready = station.provision("readiness")
    assert f"device key {request['key_id']} enrolled" in ready.stdout, ready.stdout + ready.stderr
    storage = station.receiver.storage
    notes = [parse_line(storage.record_line(STATION, seq)) for seq in range(1, storage.highest_seq(STATION) + 1)]
    readiness = [r for r in notes if r.type == "annotation" and r.body["topic"] == "readiness"]
    assert readiness and readiness[-1].alg == P256 and readiness[-1].body["software_hash"] == \
        running_software()["hash"]
    wiped = station.provision("zeroize")
    assert wiped.returncode == 0, wiped.stderr
    record = json.loads((station.directory / "data" / "zeroize-record.json").read_text())
    assert record["alg"] == P256 and record["key"] == request["key_id"] and "device.tpm" in record["wiped"]
    assert not (station.directory / "data" / "device.tpm").exists()
