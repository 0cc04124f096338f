"""``pollbox-provision cec package --unit ... --home-voting ...`` writes a package's units section.

A good station: three units (one key from an enrollment request, one from a device.pub file, one as
base64), the package loads on each unit as its own. Bad input: one E078 line naming the value, exit
status 3, and no package written.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.keys import create_device_key
from device.package import load_package
from device.sync.units import station_units
from provisioning import cli
from provisioning.cec import create_cec_key
from provisioning.samplelist import write_sample_csv
from tests.provisioning.prov_helpers import ELECTION, NOW, PLAN, STATION, b64

VOTERS = 50


def raw_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class Cec:
    """A CEC key, a plan, a voter list, and three units' keys (desk-2's through its enrollment request)."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "cec"
        self.key_path = self.dir / "cec.key"
        self.key = create_cec_key(self.key_path)
        self.plan = self.dir / "election.toml"
        self.plan.write_text(PLAN.format(election=ELECTION, station=STATION, receiver=b64(Ed25519PrivateKey.generate()),
                                         url="http://127.0.0.1:9"))
        self.voters = self.dir / "voters.csv"
        write_sample_csv(self.voters, STATION, VOTERS, seed=3)
        self.out = tmp / "stick" / "pollbox"
        self.desk1_pub = tmp / "desk-1" / "device.pub"
        self.desk1_pub.parent.mkdir()
        self.desk1 = create_device_key(self.desk1_pub.parent)
        self.mobile = Ed25519PrivateKey.generate()
        self.request = tmp / "desk-2.request.json"
        config = tmp / "desk-2" / "station.toml"
        (config.parent / "data").mkdir(parents=True)
        config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(self.key)}"\n'
                          'station_package = "data/station.pkg"\ndata_dir = "data"\n')
        assert cli.main(["unit", "keygen", "--config", str(config)]) == 0
        assert cli.main(["unit", "enroll-request", "--config", str(config), "--station", STATION, "--serial",
                         "10000000desk02", "--out", str(self.request)]) == 0
        self.desk2_pub = (config.parent / "data" / "device.pub").read_text().strip()

    def package(self, *extra: str) -> int:
        return cli.main(["cec", "package", "--plan", str(self.plan), "--station", STATION, "--voters",
                         str(self.voters), "--cec-key", str(self.key_path), "--out", str(self.out), *extra])

    def good_units(self) -> list[str]:
        return ["--unit", f"desk-1,desk,{self.desk1_pub},127.0.0.1:8471", "--unit", f"desk-2,desk,{self.request}",
                "--unit", f"mobile,mobile,{raw_b64(self.mobile)},[::1]:8473"]


@pytest.fixture
def cec(tmp_path: Path) -> Cec:
    return Cec(tmp_path)


def test_the_units_section_is_written_and_loads_on_each_unit(cec: Cec, capsys: pytest.CaptureFixture[str]) -> None:
    assert cec.package(*cec.good_units(), "--home-voting", "3,5-7") == 0
    said = capsys.readouterr().out
    assert "units: desk-1 (desk), desk-2 (desk), mobile (mobile); main unit desk-1; 4 line(s)" in said
    package = load_package(cec.out / "station.pkg", cec.key.public_key(), ELECTION, NOW)
    section = package.payload["units"]
    assert [(u["id"], u["role"], u["address"]) for u in section["list"]] == [
        ("desk-1", "desk", "127.0.0.1:8471"), ("desk-2", "desk", ""), ("mobile", "mobile", "[::1]:8473")]
    assert section["home_voting"] == [3, 5, 6, 7]
    assert section["list"][1]["public_key"] == cec.desk2_pub
    units = station_units(package.payload, package.voters, "mobile", cec.mobile.public_key())
    assert units is not None and len(units.units.home_voters) == 4
    assert station_units(package.payload, package.voters, "desk-1", cec.desk1.public_key()) is not None


def test_a_one_unit_station_has_no_units_section(cec: Cec) -> None:
    assert cec.package() == 0
    package = load_package(cec.out / "station.pkg", cec.key.public_key(), ELECTION, NOW)
    assert "units" not in package.payload


BAD = {
    "duplicate id": (lambda c: [*c.good_units(), "--unit", f"desk-2,desk,{raw_b64(Ed25519PrivateKey.generate())}"],
                     "--unit desk-2 is given twice"),
    "unknown role": (lambda c: ["--unit", f"desk-1,kiosk,{c.desk1_pub}", "--unit", f"desk-2,desk,{c.request}"],
                     "the role 'kiosk' is not one of desk, mobile"),
    "bad key": (lambda c: ["--unit", f"desk-1,desk,{c.desk1_pub}", "--unit", "desk-2,desk,bm90IGEga2V5"],
                "'bm90IGEga2V5' is neither a readable file nor a base64 Ed25519 public key"),
    "home line not on the list": (lambda c: [*c.good_units(), "--home-voting", f"3,{VOTERS + 1}"],
                                  f"--home-voting names line(s) {VOTERS + 1}, not on this station's voter list"),
    "home line not a number": (lambda c: [*c.good_units(), "--home-voting", "3,x"],
                               "'x' is not a line number or a range"),
    "home voting without a mobile unit": (
        lambda c: [*c.good_units()[:4], "--home-voting", "3"], "--home-voting needs a mobile unit"),
    "home voting without units": (lambda c: ["--home-voting", "3"], "give the station's units with --unit"),
    "same key twice": (lambda c: ["--unit", f"desk-1,desk,{c.desk1_pub}", "--unit", f"desk-2,desk,{c.desk1_pub}"],
                       "--unit desk-2 has the same public key as desk-1"),
    "bad id": (lambda c: ["--unit", f"Desk_1,desk,{c.desk1_pub}"], "a unit id is 1 to 32 lower-case letters"),
    "bad address": (lambda c: ["--unit", f"desk-1,desk,{c.desk1_pub},nowhere", "--unit", f"desk-2,desk,{c.request}"],
                    "the address 'nowhere' is not host:port"),
    "no desk": (lambda c: ["--unit", f"m1,mobile,{c.desk1_pub}", "--unit", f"m2,mobile,{c.request}"],
                "the units need a desk"),
    "one unit only": (lambda c: ["--unit", f"desk-1,desk,{c.desk1_pub}"], "lists at least two"),
    "too few fields": (lambda c: ["--unit", "desk-1,desk"], "write ID,ROLE,KEY or ID,ROLE,KEY,HOST:PORT"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_units_are_refused_with_a_reason_and_nothing_written(cec: Cec, case: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    options, reason = BAD[case]
    assert cec.package(*options(cec)) == 3
    err = capsys.readouterr().err
    assert err.startswith("E078 ") and reason in err, err
    assert not (cec.out / "station.pkg").exists()


def test_a_request_for_another_station_is_refused(cec: Cec, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "other" / "station.toml"
    (config.parent / "data").mkdir(parents=True)
    config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(cec.key)}"\n'
                      'station_package = "data/station.pkg"\ndata_dir = "data"\n')
    assert cli.main(["unit", "keygen", "--config", str(config)]) == 0
    request = tmp_path / "other.request.json"
    assert cli.main(["unit", "enroll-request", "--config", str(config), "--station", "KG-0002", "--serial",
                     "10000000other1", "--out", str(request)]) == 0
    capsys.readouterr()
    assert cec.package("--unit", f"desk-1,desk,{cec.desk1_pub}", "--unit", f"desk-2,desk,{request}") == 3
    assert "is for station KG-0002, not KG-0001" in capsys.readouterr().err
