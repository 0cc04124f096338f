"""The station config: every problem at once, with its key and a hint; simulation refused in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import ConfigError, load_config

GOOD = """
mode = "simulation"
election_id = "e1"
cec_public_key = "AAAA"
station_package = "p.json"
data_dir = "data"
[hardware]
scanner = "sim"
ballot_box = "sim"
[delays]
arm_timeout = 45
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_resolves_paths_and_delays(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, GOOD))
    assert c.data_dir == (tmp_path / "data").resolve() and c.delays.arm_timeout == 45
    assert c.describe()["cec_public_key"] == "********"


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('mode = "simulation"', 'mode = "prod"').replace("arm_timeout = 45", "arm_timout = 45\njam_after = 0")
    text = text.replace('scanner = "sim"', 'scaner = "sim"') + '\n[web]\nport = 70000\n'
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    problems = err.value.problems
    assert any(p.startswith("mode: must be one of simulation, production") for p in problems)
    assert "delays.arm_timout: unknown key (did you mean 'arm_timeout'?)" in problems
    assert any(p.startswith("delays.jam_after: must be a positive number") for p in problems)
    assert "hardware.scaner: unknown key (did you mean 'scanner'?)" in problems
    assert any(p.startswith("web.port: must be a TCP port") for p in problems)
    assert len(problems) == 5


def test_simulation_refused_in_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace('mode = "simulation"', 'mode = "production"')))
    assert sorted(p.split(":")[0] for p in err.value.problems) == ["hardware.ballot_box", "hardware.scanner"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("mode = ", "not valid TOML"), (GOOD.replace('election_id = "e1"\n', ""), "election_id: missing"),
    ("hardware = 3\n" + GOOD.split("[hardware]")[0], "hardware: must be a table")])
def test_broken_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(tmp_path, text))


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
