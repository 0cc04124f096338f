"""The first boot's check of the station stick (``device.firstboot``), on the host: fast, no image.

A stick is laid out as the image mounts it (``station/`` and its files); the import runs as the image
runs it (``python -m device.firstboot``) against an image settings file like the one ``build.sh``
writes. Every bad stick is refused with its own reason, nothing is installed, and the first-boot
screen says why in Kyrgyz, Russian and English (no English word on the ky and ru pages).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.demo import ELECTION
from device.firstboot import KINDS, ImageSettings, StickRefused, check_stick, read_image_settings
from device.firstboot_screen import LANGUAGES, TEXT, make_app, render
from protocol.keys import public_b64
from tests.web.test_no_english import visible_words

from .sticks import BAD_STICKS, bad_station
from .vm import STICK_FILES, TEST_CEC, demo_station

SETTINGS = ImageSettings(election_id=ELECTION, cec_public_key=public_b64(TEST_CEC.public_key()),
                         allow_simulation=True)
REPO = Path(__file__).resolve().parents[2]


def stick_of(station: Path, names: tuple[str, ...], root: Path) -> Path:
    """The stick as the unit mounts it: ``station/`` holding ``names``."""
    for name in names:
        target = root / "station" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(station / name, target)
    return root


def settings_file(path: Path, settings: ImageSettings = SETTINGS) -> Path:
    path.write_text(f'election_id = "{settings.election_id}"\ncec_public_key = "{settings.cec_public_key}"\n'
                    f"allow_simulation = {'true' if settings.allow_simulation else 'false'}\n"
                    '\n[screen]\nhost = "127.0.0.1"\nport = 8080\n')
    return path


def firstboot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device.firstboot", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_good_stick_is_installed_by_the_real_process(tmp_path: Path) -> None:
    stick = stick_of(demo_station(tmp_path), STICK_FILES, tmp_path / "stick")
    dest, refusal = tmp_path / "data" / "station", tmp_path / "run" / "refusal.json"
    dest.parent.mkdir()
    done = firstboot("--settings", str(settings_file(tmp_path / "image.toml")), "--refusal", str(refusal),
                     "import", "--stick", str(stick), "--dest", str(dest), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "station imported from the USB stick" in done.stdout
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(STICK_FILES)
    assert (dest / "data" / "device.key").stat().st_mode & 0o777 == 0o600
    assert not refusal.exists() and not (tmp_path / "data" / "station.new").exists()


@pytest.mark.parametrize("kind", BAD_STICKS)
def test_every_bad_stick_is_refused_with_its_reason_and_nothing_installed(kind: str, tmp_path: Path) -> None:
    station, names = bad_station(kind, tmp_path)
    stick = stick_of(station, names, tmp_path / "stick")
    dest, refusal = tmp_path / "data" / "station", tmp_path / "run" / "refusal.json"
    dest.parent.mkdir()
    done = firstboot("--settings", str(settings_file(tmp_path / "image.toml")), "--refusal", str(refusal),
                     "import", "--stick", str(stick), "--dest", str(dest), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"refused ({kind})" in done.stdout and "nothing installed" in done.stdout
    assert "Traceback" not in done.stderr
    assert list((tmp_path / "data").iterdir()) == []
    recorded = json.loads(refusal.read_text())
    assert recorded["kind"] == kind
    page = render(recorded, "en")
    assert html.escape(TEXT[kind]["en"].split(" (")[0].split("{")[0]) in page


def test_wrong_election_and_expiry_name_what_was_found(tmp_path: Path) -> None:
    station, names = bad_station("wrong_election", tmp_path / "a")
    with pytest.raises(StickRefused) as wrong:
        check_stick(stick_of(station, names, tmp_path / "a" / "stick"), SETTINGS, 1.8e9)
    assert wrong.value.facts == {"found": "kg-2027-other", "expected": ELECTION}
    assert "kg-2027-other" in render({"kind": "wrong_election", "facts": wrong.value.facts}, "ky")
    station, names = bad_station("expired", tmp_path / "b")
    with pytest.raises(StickRefused) as expired:
        check_stick(stick_of(station, names, tmp_path / "b" / "stick"), SETTINGS, 1.8e9)
    assert expired.value.facts == {"expired": "2026-01-31"}


def test_an_image_without_a_trust_anchor_refuses_every_stick(tmp_path: Path) -> None:
    stick = stick_of(demo_station(tmp_path), STICK_FILES, tmp_path / "stick")
    assert read_image_settings(tmp_path / "no-such-file") == ImageSettings()
    with pytest.raises(StickRefused) as refused:
        check_stick(stick, ImageSettings(), 1.8e9)
    assert refused.value.kind == "no_anchor"


def test_a_simulated_station_is_refused_unless_the_image_accepts_one(tmp_path: Path) -> None:
    stick = stick_of(demo_station(tmp_path), STICK_FILES, tmp_path / "stick")
    strict = ImageSettings(election_id=SETTINGS.election_id, cec_public_key=SETTINGS.cec_public_key)
    with pytest.raises(StickRefused) as refused:
        check_stick(stick, strict, 1.8e9)
    assert refused.value.kind == "simulation"
    assert check_stick(stick, SETTINGS, 1.8e9) == stick / "station"


def test_a_config_that_does_not_load_is_refused(tmp_path: Path) -> None:
    station = demo_station(tmp_path)
    toml = station / "station.toml"
    toml.write_text(toml.read_text().replace('mode = "simulation"', 'mode = "simulaton"'))
    with pytest.raises(StickRefused) as refused:
        check_stick(stick_of(station, STICK_FILES, tmp_path / "stick"), SETTINGS, 1.8e9)
    assert refused.value.kind == "bad_config" and "mode" in refused.value.detail


def test_no_stick_is_recorded_for_the_screen(tmp_path: Path) -> None:
    refusal = tmp_path / "refusal.json"
    done = firstboot("--refusal", str(refusal), "refuse", "no_stick", "no USB stick labelled POLLBOXUSB", cwd=tmp_path)
    assert done.returncode == 1 and "refused (no_stick)" in done.stdout
    assert json.loads(refusal.read_text())["kind"] == "no_stick"


def test_every_sentence_exists_in_every_language_without_english_on_ky_and_ru() -> None:
    assert set(KINDS) <= set(TEXT)
    facts = {"found": "kg-2027-other", "expected": "demo-2026", "expired": "2026-01-31"}
    allowed = {"USB", "English", "kg", "other", "demo"}
    for kind in KINDS:
        assert set(TEXT[kind]) == set(LANGUAGES), kind
        for lang in ("ky", "ru"):
            page = render({"kind": kind, "facts": facts}, lang)
            assert visible_words(page) - allowed == set(), (kind, lang, sorted(visible_words(page) - allowed))


def test_the_screen_serves_the_refusal_in_the_chosen_language(tmp_path: Path) -> None:
    refusal = tmp_path / "refusal.json"
    app = make_app(refusal)
    seen: list[str] = []

    def get(path: str, query: str = "") -> str:
        body = b"".join(app({"PATH_INFO": path, "QUERY_STRING": query}, lambda status, headers: seen.append(status)))
        return body.decode()

    assert TEXT["waiting"]["ky"] in get("/")
    refusal.write_text(json.dumps({"kind": "tampered", "detail": "signature", "facts": {}}))
    assert TEXT["tampered"]["ky"] in get("/")
    assert TEXT["tampered"]["ru"] in get("/", "lang=ru")
    assert html.escape(TEXT["tampered"]["en"]) in get("/", "lang=en")
    assert json.loads(get("/api/firstboot"))["kind"] == "tampered"
    assert seen == ["200 OK"] * 5
