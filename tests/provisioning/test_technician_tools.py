"""Where the technician guide and the tools used to disagree, the tools now do what the guide says.

- the bulk path puts each unit's enrollment certificate into its station folder (``--enrollments-dir``);
- the journal backup folder is set on the data partition (``unit backup``), not in the read-only config;
- the voter list progress reaches every row (the bar ended at the last full thousand);
- an unencrypted CEC key is written with a warning, and ``--encrypt`` asks for a passphrase;
- a forgotten chair PIN is reset with ``unit reset-pin``.
The whole guide is also run as written by ``tests/web/test_technician_guide.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prov_helpers import ELECTION, STATION, Cec, b64

from device.config import load_config
from provisioning import cli
from provisioning.enrollment import create_unit_keys, make_request, write_json
from provisioning.install import install_from
from provisioning.samplelist import write_sample_csv
from provisioning.voterlist import import_csv
from web_ui.pin import set_pin

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "technician-guide.md"


def unit_config(directory: Path, cec: Cec, extra: str = "") -> Path:
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / "station.toml"
    config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(cec[1])}"\n'
                      'station_package = "data/station.pkg"\ndata_dir = "data"\n[uplink]\ntransport = "sim"\n'
                      + extra)
    return config


# The bulk path and the enrollment certificate ---------------------------------------------------------------

def test_bulk_packages_carry_each_units_enrollment_certificate(tmp_path: Path, cec: Cec, plan: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    unit = tmp_path / "unit"
    config = load_config(unit_config(unit, cec))
    create_unit_keys(config.data_dir)
    write_json(tmp_path / "requests" / f"{STATION}.json", make_request(config.data_dir, STATION, "10000000abcdef",
                                                                        time.time()))
    (tmp_path / "lists").mkdir()
    for sid in (STATION, "KG-0002"):
        write_sample_csv(tmp_path / "lists" / f"{sid}.csv", sid, 30, seed=3)
    assert cli.main(["cec", "enroll", "--cec-key", str(cec[0]), "--registry", str(tmp_path / "registry.json"),
                     "--out", str(tmp_path / "certs"), str(tmp_path / "requests" / f"{STATION}.json")]) == 0
    assert cli.main(["cec", "packages", "--plan", str(plan), "--voters-dir", str(tmp_path / "lists"), "--cec-key",
                     str(cec[0]), "--out", str(tmp_path / "out"), "--requests-dir", str(tmp_path / "requests"),
                     "--enrollments-dir", str(tmp_path / "certs")]) == 0
    out = capsys.readouterr().out
    assert "1 enrollment certificate(s) copied into 1 station folder(s)" in out
    assert "NO certificate for KG-0002" in out
    folder = tmp_path / "out" / STATION / "pollbox"
    assert sorted(p.name for p in folder.iterdir()) == [f"{STATION}-10000000abcdef.enrollment.json",
                                                         "list.key.sealed", "station.pkg"]
    assert install_from(folder, config, time.time()).enrolled


def test_bulk_refuses_a_missing_certificate_folder_before_building(tmp_path: Path, cec: Cec, plan: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lists").mkdir()
    write_sample_csv(tmp_path / "lists" / f"{STATION}.csv", STATION, 10, seed=3)
    assert cli.main(["cec", "packages", "--plan", str(plan), "--voters-dir", str(tmp_path / "lists"), "--cec-key",
                     str(cec[0]), "--out", str(tmp_path / "out"), "--enrollments-dir", str(tmp_path / "nope")]) == 2
    assert "E001 no enrollment certificate folder at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# The backup folder on the data partition --------------------------------------------------------------------

def test_backup_folder_is_set_on_the_data_partition_and_read_at_start(tmp_path: Path, cec: Cec,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = unit_config(tmp_path / "unit", cec)
    config.chmod(0o444)  # the station config is on the read-only root
    assert load_config(config).backup_dir is None
    assert cli.main(["unit", "backup", "--config", str(config)]) == 0
    assert "no journal backup folder is set" in capsys.readouterr().out
    stick = tmp_path / "backup-stick"
    assert cli.main(["unit", "backup", "--config", str(config), "--directory", str(stick)]) == 0
    assert "takes effect when pollbox starts again" in capsys.readouterr().out
    assert load_config(config).backup_dir == stick
    assert cli.main(["unit", "backup", "--config", str(config)]) == 0
    assert f"journal backup folder: {stick} (set in {tmp_path / 'unit' / 'data' / 'backup.toml'})" in \
        capsys.readouterr().out
    assert cli.main(["unit", "backup", "--config", str(config), "--off"]) == 0
    assert load_config(config).backup_dir is None


def test_backup_setting_refuses_what_would_not_work(tmp_path: Path, cec: Cec,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = unit_config(tmp_path / "unit", cec)
    assert cli.main(["unit", "backup", "--config", str(config), "--directory", "relative/stick"]) == 2
    assert "give the absolute path" in capsys.readouterr().err
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert cli.main(["unit", "backup", "--config", str(config), "--directory", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    own = unit_config(tmp_path / "other", cec, f'[backup]\ndirectory = "{tmp_path / "fixed"}"\n')
    assert cli.main(["unit", "backup", "--config", str(own), "--directory", str(tmp_path / "x")]) == 2
    assert "that setting wins" in capsys.readouterr().err
    assert not (tmp_path / "other" / "data" / "backup.toml").exists()


def test_a_damaged_backup_setting_is_a_config_problem_not_silence(tmp_path: Path, cec: Cec,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = unit_config(tmp_path / "unit", cec)
    (tmp_path / "unit" / "data" / "backup.toml").write_text("[backup]\ndirectory = 'media'\n")
    assert cli.main(["unit", "backup", "--config", str(config)]) == 6
    assert "[backup] directory must be an absolute path" in capsys.readouterr().err


# The progress bar -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [1, 999, 1500, 2000, 2345])
def test_progress_reaches_every_row(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "voters.csv"
    write_sample_csv(path, STATION, rows, seed=5)
    told: list[int] = []
    result = import_csv(path, STATION, b"k" * 32, progress=told.append)
    assert result.count == rows and sum(told) == rows == cli._rows_in(path)


def test_progress_is_not_counted_twice_when_the_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "voters.csv"
    write_sample_csv(path, STATION, 1200, seed=5)
    path.write_bytes(path.read_bytes() + b"\xff\xfe,bad,row,1201," + STATION.encode() + b"\n")
    told: list[int] = []
    import_csv(path, STATION, b"k" * 32, progress=told.append)
    assert sum(told) == 1201  # the second, row-checking reading reports only the rows the first did not


# The CEC key ----------------------------------------------------------------------------------------------------

def test_an_unencrypted_cec_key_is_written_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("POLLBOX_CEC_PASSPHRASE", raising=False)
    assert cli.main(["cec", "keygen", "--out", str(tmp_path / "cec.key")]) == 0
    out = capsys.readouterr()
    assert "NOT encrypted" in out.out
    assert out.err.startswith(f"WARNING: {tmp_path / 'cec.key'} is NOT encrypted")
    assert "--encrypt" in out.err
    assert b"ENCRYPTED" not in (tmp_path / "cec.key").read_bytes()


def test_encrypt_asks_for_the_passphrase_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("POLLBOX_CEC_PASSPHRASE", raising=False)
    answers = iter(["a long passphrase", "a long passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["cec", "keygen", "--encrypt", "--out", str(tmp_path / "cec.key")]) == 0
    out = capsys.readouterr()
    assert "encrypted with the passphrase" in out.out and "WARNING" not in out.err
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "cec.key").read_bytes()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["cec", "enroll", "--cec-key", str(tmp_path / "cec.key"), "--registry",
                     str(tmp_path / "r.json"), "--out", str(tmp_path), str(tmp_path / "none.json")]) == 4
    assert "the CEC key is encrypted; give its passphrase" in capsys.readouterr().err


@pytest.mark.parametrize(("first", "second", "why"), [("a long passphrase", "another one", "differ"),
                                                      ("short", "short", "shorter than 8")])
def test_encrypt_refuses_a_bad_passphrase_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], first: str,
                                                             second: str, why: str) -> None:
    monkeypatch.delenv("POLLBOX_CEC_PASSPHRASE", raising=False)
    answers = iter([first, second])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["cec", "keygen", "--encrypt", "--out", str(tmp_path / "cec.key")]) == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "cec.key").exists()


# The chair PIN reset and the guide's wording ---------------------------------------------------------------

def test_reset_pin_removes_the_chair_pin(tmp_path: Path, cec: Cec, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(unit_config(tmp_path / "unit", cec))
    set_pin(config.web_dir / "chair_pin.json", "385027")
    assert cli.main(["unit", "reset-pin", "--config", str(config.path)]) == 0
    assert "asks the chair to choose a new one" in capsys.readouterr().out
    assert not (config.web_dir / "chair_pin.json").exists()
    assert cli.main(["unit", "reset-pin", "--config", str(config.path)]) == 0
    assert "no chair PIN was set" in capsys.readouterr().out


def test_the_guide_says_what_the_unit_really_shows() -> None:
    text = GUIDE.read_text()
    assert "when the screen says so" not in text.lower()  # nothing on the screen announces the request
    assert "[backup] directory = \"/media/pollbox-backup\"` in\n`/etc/pollbox/station.toml`" not in text
    assert "python -m web_ui.pin" not in text
