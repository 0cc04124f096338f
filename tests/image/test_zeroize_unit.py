"""Zeroize on the booted unit, checked from outside on the powered-off disk.

The technician's ``pollbox-provision unit zeroize`` runs in a booted test copy of the image (through
the test agent, ``guest.py``), forced with the typed confirmation (the test unit's receiver is not
reachable, so records are unacknowledged). Then the unit is shut down and its data partition is read
on the host, twice:

- as a file system: the device key, the list key and the station package (the voter list) are gone,
  the signed zeroize record is there, and the journal stays and still verifies (zeroize keeps the
  live journal as the unit's evidence: it holds keyed hashes only, unlinkable once the list key is
  gone; see ``provisioning/zeroize.py``);
- as raw bytes, every block of the partition: neither key's bytes nor the voter list's entries are
  anywhere on it, not in free blocks and not in ext4's own journal (the data partition is mounted
  ``data=journal``, so every file block was first written there).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .guest import ProbedUnit, boot_probed_unit, host_can_boot
from .vm import IMAGE_TEST_TIMEOUT, data_listing, disk_partitions, extract_partition, pull_folder, run, wait_for

pytestmark = [pytest.mark.image, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

STATION_DIR = "/var/lib/pollbox/station"
"""Where the first boot put the station (the data partition, mounted at /var/lib/pollbox)."""
ZEROIZE_TAKES = 600.0
"""How long the technician's zeroize may take in an emulated guest: it starts the appliance, tries the
unreachable receiver, journals and signs its note, wipes, and clears the file system's journal."""
RECORDED = 60.0
"""How long the appliance may take to journal the opening and queue its record for the receiver."""
VOTERS_CHECKED = 20
"""How many of the voter list's entries (keyed hash and name) are looked for in the raw partition."""


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    probed = boot_probed_unit(tmp_path_factory.mktemp("zeroize"))
    try:
        yield probed
    finally:
        probed.stop()


def secrets(station: Path) -> dict[str, bytes]:
    """What must not survive, by what it is: the keys' raw bytes and the voter list's entries as they
    appear in the station package (keyed hashes and names)."""
    found = {"device.key": (station / "data" / "device.key").read_bytes(),
             "list.key": (station / "data" / "list.key").read_bytes()}
    entries = json.loads((station / "station-package.json").read_bytes())["payload"]["voters"]["entries"]
    for number, (keyed_hash, _line, name) in enumerate(entries[:VOTERS_CHECKED]):
        found[f"voter {number}'s keyed hash"] = str(keyed_hash).encode()
        found[f"voter {number}'s name with its hash"] = json.dumps([keyed_hash, _line, name]).encode()
    assert all(len(needle) >= 16 for needle in found.values()), "a needle too short to mean anything"
    return found


def where(part: Path, offset: int) -> str:
    """Which file (or ext4's journal, or free space) holds the byte at ``offset`` of the partition."""
    block_size = int(run(["dumpe2fs", "-h", str(part)]).split("Block size:")[1].split()[0])
    block = offset // block_size
    owner = run(["debugfs", "-R", f"icheck {block}", str(part)]).splitlines()[-1].split()
    inode = owner[1] if len(owner) > 1 else "?"
    if inode == "8":
        return f"block {block}: ext4's journal"
    if not inode.isdigit():
        return f"block {block}: free space"
    name = run(["debugfs", "-R", f"ncheck {inode}", str(part)]).splitlines()[-1]
    return f"block {block}: inode {inode} ({name})"


def test_zeroize_leaves_no_key_or_voter_list_on_the_data_partition(unit: ProbedUnit) -> None:
    status = unit.vm.wait_until_ready()
    station_id = str(status["station"]["id"])
    guest = unit.guest
    # The polls opened: a record for the CEC's receiver, which the test unit cannot reach, so zeroize
    # refuses (E050) unless forced with the typed confirmation, as a technician would.
    guest.control({"cmd": "open"})
    waiting = wait_for(lambda: int((guest.control({"cmd": "status"}).get("upstream") or {}).get("waiting", 0)),
                       "the opening's record waiting for the receiver", RECORDED)
    assert waiting >= 1
    guest.check("systemctl stop pollbox.service", timeout=120)
    rc, said = guest.run(
        f"cd / && runuser -u pollbox -- /opt/pollbox/bin/pollbox-provision unit zeroize --force "
        f"--config {shlex.quote(STATION_DIR + '/station.toml')} 2>&1", ZEROIZE_TAKES,
        stdin=f"WIPE {station_id}\n".encode())
    assert rc == 0, said
    wiped = said.split(f"{station_id}: wiped ")[-1].split(";")[0].split(", ")
    assert {"device.key", "list.key", "station-package.json"} <= set(wiped), said
    listing = guest.check(f"ls -A {STATION_DIR} {STATION_DIR}/data")
    for gone in ("device.key", "list.key", "station-package.json"):
        assert gone not in listing.split(), listing
    unit.guest.close()
    unit.vm.shut_down()

    # The file system, as the CEC's technician would mount it.
    workdir = unit.vm.workdir
    assert "station" in data_listing(unit.vm.disk, workdir)
    pulled = pull_folder(unit.vm.disk, disk_partitions(unit.vm.disk)["data"], "/station", workdir / "after-zeroize")
    left = sorted(str(p.relative_to(pulled)) for p in pulled.rglob("*"))
    for gone in ("data/device.key", "data/seal.key", "data/list.key", "station-package.json"):
        assert gone not in left, left
    record = json.loads((pulled / "data" / "zeroize-record.json").read_text())
    assert record["station"] == station_id and record["forced"] is True
    assert {"device.key", "list.key", "station-package.json"} <= set(record["wiped"]), record
    evidence = workdir / "evidence"
    evidence.mkdir()
    (evidence / "station.toml").write_text((unit.vm.station / "station.toml").read_text())
    (evidence / "station-package.json").write_bytes((unit.vm.station / "station-package.json").read_bytes())
    subprocess.run(["cp", "-a", str(pulled / "data"), str(evidence / "data")], check=True)
    verified = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(evidence / "station.toml"), "verify"],
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "journal verified" in verified.stdout, verified.stdout + verified.stderr

    # Every byte of the partition.
    part = extract_partition(unit.vm.disk, disk_partitions(unit.vm.disk)["data"], workdir / "data-raw.img")
    raw = part.read_bytes()
    survived = {what: where(part, raw.find(needle)) for what, needle in secrets(unit.vm.station).items()
                if needle in raw}
    assert not survived, f"after zeroize the data partition still holds: {survived}"
    part.unlink()
