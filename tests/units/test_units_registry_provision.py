"""The CEC writes each unit's id and role into the device registry, and ``cec packages`` takes every station's units.

``cec package --unit ... --registry R`` and ``cec packages --units FILE --registry R`` write, for each unit,
``unit`` and ``role`` (``main`` for the first desk) into the registry entry of its enrolled key, so the receiver
knows which chain each key writes. ``--units`` is a CSV (``station,unit,role,key,address,home_voting``); every bad
row is an E078 line with its line number and nothing is built; a key not enrolled for its station is E079.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.keys import create_device_key
from device.package import load_package
from protocol.keys import key_id, public_b64
from provisioning import cli
from provisioning.cec import create_cec_key
from provisioning.samplelist import write_sample_csv
from receiver.registry import DeviceEntry, Registry
from tests.provisioning.prov_helpers import ELECTION, NOW, PLAN, STATION, b64
from tests.units.test_units_provision import Cec

HEADER = "station,unit,role,key,address,home_voting\n"


def enroll(registry_path: Path, cec_key: Ed25519PrivateKey, station: str, *keys: Ed25519PrivateKey) -> None:
    """Enroll keys for ``station`` (as ``cec enroll`` does from their requests), without units."""
    registry = Registry.load(registry_path, cec_key.public_key()) if registry_path.exists() else Registry()
    for n, key in enumerate(keys):
        public = key.public_key()
        registry.add(DeviceEntry(station=station, serial=f"SN-{station}-{n}-{key_id(public)[:4]}",
                                 public_key=public_b64(public), key_id=key_id(public), software="0.1.0",
                                 enrolled_at="2026-11-20T10:00:00.000000Z"))
    registry.sign_and_save(registry_path, cec_key)


def units_of(registry_path: Path, cec_key: Ed25519PrivateKey) -> dict[str, tuple[str, str, str]]:
    registry = Registry.load(registry_path, cec_key.public_key())
    return {e.key_id: (e.station, e.unit, e.role) for e in registry}


@pytest.fixture
def cec(tmp_path: Path) -> Cec:
    return Cec(tmp_path)


# cec package --registry ------------------------------------------------------------------------------------

def test_cec_package_writes_the_units_into_the_registry(cec: Cec, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry.json"
    desk2 = json.loads(cec.request.read_text())
    enroll(registry, cec.key, STATION, cec.desk1, cec.mobile)
    assert cli.main(["cec", "enroll", "--cec-key", str(cec.key_path), "--registry", str(registry), "--out",
                     str(tmp_path / "certs"), str(cec.request)]) == 0
    assert cec.package(*cec.good_units(), "--registry", str(registry)) == 0
    assert "the units' keys enrolled for their units" in capsys.readouterr().out
    units = units_of(registry, cec.key)
    assert units[key_id(cec.desk1.public_key())] == (STATION, "desk-1", "main")
    assert units[desk2["key_id"]] == (STATION, "desk-2", "desk")
    assert units[key_id(cec.mobile.public_key())] == (STATION, "mobile", "mobile")
    before = registry.read_bytes()
    assert cec.package(*cec.good_units(), "--registry", str(registry)) == 0  # again: nothing changes
    assert registry.read_bytes() == before


def test_cec_package_refuses_a_unit_whose_key_is_not_enrolled(cec: Cec, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry.json"
    enroll(registry, cec.key, STATION, cec.desk1)  # desk-2 and the mobile unit never enrolled
    before = registry.read_bytes()
    assert cec.package(*cec.good_units(), "--registry", str(registry)) == 5
    err = capsys.readouterr().err
    assert "E079 station KG-0001: unit desk-2: key" in err and "enroll the unit's request first" in err
    assert registry.read_bytes() == before and not (cec.out / "station.pkg").exists()


def test_cec_package_refuses_a_units_key_enrolled_for_another_unit(cec: Cec, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry.json"
    enroll(registry, cec.key, STATION, cec.desk1, cec.mobile)
    reg = Registry.load(registry, cec.key.public_key())
    reg.assign_unit(key_id(cec.mobile.public_key()), STATION, "desk-3", "desk")
    reg.sign_and_save(registry, cec.key)
    units = ["--unit", f"desk-1,desk,{cec.desk1_pub}", "--unit", f"mobile,mobile,{b64(cec.mobile)}"]
    assert cec.package(*units, "--registry", str(registry)) == 5
    assert "is already enrolled for unit desk-3 (desk), not mobile (mobile)" in capsys.readouterr().err
    assert cec.package("--registry", str(registry)) == 2
    assert "give the units with --unit" in capsys.readouterr().err


# cec packages --units --------------------------------------------------------------------------------------

class Bulk:
    """Two planned stations: KG-0001 of three units (with home voting), KG-0002 of one."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.cec_path = tmp / "cec" / "cec.key"
        self.cec = create_cec_key(self.cec_path)
        self.plan = tmp / "cec" / "election.toml"
        self.plan.write_text(PLAN.format(election=ELECTION, station=STATION, url="http://127.0.0.1:9",
                                         receiver=b64(Ed25519PrivateKey.generate())))
        (tmp / "lists").mkdir()
        for n, sid in enumerate((STATION, "KG-0002"), 1):
            write_sample_csv(tmp / "lists" / f"{sid}.csv", sid, 30, seed=n)
        (tmp / "units" / "keys").mkdir(parents=True)
        self.desk1 = create_device_key(tmp / "units" / "keys")  # its device.pub, named relative to the file
        self.desk2, self.mobile = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.units = tmp / "units" / "units.csv"
        self.write_units()
        self.registry = tmp / "registry.json"
        enroll(self.registry, self.cec, STATION, self.desk1, self.desk2, self.mobile)
        enroll(self.registry, self.cec, "KG-0002", Ed25519PrivateKey.generate())

    def write_units(self, mobile_address: str = "10.0.0.13:8471") -> None:
        self.units.write_text(HEADER + f"{STATION},desk-1,desk,keys/device.pub,10.0.0.11:8471,\n"
                              f"{STATION},desk-2,desk,{b64(self.desk2)},,\n"
                              f'{STATION},mobile,mobile,{b64(self.mobile)},{mobile_address},"3,5-7"\n')

    def run(self, *extra: str) -> int:
        return cli.main(["cec", "packages", "--plan", str(self.plan), "--voters-dir", str(self.dir / "lists"),
                         "--cec-key", str(self.cec_path), "--out", str(self.dir / "out"), *extra])

    def package(self, sid: str) -> dict[str, object]:
        return load_package(self.dir / "out" / sid / "pollbox" / "station.pkg", self.cec.public_key(), ELECTION,
                            NOW).payload


@pytest.fixture
def bulk(tmp_path: Path) -> Bulk:
    return Bulk(tmp_path)


def test_cec_packages_takes_every_stations_units(bulk: Bulk, capsys: pytest.CaptureFixture[str]) -> None:
    assert bulk.run("--units", str(bulk.units), "--registry", str(bulk.registry)) == 0
    section = bulk.package(STATION)["units"]
    assert [(u["id"], u["role"], u["address"]) for u in section["list"]] == [  # type: ignore[index]
        ("desk-1", "desk", "10.0.0.11:8471"), ("desk-2", "desk", ""), ("mobile", "mobile", "10.0.0.13:8471")]
    assert section["home_voting"] == [3, 5, 6, 7]  # type: ignore[index]
    assert "units" not in bulk.package("KG-0002")
    units = units_of(bulk.registry, bulk.cec)
    assert units[key_id(bulk.desk1.public_key())] == (STATION, "desk-1", "main")
    assert units[key_id(bulk.mobile.public_key())] == (STATION, "mobile", "mobile")
    assert sorted(u for s, u, _ in units.values() if s == "KG-0002") == [""]
    # again: both skipped; then a changed unit address makes KG-0001 fail alone until --force.
    assert bulk.run("--units", str(bulk.units)) == 0
    assert "2 skipped" in capsys.readouterr().out
    bulk.write_units(mobile_address="10.0.0.14:8471")
    assert bulk.run("--units", str(bulk.units)) == 9
    assert "E075 KG-0001: already built, but its units changed in the units file since" in capsys.readouterr().err
    assert bulk.run("--units", str(bulk.units), "--force", "--stations", STATION) == 0
    assert bulk.package(STATION)["units"]["list"][2]["address"] == "10.0.0.14:8471"  # type: ignore[index]


BAD_FILES = {
    "header": ("station,unit,role,key\n", "the first line must be the header station,unit,role,key,address,"
               "home_voting"),
    "columns": (HEADER + "KG-0001,desk-1,desk\n", "line 2: 3 columns, not 6"),
    "station": (HEADER + "KG-0009,desk-1,desk,{desk1},,\n", "line 2: station 'KG-0009' is not in the election plan"),
    "role": (HEADER + "KG-0001,desk-1,chair,{desk1},,\n", "line 2 (KG-0001): --unit desk-1: the role 'chair' is "
             "not one of desk, mobile"),
    "home voting at a desk": (HEADER + 'KG-0001,desk-1,desk,{desk1},,"3"\n', "line 2 (KG-0001): --unit desk-1: "
                              "home_voting is written on the mobile unit's row only"),
    "lines": (HEADER + 'KG-0001,mobile,mobile,{desk1},,"3,x"\n', "--home-voting '3,x': 'x' is not a line number"),
    "key": (HEADER + "KG-0001,desk-1,desk,keys/missing.pub,,\n", "is neither a readable file nor a base64 Ed25519"),
    "address": (HEADER + "KG-0001,desk-1,desk,{desk1},nowhere,\n", "the address 'nowhere' is not host:port"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_units_file_is_refused_by_line_and_nothing_is_built(bulk: Bulk, case: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text, message = BAD_FILES[case]
    bulk.units.write_text(text.format(desk1=b64(bulk.desk1)))
    before = bulk.registry.read_bytes()
    assert bulk.run("--units", str(bulk.units), "--registry", str(bulk.registry)) == 3
    err = capsys.readouterr().err
    assert "E078" in err and message in err, err
    assert "nothing was built" in err
    assert not (bulk.dir / "out" / STATION).exists() and bulk.registry.read_bytes() == before


def test_every_bad_row_is_listed_at_once(bulk: Bulk, capsys: pytest.CaptureFixture[str]) -> None:
    bulk.units.write_text(HEADER + "KG-0001,Desk 1,desk,x,,\nKG-0001,desk-2,boss,x,,\n")
    assert bulk.run("--units", str(bulk.units)) == 3
    err = capsys.readouterr().err
    assert "units.csv line 2 (KG-0001)" in err and "units.csv line 3 (KG-0001)" in err


def test_a_station_with_one_unit_row_fails_alone(bulk: Bulk, capsys: pytest.CaptureFixture[str]) -> None:
    bulk.units.write_text(HEADER + f"{STATION},desk-1,desk,{b64(bulk.desk1)},,\n")
    assert bulk.run("--units", str(bulk.units)) == 9
    err = capsys.readouterr().err
    assert "a station of several units lists at least two" in err
    assert (bulk.dir / "out" / "KG-0002" / "pollbox" / "station.pkg").exists()
    assert not (bulk.dir / "out" / STATION).exists()


def test_cec_packages_refuses_an_unenrolled_units_key_before_building(bulk: Bulk, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "other-registry.json"
    enroll(empty, bulk.cec, STATION, bulk.desk1)
    assert bulk.run("--units", str(bulk.units), "--registry", str(empty)) == 5
    err = capsys.readouterr().err
    assert "E079 station KG-0001: unit desk-2" in err and "nothing was built" in err
    assert not (bulk.dir / "out" / STATION).exists()
    assert bulk.run("--registry", str(empty)) == 2
    assert "give the units with --units" in capsys.readouterr().err
