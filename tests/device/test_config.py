"""The station config: every problem at once, with its key and a hint; simulation refused in production;
typed settings per hardware backend; the chair's screen kept on the unit unless remote access is asked for;
a data directory that is a file and a short session key refused at config check time."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import SECRET_KEY_BYTES, ConfigError, load_config
from device.hardware.boxes.pins import DEFAULT_PINS, PinSpec

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


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return err.value.problems


def test_good_config_resolves_paths_and_delays(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, GOOD))
    assert c.data_dir == (tmp_path / "data").resolve() and c.delays.arm_timeout == 45
    assert c.hardware.camera.formats


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('mode = "simulation"', 'mode = "prod"').replace("arm_timeout = 45", "arm_timout = 45\njam_after = 0")
    text = text.replace('scanner = "sim"', 'scaner = "sim"') + '\n[web]\nport = 70000\n'
    problems = problems_of(tmp_path, text)
    assert any(p.startswith("mode: must be one of simulation, production") for p in problems)
    assert "delays.arm_timout: unknown key (did you mean 'arm_timeout'?)" in problems
    assert any(p.startswith("delays.jam_after: must be a positive number") for p in problems)
    assert "hardware.scaner: unknown key (did you mean 'scanner'?)" in problems
    assert any(p.startswith("web.port: must be a TCP port") for p in problems)
    assert len(problems) == 5


def test_simulation_refused_in_production(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD.replace('mode = "simulation"', 'mode = "production"'))
    assert sorted(p.split(":")[0] for p in problems) == ["hardware.ballot_box", "hardware.scanner"]


def test_simulated_camera_refused_in_production(tmp_path: Path) -> None:
    text = GOOD.replace('mode = "simulation"', 'mode = "production"').replace('"sim"', '"simcamera"', 1)
    text = text.replace('ballot_box = "sim"', 'ballot_box = "gpio"')
    assert [p.split(":")[0] for p in problems_of(tmp_path, text)] == ["hardware.scanner"]


BACKEND_TYPOS = GOOD + """
[hardware.camera]
widht = 800
fps = "fast"
formats = ["qr", "pdf147"]
[hardware.keyboard]
layuot = "de"
[hardware.serial]
baudrate = 0
[hardware.smartbox]
port = ""
[hardware.pins]
lock = { bcm = 99 }
[hardware.camra]
width = 800
"""


def test_mistyped_backend_settings_reported_with_the_rest(tmp_path: Path) -> None:
    """A misspelt or ill-typed key in a backend's table is a config problem, with every other one."""
    problems = problems_of(tmp_path, BACKEND_TYPOS.replace('scanner = "sim"', 'scanner = "keybaord"'))
    assert "hardware.camera.widht: unknown key (did you mean 'width'?)" in problems
    assert "hardware.camera.fps: must be frames per second from 1 to 60, got 'fast'" in problems
    assert any(p.startswith("hardware.camera.formats: lists 'pdf147'") and p.endswith("(did you mean 'pdf417'?)")
               for p in problems)
    assert "hardware.keyboard.layuot: unknown key (did you mean 'layout'?)" in problems
    assert any(p.startswith("hardware.serial.baudrate: must be a baud rate") for p in problems)
    assert any(p.startswith("hardware.smartbox.port: must be a non-empty string") for p in problems)
    assert "hardware.pins.beam: missing (every unit needs lock, beam, lid, green, red, buzzer)" in problems
    assert "hardware.camra: unknown key (did you mean 'camera'?)" in problems
    assert any(p.startswith("hardware.scanner: must be one of") and p.endswith("(did you mean 'keyboard'?)")
               for p in problems)
    assert len(problems) == 9


def test_backend_settings_are_typed(tmp_path: Path) -> None:
    text = GOOD + """
[hardware.camera]
device = "/dev/video2"
width = 1280
height = 720
formats = ["qr", "qr", "pdf417"]
[hardware.keyboard]
device = "Honeywell"
layout = "fr"
[hardware.serial]
port = "/dev/ttyUSB0"
baudrate = 115200
[hardware.pins]
lock = { bcm = 6 }
beam = { bcm = 27 }
lid = { bcm = 22 }
green = { bcm = 23 }
red = { bcm = 24 }
buzzer = { bcm = 25, active_high = false }
"""
    hw = load_config(write(tmp_path, text)).hardware
    assert (hw.camera.device, hw.camera.width, hw.camera.height, hw.camera.fps) == ("/dev/video2", 1280, 720, 15)
    assert hw.camera.formats == ("qr", "pdf417")
    assert (hw.keyboard.device, hw.keyboard.layout) == ("Honeywell", "fr")
    assert (hw.serial.port, hw.serial.baudrate) == ("/dev/ttyUSB0", 115200)
    assert (hw.smartbox.port, hw.smartbox.baudrate) == ("/dev/serial0", 115200)
    assert hw.pins.lock == PinSpec(6) and hw.pins.buzzer == PinSpec(25, False) and hw.pins.present is None
    assert load_config(write(tmp_path, GOOD)).hardware.pins == DEFAULT_PINS


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "pollbox.local"])
def test_screen_beyond_the_unit_refused_unless_allowed(tmp_path: Path, host: str) -> None:
    problems = problems_of(tmp_path, GOOD + f'[web]\nhost = "{host}"\n')
    assert len(problems) == 1 and problems[0].startswith(f"web.host: {host!r} would let other machines reach")
    assert "web.allow_remote = true" in problems[0]
    allowed = load_config(write(tmp_path, GOOD + f'[web]\nhost = "{host}"\nallow_remote = true\n'))
    assert allowed.web_host == host and allowed.web_allow_remote


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_loopback_screen_needs_no_option(tmp_path: Path, host: str) -> None:
    config = load_config(write(tmp_path, GOOD + f'[web]\nhost = "{host}"\n'))
    assert config.web_host == host and not config.web_allow_remote


def test_bad_host_and_option_are_sentences(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD + '[web]\nhost = "chair screen!"\nallow_remote = "yes"\n')
    assert problems == ["web.host: must be an IP address or a host name, got 'chair screen!' "
                        "(the chair's screen listens here; keep 127.0.0.1)",
                        "web.allow_remote: must be true or false, got 'yes' "
                        "(true lets the screen listen beyond the unit itself)"]


def test_data_dir_that_is_a_file_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    assert problems_of(tmp_path, GOOD) == [
        f"data_dir: {(tmp_path / 'data').resolve()} is a file, not a directory "
        "(name a directory, or move the file away)"]
    problems = problems_of(tmp_path, GOOD.replace('data_dir = "data"', 'data_dir = "data/pollbox"'))
    assert len(problems) == 1 and problems[0].startswith("data_dir: ") and "which is a file" in problems[0]


def test_backup_directory_that_is_a_file_refused(tmp_path: Path) -> None:
    (tmp_path / "stick").write_text("")
    problems = problems_of(tmp_path, GOOD + '[backup]\ndirectory = "stick"\n')
    assert len(problems) == 1 and problems[0].startswith("backup.directory: ")


def test_short_session_key_refused_with_what_to_do(tmp_path: Path) -> None:
    web = tmp_path / "data" / "web"
    web.mkdir(parents=True)
    (web / "secret_key").write_bytes(b"short")
    problems = problems_of(tmp_path, GOOD)
    assert problems == [f"data_dir: the screen's session key {(web / 'secret_key').resolve()} is 5 bytes, shorter "
                        f"than the {SECRET_KEY_BYTES} it must have; delete the file and pollbox makes a new one "
                        "at start (the chair logs in again)"]
    (web / "secret_key").write_bytes(bytes(SECRET_KEY_BYTES))
    assert load_config(write(tmp_path, GOOD)).web_dir == web.resolve()


def test_session_key_length_is_the_screens() -> None:
    from web_ui.secret import KEY_BYTES
    assert SECRET_KEY_BYTES == KEY_BYTES


def test_new_checks_reported_with_the_rest(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    problems = problems_of(tmp_path, GOOD.replace("arm_timeout", "arm_timout")
                           + '[web]\nhost = "0.0.0.0"\n[hardware.camera]\nwidht = 800\n')
    assert [p.split(":")[0] for p in problems] == ["hardware.camera.widht", "delays.arm_timout", "web.host", "data_dir"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("mode = ", "not valid TOML"), (GOOD.replace('election_id = "e1"\n', ""), "election_id: missing"),
    ("hardware = 3\n" + GOOD.split("[hardware]")[0], "hardware: must be a table"),
    (GOOD.replace("[hardware]", "[hardware]\ncamera = 3"), "hardware.camera: must be a table")])
def test_broken_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(tmp_path, text))


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def schema_keys(cls: type, prefix: str = "") -> tuple[list[str], list[str]]:
    """The schema's keys, and the tables read whole (by a reader of their own), as dotted names."""
    from dataclasses import fields
    keys: list[str] = []
    whole: list[str] = []
    for f in fields(cls):
        if "table" in f.metadata:
            more, more_whole = schema_keys(f.metadata["table"], f"{prefix}{f.name}.")
            keys, whole = keys + more, whole + more_whole
        elif "reader" in f.metadata or f.metadata.get("names_key"):
            whole.append(prefix + f.name)
        else:
            keys.append(prefix + f.name)
    return keys, whole


def test_every_key_is_documented() -> None:
    """docs/configuration.md names each key of the schema in its table's section, and has a section
    for each table read whole."""
    from device.config import _File
    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys, whole = schema_keys(_File)
    assert "hardware.camera.width" in keys and "web.allow_remote" in keys and "mode" in keys
    assert whole == ["hardware.pins", "delays"]
    headings = [s.split("\n", 1)[0] for s in text.split("\n#")]
    sections = text.split("\n#")
    for key in keys:
        table, _, name = key.rpartition(".")
        heading = f"`[{table}]`" if table else "Top level"
        section = next((s for s in sections if heading in s.split("\n", 1)[0]), "")
        assert f"`{name}`" in section, f"{key} is not documented under {heading} in docs/configuration.md"
    for table in whole:
        assert any(f"`[{table}]`" in h for h in headings), f"docs/configuration.md has no section for [{table}]"


def test_zbar_formats_checked_with_the_rest_when_a_camera_decodes(tmp_path: Path) -> None:
    zbar = GOOD.replace('ballot_box = "sim"', 'ballot_box = "sim"\ndecoder = "zbar"')
    problems = problems_of(tmp_path, zbar + '[web]\nhost = "0.0.0.0"\n')
    assert [p.split(":")[0] for p in problems] == ["hardware.camera.formats", "web.host"]
    assert "zbar decoder cannot read datamatrix, pdf417" in problems[0]
    assert load_config(write(tmp_path, zbar + '[hardware.camera]\nformats = ["qr", "code128"]\n')).decoder == "zbar"
    production = zbar.replace('mode = "simulation"', 'mode = "production"').replace('"sim"', '"keyboard"', 1)
    production = production.replace('ballot_box = "sim"', 'ballot_box = "gpio"')
    assert load_config(write(tmp_path, production)).decoder == "zbar"  # no camera: the decoder is never built


def test_zbar_formats_are_the_decoders() -> None:
    from device.config import ZBAR_READS
    from device.hardware.decoders.zbar import _SYMBOL
    assert set(ZBAR_READS) == set(_SYMBOL)


def test_misspelt_backend_in_production_is_one_problem(tmp_path: Path) -> None:
    """A wrong backend name leaves the key at its simulated default: reported once, as the wrong name."""
    text = GOOD.replace('mode = "simulation"', 'mode = "production"').replace('ballot_box = "sim"', 'ballot_box = "gpoi"')
    problems = problems_of(tmp_path, text.replace('scanner = "sim"', 'scanner = "serial"') + '[uplink]\ntransport = "htps"\n')
    assert [p.split(":")[0] for p in problems] == ["hardware.ballot_box", "uplink.transport"]
    assert problems[0].endswith("(did you mean 'gpio'?)") and problems[1].endswith("(did you mean 'https'?)")
    problems = problems_of(tmp_path, text.replace("[hardware]", "hardware = 3\n[other]"))
    assert [p.split(":")[0] for p in problems] == ["hardware", "other"]
