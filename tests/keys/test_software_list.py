"""The CEC's signed software list, and the receiver's overview flagging a station that runs something else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from keys_kit import AnyUnit, receiver_setup
from rx_kit import post

from device.hardware.clock import FakeClock
from provisioning.cec import create_cec_key
from provisioning.cli import main as provision
from receiver.app import create_app
from receiver.software_list import SoftwareListError, read_software_list

CERTIFIED = "ab" * 32
OTHER = "cd" * 32


def make_list(tmp_path: Path, cec_file: Path, *pairs: tuple[str, str]) -> Path:
    path = tmp_path / "software-list.json"
    for version, code_hash in pairs:
        assert provision(["cec", "software-list", "--cec-key", str(cec_file), "--out", str(path), "--version", version,
                          "--hash", code_hash, "--note", "certified by the CEC"]) == 0
    return path


def test_the_list_is_signed_added_to_once_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cec = create_cec_key(tmp_path / "cec.key")
    path = make_list(tmp_path, tmp_path / "cec.key", ("0.1.0", CERTIFIED), ("0.1.0", CERTIFIED), ("0.2.0", OTHER))
    entries = read_software_list(path.read_bytes(), cec.public_key())
    assert [(e["version"], e["hash"]) for e in entries] == [("0.1.0", CERTIFIED), ("0.2.0", OTHER)]
    assert "already on the list" in capsys.readouterr().out
    doc = json.loads(path.read_bytes())
    doc["software"][0]["hash"] = OTHER
    path.write_text(json.dumps(doc))
    with pytest.raises(SoftwareListError, match="CEC signature does not verify"):
        read_software_list(path.read_bytes(), cec.public_key())
    assert provision(["cec", "software-list", "--cec-key", str(tmp_path / "cec.key"), "--out", str(path)]) == 5
    assert "E077" in capsys.readouterr().err


def test_the_overview_flags_a_station_whose_report_names_uncertified_software(tmp_path: Path,
                                                                              clock: FakeClock) -> None:
    listed, other = AnyUnit("KG-0001"), AnyUnit("KG-0002")
    setup = receiver_setup(tmp_path, {"KG-0001": listed, "KG-0002": other}, create_cec_key(tmp_path / "cec.key"))
    path = make_list(tmp_path, tmp_path / "cec.key", ("0.1.0", CERTIFIED))
    app = create_app({**setup.config(str(tmp_path / "receiver.db"), clock), "SOFTWARE_LIST_PATH": str(path)})
    try:
        client = app.test_client()
        for unit, code_hash in ((listed, CERTIFIED), (other, OTHER)):
            opened = unit.record("polls_opened", {"identified": 0, "ballots": 0, "software_version": "0.1.0",
                                                  "software_hash": code_hash})
            assert post(client, [opened]).status_code == 200
        page = client.get("/").get_data(as_text=True)
        rows = {row.split("</td>")[0]: row for row in page.split("<tr")[1:] if "KG-000" in row}
        flagged = [station for station in ("KG-0001", "KG-0002")
                   if any(station in head and "software not on the CEC's list (0.1.0)" in row for head, row in rows.items())]
        assert flagged == ["KG-0002"]
        make_list(tmp_path, tmp_path / "cec.key", ("0.1.0", OTHER))  # the CEC certifies it: the flag goes
        assert "software-unlisted" not in client.get("/").get_data(as_text=True)
        path.write_text(path.read_text().replace("certified by the CEC", "certified by nobody", 1))
        page = client.get("/").get_data(as_text=True)
        assert "software list:" in page and "CEC signature does not verify" in page
        assert "software-unlisted" not in page  # the previous list stays in force
    finally:
        app.extensions["pollbox_receiver"].storage.close()


ROOT_RELEASED = "5a" * 32
ROOT_ALTERED = "5b" * 32


def test_a_station_running_a_root_the_cec_did_not_release_is_flagged(tmp_path: Path, clock: FakeClock) -> None:
    """A report's ``system_version``/``system_hash`` pair (the whole root file system) is what is checked when the
    report names one; else its code pair."""
    units = {"KG-0001": AnyUnit("KG-0001"), "KG-0002": AnyUnit("KG-0002"), "KG-0003": AnyUnit("KG-0003")}
    setup = receiver_setup(tmp_path, dict(units), create_cec_key(tmp_path / "cec.key"))
    path = make_list(tmp_path, tmp_path / "cec.key", ("0.2.0", ROOT_RELEASED), ("0.1.0", CERTIFIED))
    app = create_app({**setup.config(str(tmp_path / "receiver.db"), clock), "SOFTWARE_LIST_PATH": str(path)})
    code = {"software_version": "0.1.0", "software_hash": CERTIFIED}
    bodies = {"KG-0001": {**code, "system_slot": "B", "system_version": "0.2.0", "system_hash": ROOT_RELEASED},
              "KG-0002": {**code, "system_slot": "B", "system_version": "0.2.0", "system_hash": ROOT_ALTERED},
              "KG-0003": code}  # no system named (a slot as flashed): its code pair is checked
    try:
        client = app.test_client()
        for station, extra in bodies.items():
            opened = units[station].record("polls_opened", {"identified": 0, "ballots": 0, **extra})
            assert post(client, [opened]).status_code == 200
        page = client.get("/").get_data(as_text=True)
        rows = {station: row for row in page.split("<tr")[1:] for station in units if f">{station}</a>" in row}
        assert sorted(s for s, row in rows.items() if "software-unlisted" in row) == ["KG-0002"], rows
        assert f"hash {ROOT_ALTERED}" in rows["KG-0002"]  # the altered root is flagged though its code pair is listed
    finally:
        app.extensions["pollbox_receiver"].storage.close()
