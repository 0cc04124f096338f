"""Independent check: a record verified by the openssl command line, following only docs/protocol.md.

The shell commands are taken verbatim from section 7 of the protocol document
(and the key id recipe from section 1); the test only substitutes the file
name and the public key for the placeholders. The signer is the Python
``cryptography`` package; the verifier is OpenSSL's command line tool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upstream_fakes import STATION, make_upstream, polling_day

from device.core import events as ev
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from protocol.keys import key_id, public_b64
from tests.protocol_doc import section, shell_blocks

EXAMPLE_FILE = "pollbox-export-KG-0001-1-14.txt"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")


def recipe(export_name: str, public: str) -> str:
    steps = shell_blocks(section("7."))
    assert len(steps) >= 4, "section 7 lost its shell steps"
    verify = [s for s in steps if "pkeyutl" in s]
    preparation = [s for s in steps if "pkeyutl" not in s and "sha256sum record.bin" not in s]
    script = "set -e\n" + "".join(preparation) + "set +e\n" + "".join(verify)
    return script.replace(EXAMPLE_FILE, export_name).replace("PUBLIC_KEY_BASE64", public)


def run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def exported(journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
             fake_clock: FakeClock, tmp_path: Path) -> Path:
    from upstream_fakes import MemoryReceiver
    up = make_upstream(journal, device_key, receiver_key, MemoryReceiver(receiver_key, device_key.public_key(),
                                                                          fake_clock), fake_clock)
    polling_day(journal, fake_clock)
    journal.append([ev.Annotation("readiness", "Ошибка: печать — ok ✓")], fake_clock.wall())
    path = up.export(tmp_path)
    up.close()
    return path


def test_openssl_verifies_a_record_by_the_documented_recipe(exported: Path, device_key: Ed25519PrivateKey) -> None:
    result = run(recipe(exported.name, public_b64(device_key.public_key())), exported.parent)
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout
    assert (exported.parent / "sig.bin").stat().st_size == 64


def test_openssl_verifies_a_record_with_non_ascii_text(exported: Path, device_key: Ed25519PrivateKey) -> None:
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert "✓" in lines[-1]
    single = exported.parent / "last.txt"
    single.write_text(lines[0] + "\n" + lines[-1] + "\n", encoding="utf-8")
    result = run(recipe(single.name, public_b64(device_key.public_key())), exported.parent)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr


def test_openssl_rejects_an_altered_record(exported: Path, device_key: Ed25519PrivateKey) -> None:
    text = exported.read_text()
    exported.write_text(text.replace('"type":"polls_opened"', '"type":"polls_opened" ', 1))
    result = run(recipe(exported.name, public_b64(device_key.public_key())), exported.parent)
    assert result.returncode != 0
    assert "Signature Verified Successfully" not in result.stdout


def test_openssl_rejects_another_stations_key(exported: Path) -> None:
    other = public_b64(Ed25519PrivateKey.generate().public_key())
    result = run(recipe(exported.name, other), exported.parent)
    assert result.returncode != 0


def test_key_id_and_chain_recipes_match_the_records(exported: Path, device_key: Ed25519PrivateKey) -> None:
    public = public_b64(device_key.public_key())
    key_step = shell_blocks(section("1."))[0].replace("PUBLIC_KEY_BASE64", public)
    assert run(key_step, exported.parent).stdout.strip() == key_id(device_key.public_key())
    assert run(recipe(exported.name, public), exported.parent).returncode == 0
    chain_step = [s for s in shell_blocks(section("7.")) if "sha256sum record.bin" in s][0]
    digest = run(chain_step, exported.parent).stdout.split()[0]
    second = exported.read_text().splitlines()[2]
    assert f'"prev":"{digest}"' in second
    assert STATION in second
