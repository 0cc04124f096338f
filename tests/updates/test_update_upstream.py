"""The CEC sees a unit's updates: installs, refusals, boots and rollbacks go upstream as signed records.

Through the real processes: ``pollbox run`` on a demo station with the
simulated updater, its uplink to a real receiver (``receiver.app`` under
waitress on loopback, the demo unit enrolled with ``receiver.cli enroll``).
The technician's session: a forged bundle refused, a good one installed and
booted at the next start, one whose trial boot fails installed and rolled back
at the start after; opening the polls while an install is held open. The
receiver stores each as a record of its own type and lists it on the station's
page.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import waitress

from device.demo import STATION, make_demo_station
from device.updates.sim import sim_bundle
from device.webserver import ServerThread
from receiver.app import create_app
from tests.process_station import ROOT, RunningStation, child_env, free_port
from tests.updates.test_update_process import journal_kinds, pollbox, wait_until

DELIVERED_WITHIN = 60.0
"""Seconds for the unit's outbox to reach the receiver over loopback."""
SIM = '\n[update]\nbackend = "sim"\n'


@dataclass
class Cec:
    config: Path
    receiver: Any


@pytest.fixture
def cec(tmp_path: Path) -> Iterator[Cec]:
    port = free_port()
    config = make_demo_station(tmp_path / "station", voters=20, receiver_url=f"http://127.0.0.1:{port}")
    here = config.parent
    enrolled = subprocess.run([sys.executable, "-m", "receiver.cli", "enroll", "--registry", str(here / "registry.json"),
                               "--cec-key", str(here / "cec.key"), "--station", STATION, "--public-key-file",
                               str(here / "data" / "device.pub"), "--serial", "demo-unit", "--software", "demo"],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)
    assert enrolled.returncode == 0, enrolled.stderr
    app = create_app({"DATABASE_URL": str(here / "receiver.db"), "REGISTRY_PATH": str(here / "registry.json"),
                      "CEC_PUBLIC_KEY": (here / "cec.pub").read_text().strip(),
                      "RECEIVER_KEY_PATH": str(here / "receiver.key"), "TESTING": True})
    server = ServerThread(waitress.create_server(app, host="127.0.0.1", port=port, threads=2)).start()
    try:
        yield Cec(config, app)
    finally:
        server.stop()
        app.extensions["pollbox_receiver"].storage.close()


def update_records(cec: Cec) -> list[tuple[str, dict[str, Any]]]:
    """The receiver's stored update records of the demo station, oldest first."""
    records = reversed(cec.receiver.extensions["pollbox_receiver"].storage.records_of(STATION))
    return [(r["type"], r["body"]) for r in records if r["type"].startswith(("update_", "polls_held"))]


def delivered(running: RunningStation, cec: Cec, count: int) -> list[tuple[str, dict[str, Any]]]:
    """Poll (a named deadline, no sleep) until the receiver holds ``count`` update records of the station."""
    deadline = time.monotonic() + DELIVERED_WITHIN
    while len(found := update_records(cec)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered within {DELIVERED_WITHIN:g} s: {found}")
        running.control({"cmd": "status"})  # a round trip to the unit between looks
    return found


def test_installs_refusals_boots_and_rollbacks_reach_the_cec(tmp_path: Path, cec: Cec) -> None:
    config = cec.config
    forged, good, broken, held = (tmp_path / f"{n}.bundle" for n in ("forged", "good", "broken", "held"))
    forged.write_text(sim_bundle(version="6.6.6", signed_by="someone"))
    good.write_text(sim_bundle(version="0.3.0"))
    broken.write_text(sim_bundle(version="0.4.0", boots=False))
    held.write_text(sim_bundle(version="0.5.0", hold=True))
    station = RunningStation(config.parent, extra_config=SIM).start()
    try:
        assert pollbox(config, "update", str(forged)).returncode == 2
        assert pollbox(config, "update", str(good)).returncode == 0
    finally:
        station.stop()
    station = RunningStation(config.parent).start()  # boots slot B: update_booted
    try:
        assert pollbox(config, "update", str(broken)).returncode == 0  # into slot A, whose trial will fail
    finally:
        station.stop()
    station = RunningStation(config.parent).start()  # back on B: update_rolled_back
    update: subprocess.Popen[str] | None = None
    try:
        update = subprocess.Popen([sys.executable, "-m", "device.cli", "--config", str(config), "update", str(held)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                  env=child_env())
        wait_until("the held install started", lambda: journal_kinds(station).count("update_started") == 3)
        assert pollbox(config, "chair", "open").returncode == 2  # refused and journaled: the install holds them
        (config.parent / "data" / "update-sim" / "release").touch()
        out, err = update.communicate(timeout=DELIVERED_WITHIN)
        assert update.returncode == 0, err
        updates = delivered(station, cec, 10)
    finally:
        if update is not None and update.poll() is None:
            update.kill()
            update.communicate()
        station.stop()
    assert [t for t, _ in updates] == ["update_refused", "update_started", "update_installed", "update_booted",
                                       "update_started", "update_installed", "update_rolled_back",
                                       "update_started", "polls_held_for_update", "update_installed"]
    refused = updates[0][1]
    assert (refused["reason"], refused["version"]) == ("bad_signature", "6.6.6")
    assert updates[3][1]["slot"] == "B" and updates[3][1]["version"] == "0.3.0"
    rolled = updates[6][1]
    assert (rolled["version"], rolled["slot"], rolled["booted"], rolled["booted_version"]) == ("0.4.0", "A", "B",
                                                                                              "0.3.0")
    assert updates[8][1] == {**updates[8][1], "action": "open", "version": "0.5.0"}
    page = cec.receiver.test_client().get(f"/stations/{STATION}").get_data(as_text=True)
    for kind in ("update_refused", "update_booted", "update_rolled_back", "polls_held_for_update"):
        assert f"<td>{kind}</td>" in page
