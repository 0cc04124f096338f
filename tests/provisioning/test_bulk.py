"""``cec packages``: every station of the plan in one run, checked up front, never half-written, safe to re-run."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as hs
from prov_helpers import ELECTION, PLAN, STATION, Cec, b64

from device.config import load_config
from device.core.voterkey import voter_hash
from provisioning import cli, package
from provisioning.bulk import BulkOrder, prepare
from provisioning.cec import load_list_key
from provisioning.election import load_plan
from provisioning.enrollment import create_unit_keys, make_request, write_json
from provisioning.errors import ProvisionErrors
from provisioning.install import install_from
from provisioning.samplelist import write_sample_csv
from provisioning.seal import open_sealed_list_key

STATIONS = (STATION, "KG-0002", "KG-0003", "KG-0004")
VOTERS = 40
MORE_STATIONS = """
[[stations]]
id = "KG-0003"
name = "School No. 7"
region = "Osh"

[[stations]]
id = "KG-0004"
name = "Library No. 2"
region = "Naryn"
"""


@pytest.fixture
def big_plan(plan: Path) -> Path:
    plan.write_text(plan.read_text() + MORE_STATIONS)
    return plan


@pytest.fixture
def lists(tmp_path: Path) -> dict[str, list[list[str]]]:
    folder = tmp_path / "lists"
    folder.mkdir()
    return {sid: write_sample_csv(folder / f"{sid}.csv", sid, VOTERS, seed=n) for n, sid in enumerate(STATIONS, 1)}


def packages(tmp_path: Path, cec: Cec, plan: Path, *extra: str) -> int:
    return cli.main(["cec", "packages", "--plan", str(plan), "--voters-dir", str(tmp_path / "lists"),
                     "--cec-key", str(cec[0]), "--out", str(tmp_path / "out"), *extra])


def manifest(tmp_path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((tmp_path / "out" / "manifest.json").read_text())
    return doc


def stick(tmp_path: Path, station: str) -> Path:
    return tmp_path / "out" / station / "pollbox"


def unit_config(directory: Path, cec: Cec) -> Path:
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / "station.toml"
    config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(cec[1])}"\n'
                      'station_package = "data/station.pkg"\ndata_dir = "data"\n[uplink]\ntransport = "sim"\n')
    return config


def enroll_request(tmp_path: Path, cec: Cec, name: str, station: str, serial: str) -> Path:
    """A unit with real keys and its signed enrollment request for ``station``, saved as ``requests/<name>``."""
    unit = tmp_path / f"unit-{serial}"
    unit_config(unit, cec)
    create_unit_keys(unit / "data")
    path = tmp_path / "requests" / name
    write_json(path, make_request(unit / "data", station, serial, time.time()))
    return unit


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith((".partial", ".replaced")))


def test_every_station_is_built_once_with_its_own_key(tmp_path: Path, cec: Cec, big_plan: Path,
                                                      lists: dict[str, list[list[str]]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    assert "4 built, 0 skipped, 0 failed" in capsys.readouterr().out
    doc = manifest(tmp_path)
    assert doc["election_id"] == ELECTION and sorted(doc["stations"]) == list(STATIONS)
    keys = set()
    for sid, rows in lists.items():
        folder = stick(tmp_path, sid)
        assert sorted(p.name for p in folder.iterdir()) == ["list.key", "station.pkg"]
        entry = doc["stations"][sid]
        loaded = package.check_package(folder / "station.pkg", cec[1], ELECTION, time.time())
        assert entry["voters"] == VOTERS == loaded.registered and loaded.station_id == sid
        assert entry["package_sha256"] == _sha(folder / "station.pkg")
        assert entry["sealed"] is False and entry["sealed_to"] is None and entry["built_at"]
        key = load_list_key(folder / "list.key")
        keys.add(key)
        assert voter_hash(key, rows[0][0]) in loaded.voters
    assert len(keys) == len(STATIONS)
    assert leftovers(tmp_path) == []


def test_a_bulk_built_stick_installs_on_a_unit_like_a_single_built_one(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]]) -> None:
    assert packages(tmp_path, cec, big_plan, "--stations", "KG-0003") == 0
    single = tmp_path / "single" / "pollbox"
    assert cli.main(["cec", "package", "--plan", str(big_plan), "--station", "KG-0003", "--voters",
                     str(tmp_path / "lists" / "KG-0003.csv"), "--cec-key", str(cec[0]), "--out", str(single)]) == 0
    installed = []
    for name, source in (("bulk", stick(tmp_path, "KG-0003")), ("single", single)):
        config = load_config(unit_config(tmp_path / f"unit-{name}", cec))
        installed.append(install_from(source, config, time.time()))
        assert (config.data_dir / "list.key").read_bytes() == (source / "list.key").read_bytes()
    assert installed[0] == installed[1]
    assert installed[0].station_id == "KG-0003" and installed[0].registered == VOTERS and not installed[0].sealed
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in stick(tmp_path, "KG-0003").iterdir())


def test_missing_and_extra_lists_and_unknown_stations_are_all_reported_before_building(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lists"
    (folder / "KG-0002.csv").unlink()
    (folder / "KG-0004.csv").rename(folder / "KG-004.csv")
    (folder / "notes.txt").write_text("not a list")
    status = packages(tmp_path, cec, big_plan, "--stations", "KG-0001,KG-0002,KG-0004,KG-0077")
    err = capsys.readouterr().err
    assert status == 9
    assert "E070 KG-0002: no voter list" in err
    assert "E070 KG-0004: no voter list" in err and "did you mean KG-004.csv?" in err
    assert "E071 " in err and "KG-004.csv: no station 'KG-004' in the election plan" in err
    assert "E072 --stations: 'KG-0077' is not in the election plan" in err
    assert "notes.txt" not in err
    assert "4 problem(s) found before building; nothing was built" in err
    assert not (tmp_path / "out").exists()


def test_one_bad_list_fails_only_that_station_and_leaves_no_folder(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "lists" / "KG-0002.csv"
    bad.write_text(bad.read_text().replace(lists["KG-0002"][4][0], "123", 1))
    assert packages(tmp_path, cec, big_plan) == 9
    out, err = capsys.readouterr()
    assert "3 built, 0 skipped, 1 failed" in out
    assert "KG-0002: FAILED" in err and "E012 KG-0002.csv line 6:" in err
    assert "E076 1 station(s) could not be packaged: KG-0002" in err
    assert lists["KG-0002"][4][0] not in err + out
    assert not (tmp_path / "out" / "KG-0002").exists() and leftovers(tmp_path) == []
    assert sorted(manifest(tmp_path)["stations"]) == [STATION, "KG-0003", "KG-0004"]
    assert all((stick(tmp_path, sid) / "station.pkg").exists() for sid in (STATION, "KG-0003", "KG-0004"))


def test_rerun_skips_complete_stations_and_force_rebuilds_them(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    first = manifest(tmp_path)
    before = {sid: (stick(tmp_path, sid) / "station.pkg").read_bytes() for sid in STATIONS}
    capsys.readouterr()
    assert packages(tmp_path, cec, big_plan) == 0
    out, err = capsys.readouterr()
    assert "0 built, 4 skipped, 0 failed" in out and f"{STATION}: already built" in err
    assert manifest(tmp_path) == first
    assert all((stick(tmp_path, sid) / "station.pkg").read_bytes() == before[sid] for sid in STATIONS)
    assert packages(tmp_path, cec, big_plan, "--force", "--stations", "KG-0002,KG-0004") == 0
    assert "2 built, 0 skipped, 0 failed" in capsys.readouterr().out
    again = manifest(tmp_path)
    for sid in STATIONS:
        rebuilt = sid in ("KG-0002", "KG-0004")
        assert ((stick(tmp_path, sid) / "station.pkg").read_bytes() != before[sid]) == rebuilt
        assert (again["stations"][sid] != first["stations"][sid]) == rebuilt
        assert again["stations"][sid]["package_sha256"] == _sha(stick(tmp_path, sid) / "station.pkg")
    assert leftovers(tmp_path) == []


def test_rerun_refuses_to_skip_a_station_whose_list_changed(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    write_sample_csv(tmp_path / "lists" / "KG-0003.csv", "KG-0003", VOTERS + 1, seed=99)
    capsys.readouterr()
    assert packages(tmp_path, cec, big_plan) == 9
    out, err = capsys.readouterr()
    assert "0 built, 3 skipped, 1 failed" in out
    assert "E075 KG-0003: already built, but its voter list KG-0003.csv changed since" in err
    assert packages(tmp_path, cec, big_plan, "--force", "--stations", "KG-0003") == 0
    assert manifest(tmp_path)["stations"]["KG-0003"]["voters"] == VOTERS + 1


def test_requests_dir_seals_those_stations_keys_to_their_units(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]]) -> None:
    unit = enroll_request(tmp_path, cec, "KG-0002.json", "KG-0002", "10000000feed02")
    assert packages(tmp_path, cec, big_plan, "--requests-dir", str(tmp_path / "requests")) == 0
    sealed = stick(tmp_path, "KG-0002")
    assert sorted(p.name for p in sealed.iterdir()) == ["list.key.sealed", "station.pkg"]
    entries = manifest(tmp_path)["stations"]
    assert entries["KG-0002"]["sealed"] is True and entries["KG-0002"]["sealed_to"] == "10000000feed02"
    assert entries[STATION]["sealed"] is False and (stick(tmp_path, STATION) / "list.key").exists()
    key = open_sealed_list_key(sealed / "list.key.sealed", unit / "data", "KG-0002")
    assert voter_hash(key, lists["KG-0002"][0][0]) in package.check_package(
        sealed / "station.pkg", cec[1], ELECTION, time.time()).voters
    installed = install_from(sealed, load_config(unit / "station.toml"), time.time())
    assert installed.sealed and installed.station_id == "KG-0002" and installed.registered == VOTERS


def test_requests_for_unknown_or_other_stations_are_reported_before_building(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    enroll_request(tmp_path, cec, "KG-0001.json", "KG-0002", "10000000feed01")
    enroll_request(tmp_path, cec, "KG-0099.json", "KG-0099", "10000000feed99")
    (tmp_path / "requests" / "KG-0003.json").write_text('{"format": "something else"}')
    assert packages(tmp_path, cec, big_plan, "--requests-dir", str(tmp_path / "requests")) == 9
    err = capsys.readouterr().err
    assert "E073" in err and "KG-0001.json: this request is for station KG-0002, not KG-0001" in err
    assert "KG-0099.json: station 'KG-0099' is not in the election plan" in err
    assert "E030" in err and "KG-0003.json: not an enrollment request" in err
    assert "3 problem(s) found before building; nothing was built" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("interruption", [RuntimeError("disk controller reset"), KeyboardInterrupt()])
def test_a_crash_in_the_third_station_leaves_no_half_written_folder(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], interruption: BaseException) -> None:
    real = package.write_list_key
    calls = []

    def crash_on_third(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 3:  # station.pkg of the third station is already written in its partial folder
            raise interruption
        real(*args)

    monkeypatch.setattr(package, "write_list_key", crash_on_third)
    if isinstance(interruption, KeyboardInterrupt):
        assert packages(tmp_path, cec, big_plan) == 130
    else:
        with pytest.raises(RuntimeError, match="disk controller reset"):
            packages(tmp_path, cec, big_plan)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        [STATION, "KG-0002", "manifest.json"]
    assert leftovers(tmp_path) == []
    assert sorted(manifest(tmp_path)["stations"]) == [STATION, "KG-0002"]
    monkeypatch.setattr(package, "write_list_key", real)
    capsys.readouterr()
    assert packages(tmp_path, cec, big_plan) == 0
    assert "2 built, 2 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(manifest(tmp_path)["stations"]) == list(STATIONS)


def test_a_run_killed_between_the_two_renames_of_force_gets_its_folder_back(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    out = tmp_path / "out"
    built = (stick(tmp_path, "KG-0003") / "station.pkg").read_bytes()
    (out / "KG-0003").rename(out / ".replaced-KG-0003")  # the old folder moved aside, the new one not yet in place
    (out / ".partial-KG-0004" / "pollbox").mkdir(parents=True)
    (out / ".partial-KG-0004" / "pollbox" / "station.pkg").write_bytes(b"half")
    capsys.readouterr()
    assert packages(tmp_path, cec, big_plan) == 0
    assert "0 built, 4 skipped, 0 failed" in capsys.readouterr().out
    assert (stick(tmp_path, "KG-0003") / "station.pkg").read_bytes() == built
    assert leftovers(tmp_path) == []


def test_a_manifest_lost_after_a_crash_is_rebuilt_from_the_folders(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    first = manifest(tmp_path)["stations"]
    (tmp_path / "out" / "manifest.json").unlink()
    assert packages(tmp_path, cec, big_plan) == 0
    again = manifest(tmp_path)["stations"]
    for sid in STATIONS:
        assert {k: again[sid][k] for k in ("voters", "package_sha256", "sealed", "built_at")} == \
            {k: first[sid][k] for k in ("voters", "package_sha256", "sealed", "built_at")}
        assert again[sid]["voters_file_sha256"] is None  # not known any more: never claimed


def test_an_output_folder_of_another_election_is_refused(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert packages(tmp_path, cec, big_plan) == 0
    path = tmp_path / "out" / "manifest.json"
    path.write_text(path.read_text().replace(ELECTION, "kg-2021-old"))
    capsys.readouterr()
    assert packages(tmp_path, cec, big_plan) == 9
    assert "E074" in capsys.readouterr().err
    assert manifest(tmp_path)["election_id"] == "kg-2021-old"  # left as it was


def test_single_station_command_still_lists_every_bad_row(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "lists" / "KG-0001.csv"
    bad.write_text(bad.read_text().replace(lists[STATION][2][0], "1", 1).replace(lists[STATION][7][0], "2", 1))
    target = tmp_path / "single"
    status = cli.main(["cec", "package", "--plan", str(big_plan), "--station", STATION, "--voters", str(bad),
                       "--cec-key", str(cec[0]), "--out", str(target)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 3
    assert [line.split(":")[0] for line in lines[-3:]] == ["E012 KG-0001.csv line 4", "E012 KG-0001.csv line 9",
                                                           "E012 KG-0001.csv"]
    assert "2 bad row(s) of 40; nothing was imported" in lines[-1]
    assert not target.exists()


@settings(max_examples=25, deadline=None)
@given(present=hs.sets(hs.sampled_from(STATIONS)),
       extras=hs.sets(hs.from_regex(r"KG-9[0-9]{3}", fullmatch=True), max_size=3))
def test_prepare_reports_exactly_the_missing_and_the_extra_lists(present: set[str], extras: set[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = root / "election.toml"
        plan.write_text(PLAN.format(election=ELECTION, station=STATION, receiver=b64(Ed25519PrivateKey.generate()),
                                    url="http://127.0.0.1:9") + MORE_STATIONS)
        (root / "lists").mkdir()
        for sid in present | extras:
            (root / "lists" / f"{sid}.csv").write_text("")
        order = BulkOrder(root / "lists", root / "out")
        if present == set(STATIONS) and not extras:
            jobs, _ = prepare(load_plan(plan), order)
            assert [j.station_id for j in jobs] == list(STATIONS)
            return
        with pytest.raises(ProvisionErrors) as err:
            prepare(load_plan(plan), order)
    found = {(p.code, p.message.split(":")[0]) for p in err.value.problems}
    assert found == {("E070", sid) for sid in set(STATIONS) - present} | \
        {("E071", str(root / "lists" / f"{sid}.csv")) for sid in extras}


def test_single_station_command_refuses_a_request_for_another_station_before_writing(
        tmp_path: Path, cec: Cec, big_plan: Path, lists: dict[str, list[list[str]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    enroll_request(tmp_path, cec, "KG-0002.json", "KG-0002", "10000000feed02")
    target = tmp_path / "single"
    status = cli.main(["cec", "package", "--plan", str(big_plan), "--station", STATION, "--voters",
                       str(tmp_path / "lists" / "KG-0001.csv"), "--cec-key", str(cec[0]), "--out", str(target),
                       "--seal-to", str(tmp_path / "requests" / "KG-0002.json")])
    assert status == 5
    assert "E031 the enrollment request is for station KG-0002, not KG-0001" in capsys.readouterr().err
    assert not target.exists()
