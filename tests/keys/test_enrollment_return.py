"""After a TPM first boot: the CEC enrolls the request from the stick and the certificate goes back on it; the
unit takes it at its next boot, or while it runs (the stick plugged in); the chair's details page says what
state the key is in, and the appliance's journal records the certificate taken (``device_key_enrolled``) or
refused (``device_key_enrollment_refused``) once. Through the real processes: the first-boot import,
``pollbox-provision cec enroll``, ``python -m device.firstboot_key take`` (as the image's
``pollbox-enrollment`` runs it) and ``pollbox run``; and in Chromium in ky, ru and en.

A certificate signed by another CEC key, or only other units' certificates, is refused with the reason and
nothing is stored; a stick without a certificate changes nothing; a unit whose key is a file takes nothing
and says nothing.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from device.demo import make_demo_station
from device.keystate import REFUSAL, certificate_hash
from protocol.keys import public_b64
from tests.image.test_firstboot_stick import stick_of
from tests.image.vm import TEST_CEC
from tests.keys.swtpm import SoftTpm, needs_swtpm
from tests.keys.test_firstboot_tpm_key import TPM_STICK_FILES, firstboot_import, tpm_station
from tests.process_station import ROOT, RunningStation, child_env

pytestmark = needs_swtpm

T = TypeVar("T")

PICKED_UP = 30.0
"""Seconds a running appliance has to show a certificate taken meanwhile (it looks at each tick, 0.25 s)."""
REQUESTED = {"ky": "азырынча каттай элек", "ru": "ещё не зарегистрирован", "en": "not enrolled by the CEC yet"}
ENROLLED = {"ky": "БШК каттаган", "ru": "зарегистрирован ЦИК", "en": "enrolled by the CEC"}
INVALID = {"ky": "тастыктама жараксыз", "ru": "сертификат недействителен", "en": "certificate not valid"}


@dataclass
class Unit:
    """A unit after its TPM first boot: its stick (a folder), its installed station, its TPM and the CEC's files."""

    tmp: Path
    stick: Path
    station: Path
    tpm: SoftTpm
    request: dict[str, Any]

    def cec_enroll(self, cec: Ed25519PrivateKey, registry: str = "registry.json") -> subprocess.CompletedProcess[str]:
        """At the CEC: the request from the stick enrolled, the certificate written onto the same stick."""
        key = self.tmp / f"cec-{registry}.key"
        key.write_bytes(cec.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        key.chmod(0o600)
        [request] = sorted(self.stick.glob("enrollment-request-*.json"))
        return subprocess.run([sys.executable, "-m", "provisioning.cli", "cec", "enroll", "--cec-key", str(key),
                               "--registry", str(self.tmp / registry), "--out", str(self.stick), str(request)],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)

    def take(self) -> subprocess.CompletedProcess[str]:
        """At the unit's next boot: the certificate taken from the stick (as pollbox-enrollment.service does)."""
        return take(self.stick, self.station)

    @property
    def certificate(self) -> Path:
        return self.station / "data" / "enrollment.json"


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    tpm = SoftTpm.start(tmp_path / "tpm")
    try:
        stick = stick_of(tpm_station(tmp_path, tpm), TPM_STICK_FILES, tmp_path / "stick")
        (tmp_path / "data").mkdir()
        dest = tmp_path / "data" / "station"
        done = firstboot_import(tmp_path, stick, dest)
        assert done.returncode == 0, done.stdout + done.stderr
        [request] = sorted(stick.glob("enrollment-request-*.json"))
        yield Unit(tmp_path, stick, dest, tpm, json.loads(request.read_text()))
    finally:
        tpm.stop()


def take(stick: Path, station: Path) -> subprocess.CompletedProcess[str]:
    """``python -m device.firstboot_key take`` as the image's pollbox-enrollment runs it."""
    return subprocess.run([sys.executable, "-m", "device.firstboot_key", "take", "--stick", str(stick),
                           "--config", str(station / "station.toml")],
                          capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)


def enrollment_events(station: Path) -> list[tuple[str, dict[str, Any]]]:
    """The journal's enrollment events (kind, body), read as any reader of the journal may, beside the writer."""
    with sqlite3.connect(f"file:{station / 'data' / 'journal.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT kind, body FROM events WHERE kind LIKE 'device_key_%' ORDER BY seq").fetchall()
    return [(kind, json.loads(body)) for kind, body in rows]


def station_reaches(running: RunningStation, probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """``probe()``'s value once ``done`` holds for it, asked again while the station runs (within ``PICKED_UP``
    seconds); the station ending, or the time running out, fails with ``what`` and the last value."""
    deadline = time.monotonic() + PICKED_UP
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {PICKED_UP:g} s: {value}")
        assert running.proc is not None and running.proc.poll() is None, running.stderr()
        try:
            running.proc.wait(0.1)  # polling pace; returns early if the process ended
        except subprocess.TimeoutExpired:
            pass


def key_becomes(running: RunningStation, state: str) -> dict[str, Any]:
    """The status's key once it is in ``state`` (within ``PICKED_UP`` seconds)."""
    return station_reaches(running, lambda: running.ok({"cmd": "status"})["key"],
                           lambda key: key.get("enrollment") == state, f"the key did not become {state!r}")


def key_line(station: RunningStation) -> tuple[dict[str, Any], str]:
    """The status's key and the details page (in the station's language) as the running appliance serves them."""
    code, page = station.http_get("/details")
    assert code == 200
    return station.ok({"cmd": "status"})["key"], page.decode()


def test_a_technician_completes_the_enrollment_from_the_cli_and_the_screen_follows(unit: Unit) -> None:
    kid = unit.request["key_id"]
    running = RunningStation(unit.station).start()
    try:
        key, page = key_line(running)
        assert (key["id"], key["alg"], key["store"], key["enrollment"]) == (kid, "p256", "tpm", "requested")
        assert 'data-key="requested"' in page and f"<code>{kid}</code>" in page
        assert REQUESTED["ky"] in page  # the demo station's language
    finally:
        running.stop()
    nothing = unit.take()  # the stick still holds only the request
    assert nothing.returncode == 0 and "no enrollment certificate on the USB stick" in nothing.stdout
    assert not unit.certificate.exists()
    enrolled = unit.cec_enroll(TEST_CEC)
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    assert list(unit.stick.glob("*.enrollment.json")), "the certificate goes back on the stick"
    taken = unit.take()
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert f"device key {kid} enrolled by the CEC" in taken.stdout and unit.certificate.is_file()
    again = unit.take()
    assert again.returncode == 0 and "already enrolled" in again.stdout
    running = RunningStation(unit.station).start()
    try:
        key, page = key_line(running)
        assert key["enrollment"] == "enrolled" and key["enrolled_at"], key
        assert 'data-key="enrolled"' in page and ENROLLED["ky"] in page and REQUESTED["ky"] not in page
    finally:
        running.stop()


def test_a_certificate_of_another_cec_or_another_unit_is_refused_and_nothing_stored(unit: Unit,
                                                                                   tmp_path: Path) -> None:
    impostor = unit.cec_enroll(Ed25519PrivateKey.generate(), "impostor-registry.json")
    assert impostor.returncode == 0, impostor.stderr
    refused = unit.take()
    assert refused.returncode == 1, refused.stdout
    assert "not an enrollment certificate signed by this election's CEC key" in refused.stderr, refused.stderr
    assert not unit.certificate.exists()
    for cert in unit.stick.glob("*.enrollment.json"):
        cert.unlink()
    other_dir = tmp_path / "other-unit"
    other_dir.mkdir()
    from provisioning.enrollment import create_unit_keys, enroll, make_request, write_json
    create_unit_keys(other_dir)  # another unit's request, enrolled for real by the CEC
    other = make_request(other_dir, unit.request["station"], "SN-OTHER", 1.8e9)
    write_json(tmp_path / "other.json", other)
    enroll([tmp_path / "other.json"], tmp_path / "registry.json", TEST_CEC, unit.stick, 1.8e9)
    refused = unit.take()
    assert refused.returncode == 1 and "none for this unit's device key" in refused.stderr, refused.stderr
    assert "this enrollment is for another unit" in refused.stderr
    assert not unit.certificate.exists()


def _key_line_in_every_language(unit: Unit, browser: Any, state: str, said: dict[str, str]) -> None:
    """The details page of ``unit`` run as ``pollbox run``, in ky, ru and en at 800x480 with touch: its key line
    in ``state``, saying ``said[lang]``, naming the key's id; the page fits the screen, with no target or text
    too small (``tests/web/test_browser.py``'s check), in the observer's and the chair's view."""
    from tests.browser_kit import playwright_or_skip
    from tests.web.test_browser import FITS
    expect = playwright_or_skip().expect
    running = RunningStation(unit.station).start()
    try:
        context = browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
        page = context.new_page()
        for view in ("/details", "/details?view=observer"):
            page.goto(f"http://127.0.0.1:{running.web_port}{view}")
            line = page.locator('[data-field="key"]')
            for lang in ("ky", "ru", "en"):
                page.locator(f'form.langs button[lang="{lang}"]').click()
                expect(line).to_have_attribute("data-key", state)
                expect(line).to_contain_text(said[lang])
                expect(line.locator("code")).to_have_text(unit.request["key_id"])
                page.wait_for_load_state()
                found = page.evaluate(FITS)
                where = f"{view} {lang} {state}"
                assert found["height"] <= 480, f"{where}: {found['height']} px tall"
                assert found["small_targets"] == [] and found["small_text"] == [], (where, found)
        context.close()
    finally:
        running.stop()


@pytest.mark.browser
def test_the_key_line_in_chromium_in_every_language(unit: Unit, browser: Any) -> None:
    _key_line_in_every_language(unit, browser, "requested", REQUESTED)
    assert unit.cec_enroll(Ed25519PrivateKey.generate(), "impostor-registry.json").returncode == 0
    assert unit.take().returncode == 1  # another CEC's certificate: refused, shown as not valid
    _key_line_in_every_language(unit, browser, "invalid", INVALID)
    for impostor in unit.stick.glob("*.enrollment.json"):
        impostor.unlink()
    assert unit.cec_enroll(TEST_CEC).returncode == 0 and unit.take().returncode == 0
    _key_line_in_every_language(unit, browser, "enrolled", ENROLLED)


def test_a_running_unit_follows_a_certificate_taken_meanwhile_and_journals_it_once(unit: Unit) -> None:
    kid = unit.request["key_id"]
    running = RunningStation(unit.station).start()
    try:
        assert running.ok({"cmd": "status"})["key"]["enrollment"] == "requested"
        assert unit.cec_enroll(TEST_CEC).returncode == 0
        [stick_copy] = unit.stick.glob("*.enrollment.json")
        taken = unit.take()  # the stick plugged into the running unit
        assert taken.returncode == 0, taken.stdout + taken.stderr
        key = key_becomes(running, "enrolled")
        assert key["id"] == kid and key["enrolled_at"]
        code, page = running.http_get("/details")
        assert code == 200 and 'data-key="enrolled"' in page.decode() and ENROLLED["ky"] in page.decode()
    finally:
        running.stop()
    [(kind, body)] = enrollment_events(unit.station)
    assert kind == "device_key_enrolled"
    assert (body["key_id"], body["alg"], body["store"], body["serial"]) == (kid, "p256", "tpm", unit.request["serial"])
    assert body["certificate"] == certificate_hash(stick_copy.read_bytes()) == certificate_hash(
        unit.certificate.read_bytes())
    running = RunningStation(unit.station).start()  # the next start: the certificate is already on the journal
    running.stop()
    assert [k for k, _ in enrollment_events(unit.station)] == ["device_key_enrolled"]


def test_a_refused_certificate_is_journaled_and_shown_until_the_cec_s_one_is_taken(unit: Unit) -> None:
    kid = unit.request["key_id"]
    assert unit.cec_enroll(Ed25519PrivateKey.generate(), "impostor-registry.json").returncode == 0
    [impostor] = unit.stick.glob("*.enrollment.json")
    refused = unit.take()
    assert refused.returncode == 1 and "signed by this election's CEC key" in refused.stderr, refused.stderr
    left = json.loads((unit.station / "data" / REFUSAL).read_text())
    assert left["certificate"] == certificate_hash(impostor.read_bytes()) and "ask the CEC" in left["reason"]
    running = RunningStation(unit.station).start()
    try:
        key = running.ok({"cmd": "status"})["key"]
        assert key["enrollment"] == "invalid" and "ask the CEC" in key["problem"], key
        code, page = running.http_get("/details")
        assert code == 200 and 'data-key="invalid"' in page.decode()
        impostor.unlink()
        assert unit.cec_enroll(TEST_CEC).returncode == 0
        assert unit.take().returncode == 0  # the right certificate, the unit still running
        assert key_becomes(running, "enrolled")["id"] == kid
    finally:
        running.stop()
    assert not (unit.station / "data" / REFUSAL).exists(), "a refusal is removed once a certificate is taken"
    events = enrollment_events(unit.station)
    assert [k for k, _ in events] == ["device_key_enrollment_refused", "device_key_enrolled"], events
    refusal = events[0][1]
    assert (refusal["key_id"], refusal["source"], refusal["certificate"]) == (kid, "stick", left["certificate"])
    assert "ask the CEC to enroll this unit's request again" in refusal["reason"]


def test_a_unit_whose_key_is_a_file_takes_nothing_and_says_nothing(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=5)
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "enrollment-request-KG-DEMO-0001-SN.json").write_text("{}")  # no certificate: the hint's case
    said = take(stick, config.parent)
    assert (said.returncode, said.stdout, said.stderr) == (0, "", "")
    (stick / "KG-DEMO-0001-SN.enrollment.json").write_text("{}")  # not even a broken certificate is looked at
    said = take(stick, config.parent)
    assert (said.returncode, said.stdout, said.stderr) == (0, "", "")
    assert not (config.parent / "data" / "enrollment.json").exists() and not (config.parent / "data" / REFUSAL).exists()


def journal_rows(station: Path) -> list[tuple[int, str, str]]:
    """Every recorded event (seq, kind, body) as a reader beside the writer sees it."""
    with sqlite3.connect(f"file:{station / 'data' / 'journal.db'}?mode=ro", uri=True) as db:
        return [(int(seq), str(kind), str(body))
                for seq, kind, body in db.execute("SELECT seq, kind, body FROM events ORDER BY seq")]


def failed_takes_become(running: RunningStation, count: int) -> list[dict[str, Any]]:
    """The journal's ``device_key_enrollment_failed`` bodies once there are ``count`` (within ``PICKED_UP`` s)."""
    return station_reaches(
        running,
        lambda: [body for kind, body in enrollment_events(running.dir) if kind == "device_key_enrollment_failed"],
        lambda failed: len(failed) >= count, f"{count} failed takes not journaled")


def test_a_take_that_fails_before_reading_any_certificate_is_journaled_each_time_and_nothing_is_lost(
        unit: Unit, tmp_path: Path) -> None:
    kid = unit.request["key_id"]
    assert unit.cec_enroll(TEST_CEC).returncode == 0  # the CEC's certificate is on the stick all along
    unplugged = tmp_path / "not-mounted"
    running = RunningStation(unit.station).start()
    try:
        before = journal_rows(unit.station)
        first = take(unplugged, unit.station)  # the stick's folder is not there: it must not pass as "no certificate"
        assert first.returncode == 1, first.stdout + first.stderr
        assert first.stderr.startswith(f"pollbox enrollment: refused: the USB stick at {unplugged} cannot be read "
                                       "(No such file or directory)"), first.stderr
        key = key_becomes(running, "invalid")
        assert key["id"] == kid and "cannot be read" in key["problem"], key
        [one] = failed_takes_become(running, 1)
        a_file = tmp_path / "a-file"
        a_file.write_text("not a stick")
        second = take(a_file, unit.station)  # the same kind of failure again: another attempt, journaled too
        assert second.returncode == 1 and "cannot be read (Not a directory)" in second.stderr, second.stderr
        one_again, two = failed_takes_become(running, 2)
        unmounted = subprocess.run(  # as the image's pollbox-enrollment runs it when mount fails
            [sys.executable, "-m", "device.firstboot_key", "not-mounted", "--stick", "/dev/disk/by-label/POLLBOXUSB",
             "--error=mount: /run/pollbox-enrollment: wrong fs type, bad option, bad superblock on /dev/sda.",
             "--config", str(unit.station / "station.toml")],
            capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)
        assert unmounted.returncode == 1 and unmounted.stdout == "", unmounted.stdout
        assert unmounted.stderr.startswith("pollbox enrollment: refused: the USB stick /dev/disk/by-label/POLLBOXUSB "
                                           "could not be mounted (mount: /run/pollbox-enrollment: wrong fs type"), \
            unmounted.stderr
        *_, three = failed_takes_become(running, 3)
    finally:
        running.stop()
    assert "could not be mounted" in three["reason"] and three["attempt"] not in (one["attempt"], two["attempt"])
    assert one_again == one and (one["key_id"], two["key_id"]) == (kid, kid) and one["attempt"] != two["attempt"]
    assert one["reason"] == first.stderr.removeprefix("pollbox enrollment: refused: ").strip()
    assert "Not a directory" in two["reason"] and two["failed_at"]
    assert not unit.certificate.exists()
    # the station config loses its CEC key (hand-edited on a unit with a shell): the take fails before it reads
    # the certificate on the stick; the appliance does not start on such a config, and journals the failure at
    # its first start once the config is put right
    config = unit.station / "station.toml"
    good = config.read_text()
    config.write_text(good.replace(f'cec_public_key = "{public_b64(TEST_CEC.public_key())}"',
                                   'cec_public_key = "not-a-key"'))
    assert config.read_text() != good
    third = take(unit.stick, unit.station)
    assert third.returncode == 1, third.stdout + third.stderr
    assert "refused: the station config has no usable CEC key" in third.stderr, third.stderr
    assert not unit.certificate.exists() and json.loads((unit.station / "data" / REFUSAL).read_text())["attempt"]
    config.write_text(good)
    running = RunningStation(unit.station).start()
    try:
        assert running.ok({"cmd": "status"})["key"]["enrollment"] == "invalid"
        assert len(failed_takes_become(running, 4)) == 4
    finally:
        running.stop()
    running = RunningStation(unit.station).start()  # a restart journals no attempt twice
    running.stop()
    failed = [body for kind, body in enrollment_events(unit.station) if kind == "device_key_enrollment_failed"]
    assert len(failed) == 4 and "no usable CEC key" in failed[3]["reason"], failed
    taken = unit.take()  # then the stick, read with the right config: the certificate is taken
    assert taken.returncode == 0 and unit.certificate.is_file(), taken.stdout + taken.stderr
    assert not (unit.station / "data" / REFUSAL).exists()
    running = RunningStation(unit.station).start()
    try:
        assert key_becomes(running, "enrolled")["id"] == kid
    finally:
        running.stop()
    after = journal_rows(unit.station)
    assert after[: len(before)] == before, "nothing already recorded is lost"
    assert [k for k, _ in enrollment_events(unit.station)] == ["device_key_enrollment_failed"] * 4 + [
        "device_key_enrolled"]
    verified = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(config), "verify"],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_key_file_unit_whose_stick_cannot_be_mounted_leaves_no_note(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=5)
    said = subprocess.run([sys.executable, "-m", "device.firstboot_key", "not-mounted", "--stick", "/dev/sdz",
                           "--error=mount: no medium", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)
    assert (said.returncode, said.stdout, said.stderr) == (1, "", "")
    assert not (config.parent / "data" / REFUSAL).exists()


def test_a_take_whose_station_config_cannot_be_read_says_why_without_a_traceback(tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    said = take(stick, tmp_path / "no-station")
    assert said.returncode == 1 and said.stdout == "", said.stdout
    assert said.stderr.startswith("pollbox enrollment: refused: ") and "Traceback" not in said.stderr, said.stderr
    assert str(tmp_path / "no-station" / "station.toml") in said.stderr
