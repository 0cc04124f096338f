"""``pollbox update`` through the real process: ``pollbox run`` on a demo station, the command as a technician types it.

With the RAUC backend (real ``rauc info`` against a test CA's keyring): an
impostor's bundle, one for other hardware and a cut-short one are refused with
their reason on the command line and in the journal; a good bundle is accepted
and handed to ``rauc install``, which fails on this host (no RAUC service on a
system D-Bus), so the journal holds ``update_started`` then ``update_failed``;
with the polls open even the good bundle is refused. With the simulated
updater a good bundle is installed into slot B. The journal is read after the
process stopped, from its SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.demo import make_demo_station
from device.updates.sim import sim_bundle
from tests.process_station import ROOT, RunningStation, child_env
from tests.updates.kit import UpdateKit, make_kit, needs_rauc


def pollbox(config: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device.cli", "--config", str(config), *words], capture_output=True,
                          text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)


def journaled(station: RunningStation) -> list[tuple[str, dict[str, object]]]:
    """The update events in the station's journal, in order."""
    path = next((station.dir / "data").glob("*.db"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT kind, body FROM events WHERE kind LIKE 'update_%' ORDER BY seq").fetchall()
    return [(kind, json.loads(body)) for kind, body in rows]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> UpdateKit:
    return make_kit(tmp_path_factory.mktemp("update-kit"))


def rauc_config(kit_folder: Path) -> str:
    return f'\n[update]\nbackend = "rauc"\nsystem_conf = "{kit_folder / "unit" / "system.conf"}"\n'



@needs_rauc
def test_bad_bundles_are_refused_with_their_reason_and_journaled(tmp_path: Path, kit: UpdateKit) -> None:
    config = make_demo_station(tmp_path / "station", voters=20)
    station = RunningStation(config.parent, extra_config=rauc_config(kit.folder)).start()
    try:
        cut = tmp_path / "cut.raucb"
        good = kit.bundle("good")
        cut.write_bytes(good.read_bytes()[:-300])
        expect = [(kit.bundle("foreign", impostor=True), "bad_signature", "not signed by the CEC's update key"),
                  (kit.bundle("pi", compatible="pollbox-rpi"), "wrong_compatible", "'pollbox-rpi'"),
                  (cut, "truncated", "cut short")]
        for bundle, reason, words in expect:
            done = pollbox(config, "update", str(bundle))
            assert done.returncode == 2, done.stdout
            assert f"update refused ({reason})" in done.stderr and words in done.stderr
            assert "nothing was written" in done.stderr
        done = pollbox(config, "update", str(good))  # taken, then rauc install fails: no RAUC service here
        assert done.returncode == 2 and "RAUC did not install the bundle" in done.stderr, done.stderr
        assert pollbox(config, "chair", "open").returncode == 0
        done = pollbox(config, "update", str(good))
        assert done.returncode == 2 and "update refused (polls_open)" in done.stderr
        assert "the polls are open" in done.stderr
    finally:
        station.stop()
    events = journaled(station)
    assert [k for k, _ in events] == ["update_refused"] * 3 + ["update_started", "update_failed", "update_refused"]
    assert [b["reason"] for k, b in events if k == "update_refused"] == [
        "bad_signature", "wrong_compatible", "truncated", "polls_open"]
    started = events[3][1]
    assert started["version"] == "0.2.0" and started["compatible"] == "pollbox-amd64"
    assert "pollbox update signer" in str(started["signer"])
    assert "D-Bus" in str(events[4][1]["detail"])


def test_the_simulated_updater_installs_into_the_other_slot(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=20)
    station = RunningStation(config.parent, extra_config='\n[update]\nbackend = "sim"\n').start()
    try:
        bundle = tmp_path / "sim.bundle"
        bundle.write_text(sim_bundle(version="0.3.0"))
        done = pollbox(config, "update", str(bundle))
        assert done.returncode == 0, done.stderr
        assert "update 0.3.0" in done.stdout and "installed into slot B" in done.stdout
        assert "boots the new slot once on trial" in done.stdout
        forged = tmp_path / "forged.bundle"
        forged.write_text(sim_bundle(signed_by="someone"))
        done = pollbox(config, "update", str(forged))
        assert done.returncode == 2 and "update refused (bad_signature)" in done.stderr
    finally:
        station.stop()
    assert [k for k, _ in journaled(station)] == ["update_started", "update_installed", "update_refused"]
    assert (config.parent / "data" / "update-sim" / "slot-B.bundle").read_text() == bundle.read_text()


def test_a_production_station_refuses_the_simulated_updater(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=20)
    text = config.read_text().replace('mode = "simulation"', 'mode = "production"')
    config.write_text(text + '\n[update]\nbackend = "sim"\n')
    done = pollbox(config, "status")
    assert done.returncode == 2 and "update.backend: the simulated updater is refused in production mode" in done.stderr


HELD_DEADLINE = 60.0
"""Seconds the test waits for a held install to show in the journal, or for it to end once released."""


def journal_kinds(station: RunningStation) -> list[str]:
    path = next((station.dir / "data").glob("*.db"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [str(k) for (k,) in db.execute("SELECT kind FROM events ORDER BY seq").fetchall()]


def wait_until(what: str, check: Callable[[], bool], deadline: float = HELD_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline:.0f} s")
        threading.Event().wait(0.05)


def test_the_polls_are_not_opened_while_an_update_installs(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=20)
    station = RunningStation(config.parent, extra_config='\n[update]\nbackend = "sim"\n').start()
    update: subprocess.Popen[str] | None = None
    try:
        bundle = tmp_path / "held.bundle"
        bundle.write_text(sim_bundle(version="0.4.0", hold=True))
        update = subprocess.Popen([sys.executable, "-m", "device.cli", "--config", str(config), "update", str(bundle)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())
        wait_until("the install started", lambda: "update_started" in journal_kinds(station))
        refused = pollbox(config, "chair", "open")
        assert refused.returncode == 2, refused.stdout
        assert "software update 0.4.0 is being written into the other root slot" in refused.stderr
        assert station.status()["poll"] == "setup"
        (config.parent / "data" / "update-sim" / "release").touch()
        out, err = update.communicate(timeout=HELD_DEADLINE)
        assert update.returncode == 0 and "installed into slot B" in out, err
        assert pollbox(config, "chair", "open").returncode == 0
    finally:
        if update is not None and update.poll() is None:
            update.kill()
        station.stop()
    kinds = [k for k in journal_kinds(station) if k.startswith(("update_", "polls_"))]
    assert kinds == ["update_started", "polls_held_for_update", "update_installed", "polls_opened"]
