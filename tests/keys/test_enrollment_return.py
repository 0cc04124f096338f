"""After a TPM first boot: the CEC enrolls the request from the stick and the certificate goes back on it; the
unit takes it at its next boot; the chair's details page says what state the key is in. Through the real
processes: the first-boot import, ``pollbox-provision cec enroll``, ``python -m device.firstboot_key take``
(as the image's ``pollbox-enrollment`` runs it) and ``pollbox run``; and in Chromium in ky, ru and en.

A certificate signed by another CEC key, or only other units' certificates, is refused with the reason and
nothing is stored; a stick without a certificate changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.image.test_firstboot_stick import stick_of
from tests.image.vm import TEST_CEC
from tests.keys.swtpm import SoftTpm, needs_swtpm
from tests.keys.test_firstboot_tpm_key import TPM_STICK_FILES, firstboot_import, tpm_station
from tests.process_station import ROOT, RunningStation, child_env

pytestmark = needs_swtpm

REQUESTED = {"ky": "азырынча каттай элек", "ru": "ещё не зарегистрирован", "en": "not enrolled by the CEC yet"}
ENROLLED = {"ky": "БШК каттаган", "ru": "зарегистрирован ЦИК", "en": "enrolled by the CEC"}


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
        return subprocess.run([sys.executable, "-m", "device.firstboot_key", "take", "--stick", str(self.stick),
                               "--config", str(self.station / "station.toml")],
                              capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=120, check=False)

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
    """The details page of ``unit`` run as ``pollbox run``, in ky, ru and en: its key line in ``state``,
    saying ``said[lang]``, naming the key's id."""
    from tests.browser_kit import playwright_or_skip
    expect = playwright_or_skip().expect
    running = RunningStation(unit.station).start()
    try:
        context = browser.new_context(viewport={"width": 800, "height": 480})
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{running.web_port}/details")
        line = page.locator('[data-field="key"]')
        for lang in ("ky", "ru", "en"):
            page.locator(f'form.langs button[lang="{lang}"]').click()
            expect(line).to_have_attribute("data-key", state)
            expect(line).to_contain_text(said[lang])
            expect(line.locator("code")).to_have_text(unit.request["key_id"])
        context.close()
    finally:
        running.stop()


@pytest.mark.browser
def test_the_key_line_in_chromium_in_every_language(unit: Unit, browser: Any) -> None:
    _key_line_in_every_language(unit, browser, "requested", REQUESTED)
    assert unit.cec_enroll(TEST_CEC).returncode == 0 and unit.take().returncode == 0
    _key_line_in_every_language(unit, browser, "enrolled", ENROLLED)
