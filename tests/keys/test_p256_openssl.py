"""Independent check of a P-256 record: the openssl command line following only docs/protocol.md, section 8.

The shell steps are taken verbatim from the document (the key id recipe from
section 1); the test substitutes only the export file's name and the public
key. Records are signed by a P-256 key in memory and, when swtpm is here, by
the key inside a software TPM; OpenSSL's command line verifies them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from keys_kit import AnyUnit, P256Key

from protocol.export import render_export
from protocol.keys import key_id, public_b64
from tests.keys.swtpm import SoftTpm, needs_swtpm
from tests.protocol_doc import section, shell_blocks

EXAMPLE_FILE = "pollbox-export-KG-0001-1-14.txt"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("xxd") is None,
                                reason="the openssl or xxd command is not installed")


def recipe(export_name: str, public: str) -> str:
    steps = shell_blocks(section("8."))
    assert len(steps) == 4, "section 8 lost its shell steps"
    script = "set -e\n" + "".join(steps[:3]) + "set +e\n" + steps[3]
    return script.replace(EXAMPLE_FILE, export_name).replace("PUBLIC_KEY_BASE64", public)


def run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)


def export(unit: AnyUnit, directory: Path, count: int = 12) -> Path:
    records = unit.records(count)
    path = directory / "pollbox-export-KG-0001-1-12.txt"
    path.write_bytes(render_export(records, station=unit.station, key=unit.key_id, created_at=1_800_000_000.0))
    return path


def test_openssl_verifies_p256_records_by_the_documented_recipe(tmp_path: Path) -> None:
    unit = AnyUnit("KG-0001", key=P256Key())
    path = export(unit, tmp_path)
    public = public_b64(unit.key.public_key())  # type: ignore[attr-defined]
    lines = path.read_text().splitlines()
    for number in range(1, len(lines)):  # every record: r or s with a leading zero byte included, now and then
        single = tmp_path / f"one-{number}.txt"
        single.write_text(lines[0] + "\n" + lines[number] + "\n")
        result = run(recipe(single.name, public), tmp_path)
        assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr


def test_openssl_rejects_an_altered_p256_record_and_another_key(tmp_path: Path) -> None:
    unit = AnyUnit("KG-0001", key=P256Key())
    path = export(unit, tmp_path, 2)
    public = public_b64(unit.key.public_key())  # type: ignore[attr-defined]
    assert run(recipe(path.name, public_b64(P256Key().public_key())), tmp_path).returncode != 0
    path.write_text(path.read_text().replace('"seq":1', '"seq":1 ', 1))
    result = run(recipe(path.name, public), tmp_path)
    assert result.returncode != 0 and "Signature Verified Successfully" not in result.stdout


def test_the_key_id_recipe_covers_p256_keys(tmp_path: Path) -> None:
    public = P256Key().public_key()
    key_step = shell_blocks(section("1."))[0].replace("PUBLIC_KEY_BASE64", public_b64(public))
    assert run(key_step, tmp_path).stdout.strip() == key_id(public)


@needs_swtpm
def test_openssl_verifies_records_signed_inside_a_tpm(soft_tpm: SoftTpm, tmp_path: Path) -> None:
    from device.signing import create_signer
    (tmp_path / "data").mkdir()
    signer = create_signer(tmp_path / "data", "tpm", soft_tpm.tcti)
    try:
        unit = AnyUnit("KG-0001", key=signer)
        path = export(unit, tmp_path, 3)
    finally:
        signer.close()
    result = run(recipe(path.name, public_b64(signer.public_key())), tmp_path)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr
