"""Training packages on the CEC side (``cec package --training``, ``cec packages --training``) and on the unit.

A training package is for ``TRAINING-<id>`` with ``"training": true``, loads on
a unit like any other, and a package whose flag and station id disagree is
refused. A bulk output folder holds one kind only. The observer's offline
check prints TRAINING above a training report's counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.package import PackageError, load_package, sign_package
from protocol.envelope import make_record
from protocol.keys import key_id
from provisioning import cli
from provisioning.cec import create_cec_key
from provisioning.errors import ProvisionError
from provisioning.samplelist import write_sample_csv
from provisioning.training import training_payload
from tests.provisioning.prov_helpers import ELECTION, NOW, PLAN, STATION, b64
from tools.verify_report import verify_line

TRAINING = f"TRAINING-{STATION}"


@pytest.fixture
def cec(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    path = tmp_path / "cec" / "cec.key"
    return path, create_cec_key(path)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "cec" / "election.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PLAN.format(election=ELECTION, station=STATION, receiver=b64(Ed25519PrivateKey.generate()),
                                url="http://127.0.0.1:9"))
    return path


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    folder = tmp_path / "lists"
    folder.mkdir()
    for n, sid in enumerate((STATION, "KG-0002"), 1):
        write_sample_csv(folder / f"{sid}.csv", sid, 30, seed=n)
    return folder


def test_cec_package_training_signs_a_training_package(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey],
                                                        plan: Path, lists: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stick" / "pollbox"
    assert cli.main(["cec", "package", "--plan", str(plan), "--station", STATION, "--voters",
                     str(lists / f"{STATION}.csv"), "--cec-key", str(cec[0]), "--out", str(out), "--training"]) == 0
    assert f"TRAINING package for {TRAINING}" in capsys.readouterr().out
    package = load_package(out / "station.pkg", cec[1].public_key(), ELECTION, NOW)
    assert package.training and package.station_id == TRAINING and package.registered == 30
    assert package.payload["station"]["name"] == "School No. 5"  # the same station, the same screens


def test_cec_packages_training_and_one_kind_per_folder(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey],
                                                       plan: Path, lists: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["cec", "packages", "--plan", str(plan), "--voters-dir", str(lists), "--cec-key", str(cec[0]),
            "--out", str(out)]
    assert cli.main([*args, "--training"]) == 0
    for sid in (STATION, "KG-0002"):
        package = load_package(out / sid / "pollbox" / "station.pkg", cec[1].public_key(), ELECTION, NOW)
        assert package.training and package.station_id == f"TRAINING-{sid}"
    assert json.loads((out / "manifest.json").read_text())["training"] is True
    assert cli.main([*args, "--training"]) == 0  # a re-run skips the complete training packages
    assert "2 skipped" in capsys.readouterr().out
    assert cli.main(args) == 9  # live packages are refused in a folder of training ones
    err = capsys.readouterr().err
    assert "E074" in err and "holds training packages; live packages go to another output folder" in err


def test_a_live_folder_refuses_training_packages(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
                                                 lists: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["cec", "packages", "--plan", str(plan), "--voters-dir", str(lists), "--cec-key", str(cec[0]),
            "--out", str(tmp_path / "out")]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main([*args, "--training"]) == 9
    err = capsys.readouterr().err
    assert "E074" in err and "holds live packages; training packages go to another output folder" in err


def test_a_package_whose_flag_and_station_disagree_is_refused(tmp_path: Path,
                                                               cec: tuple[Path, Ed25519PrivateKey]) -> None:
    base: dict[str, Any] = {"election": {"id": ELECTION, "expires_at": "2099-12-31T00:00:00Z"},
            "station": {"id": STATION, "name": "x"}, "voters": {"entries": [], "digest": ""}}
    from device.package import voters_digest
    base["voters"]["digest"] = voters_digest([])
    for payload, reason in (({**base, "training": True}, "must be for a training station id"),
                            ({**base, "station": {"id": TRAINING}}, "not marked for training")):
        path = tmp_path / "p.pkg"
        path.write_bytes(sign_package(payload, cec[1]))
        with pytest.raises(PackageError, match=reason):
            load_package(path, cec[1].public_key(), ELECTION, NOW)
    path.write_bytes(sign_package(training_payload(base), cec[1]))
    assert load_package(path, cec[1].public_key(), ELECTION, NOW).training


def test_a_training_id_cannot_be_a_live_station_or_too_long() -> None:
    with pytest.raises(ProvisionError, match="must not start with TRAINING-"):
        training_payload({"station": {"id": TRAINING}})
    with pytest.raises(ProvisionError, match="longer than 64"):
        training_payload({"station": {"id": "K" * 60}})


def test_the_observers_check_says_training() -> None:
    key = Ed25519PrivateKey.generate()
    body = {"identified": 3, "ballots": 3, "difference": 0, "alarms_total": 1, "alarms_open": 0,
            "journal_seq": 9, "journal_hash": "a" * 64}
    for training, first in ((True, "TRAINING:"), (False, "VALID:")):
        record = make_record(key=key, station=TRAINING if training else STATION, seq=5, prev="0" * 64,
                             at=1.8e9, type_="polls_closed", body=body, training=training)
        verdict = verify_line(record.line(), key.public_key())
        assert verdict.valid and verdict.lines()[0].startswith(first), verdict.lines()
        assert record.key == key_id(key.public_key())
