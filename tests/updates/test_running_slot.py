"""Which system runs: the booted slot, its bundle version and root file system hash, signed into the reports.

RAUC's ``status --detailed --output-format=json`` is parsed as RAUC 1.8 writes it
(one object per slot, ``slot_status.bundle.version``, ``slot_status.checksum.sha256``);
the simulated updater gives a fixed factory slot A and, after an install and a
restart, the slot it wrote. Through the real process: a demo station's zero
report names slot A, and after ``pollbox update`` and a restart its close report
names slot B, the bundle's version and its hash; the receiver checks that pair
against the CEC's list.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from device.software import running_software, software_identity
from device.updates import RunningSlot
from device.updates.rauc import booted_slot
from device.updates.sim import SIM_FACTORY_HASH, SIM_FACTORY_VERSION, SimUpdater, sim_bundle
from protocol.envelope import parse_line
from protocol.schema import body_problem

ROOT_SHA = "3b" * 32


def rauc_status(booted: str = "B", *, detail: bool = True, sha: str = ROOT_SHA) -> dict[str, Any]:
    """A ``rauc status --detailed --output-format=json`` answer for the two-slot layout of docs/updates.md."""
    def slot(name: str, bootname: str, state: str, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {"class": "rootfs", "device": f"/dev/disk/by-partlabel/root-{bootname.lower()}",
                                "type": "ext4", "bootname": bootname, "state": state, "parent": None,
                                "mountpoint": "/" if state == "booted" else None, "boot_status": "good"}
        if detail:
            body["slot_status"] = {"bundle": {"compatible": "pollbox-amd64", "version": version,
                                              "hash": "77" * 32},
                                   "checksum": {"sha256": sha, "size": 1_073_741_824},
                                   "installed": {"timestamp": "2026-12-01T10:00:00Z", "count": 1},
                                   "status": "ok"}
        return {name: body}
    return {"compatible": "pollbox-amd64", "variant": "", "booted": booted, "boot_primary": "rootfs.1",
            "slots": [slot("rootfs.0", "A", "booted" if booted == "A" else "inactive", "0.1.0"),
                      slot("rootfs.1", "B", "booted" if booted == "B" else "inactive", "0.2.0+20261206.dd90745")]}


def test_raucs_booted_slot_with_its_bundle_version_and_image_hash() -> None:
    assert booted_slot(rauc_status("B")) == RunningSlot("B", "0.2.0+20261206.dd90745", ROOT_SHA)
    assert booted_slot(rauc_status("A")) == RunningSlot("A", "0.1.0", ROOT_SHA)


@pytest.mark.parametrize("status", [
    rauc_status(detail=False),            # a slot RAUC did not write (the image as flashed): no version, no hash
    rauc_status(sha="not-a-hash"),
])
def test_a_slot_rauc_did_not_write_has_a_name_but_no_version_or_hash(status: Any) -> None:
    assert booted_slot(status) == RunningSlot("B", "", "")
    assert software_identity(Fixed(booted_slot(status))) == running_software()  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [rauc_status(booted=""), {"slots": "nonsense"}, [], None])
def test_no_running_slot_when_rauc_names_none(status: Any) -> None:
    assert booted_slot(status) is None


def test_the_simulated_unit_runs_its_factory_slot_then_the_slot_an_install_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "update-sim"
    updater = SimUpdater(folder)
    assert updater.booted() == RunningSlot("A", SIM_FACTORY_VERSION, SIM_FACTORY_HASH)
    bundle = tmp_path / "b.bundle"
    bundle.write_text(sim_bundle(version="0.3.0"))
    assert updater.install(bundle) == "B"
    assert updater.booted() == RunningSlot("A", SIM_FACTORY_VERSION, SIM_FACTORY_HASH)  # not restarted yet
    restarted = SimUpdater(folder)
    want = RunningSlot("B", "0.3.0", hashlib.sha256(bundle.read_bytes()).hexdigest())
    assert restarted.booted() == want and SimUpdater(folder).booted() == want


class Fixed:
    def __init__(self, slot: RunningSlot | None) -> None:
        self.slot = slot

    def booted(self) -> RunningSlot | None:
        return self.slot


def test_the_identity_names_code_and_system_and_drops_a_system_the_receiver_would_refuse() -> None:
    code = running_software()
    assert software_identity(None) == code
    assert software_identity(Fixed(None)) == code  # type: ignore[arg-type]
    good = software_identity(Fixed(RunningSlot("B", "0.2.0", ROOT_SHA)))  # type: ignore[arg-type]
    assert good == {**code, "system_slot": "B", "system_version": "0.2.0", "system_hash": ROOT_SHA}
    for bad in (RunningSlot("B", "v" * 65, ROOT_SHA), RunningSlot("b", "0.2.0", ROOT_SHA),
                RunningSlot("B", "0.2.0", ROOT_SHA.upper())):
        assert software_identity(Fixed(bad)) == code  # type: ignore[arg-type]


def test_the_system_fields_are_all_or_none_in_the_schema() -> None:
    body = {"identified": 0, "ballots": 0, "journal_seq": 3, "journal_hash": "ab" * 32,
            "software_version": "0.1.0", "software_hash": "cd" * 32}
    system = {"system_slot": "A", "system_version": "0.1.0", "system_hash": ROOT_SHA}
    assert body_problem("polls_opened", {**body, **system}) is None
    assert body_problem("polls_opened", {**body, "system_slot": "A"}) is not None
    assert "together or neither" in str(body_problem("polls_opened", {**body, "system_slot": "A"}))
    assert "system_slot must be one capital letter" in str(body_problem("polls_opened", {**body, **system,
                                                                                         "system_slot": "AB"}))
    assert "unknown field" in str(body_problem("turnout_snapshot", {"identified": 0, "ballots": 0, "registered": 1,
                                                                   "journal_seq": 3, "journal_hash": "ab" * 32,
                                                                   **system}))


def signed_bodies(db: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        lines = [str(r[0]) for r in conn.execute("SELECT line FROM outbox ORDER BY seq")]
    return [parse_line(line).body for line in lines if json.loads(line.split(" ", 1)[1])["type"] == kind]


def test_the_zero_report_of_a_running_station_names_the_slot_it_booted(tmp_path: Path) -> None:
    from device.demo import make_demo_station
    from tests.process_station import RunningStation
    from tests.updates.test_update_process import pollbox

    config = make_demo_station(tmp_path / "station", voters=20)
    extra = '\n[update]\nbackend = "sim"\n'
    bundle = tmp_path / "next.bundle"
    bundle.write_text(sim_bundle(version="0.3.0"))
    station = RunningStation(config.parent, extra_config=extra).start()
    try:
        done = pollbox(config, "update", str(bundle))  # before the polls open: taken, written into slot B
        assert done.returncode == 0 and "slot B" in done.stdout, done.stderr
    finally:
        station.stop()
    station = RunningStation(config.parent).start()  # the restart boots slot B (the config keeps [update])
    try:
        assert pollbox(config, "chair", "open").returncode == 0
    finally:
        station.stop()
    db = next((config.parent / "data").glob("*.db"))
    opened = signed_bodies(db, "polls_opened")[-1]
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert (opened["system_slot"], opened["system_version"], opened["system_hash"]) == ("B", "0.3.0", digest)
    assert (opened["software_version"], opened["software_hash"]) == (running_software()["version"],
                                                                      running_software()["hash"])
    assert body_problem("polls_opened", opened) is None
