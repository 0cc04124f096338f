"""``[key]`` in the station config: the record key's backend, chosen by name only."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import ConfigError, load_config
from device.signing import DEFAULT_TCTI, load_signer
from device.signing.filekey import FileSigner

BASE = """
mode = "simulation"
election_id = "e1"
cec_public_key = "AAAA"
station_package = "p.json"
data_dir = "data"
[hardware]
scanner = "sim"
ballot_box = "sim"
"""


def config_of(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "station.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def test_the_key_file_is_the_default_and_a_tpm_is_named(tmp_path: Path) -> None:
    default = load_config(config_of(tmp_path, ""))
    assert (default.key.store, default.key.tcti) == ("file", DEFAULT_TCTI)
    tpm = load_config(config_of(tmp_path, '[key]\nstore = "tpm"\ntcti = "swtpm:host=127.0.0.1,port=2321"\n'))
    assert (tpm.key.store, tpm.key.tcti) == ("tpm", "swtpm:host=127.0.0.1,port=2321")


def test_an_unknown_store_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(config_of(tmp_path, '[key]\nstore = "hsm"\n'))
    assert "key.store: must be one of file, tpm, got 'hsm'" in str(refused.value)


def test_a_file_unit_never_falls_back_to_anything_else(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no device key at .*provision the unit first"):
        load_signer(tmp_path, "file")
    with pytest.raises(ValueError, match="unknown key store 'sim'"):
        load_signer(tmp_path, "sim")
    made = FileSigner.create(tmp_path)
    assert load_signer(tmp_path, "file").public_key() == made.public_key()


def test_a_tpm_unit_without_the_tss_library_is_refused_saying_so(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An image without tpm2-pytss (built for another architecture than its build machine) stops with the
    reason, not a traceback, and never falls back to a key file."""
    import sys

    from device.keys import KeyError_
    from device.signing import create_signer

    monkeypatch.setitem(sys.modules, "tpm2_pytss", None)  # import tpm2_pytss raises ImportError
    monkeypatch.delitem(sys.modules, "device.hardware.tpm", raising=False)
    for make in (load_signer, create_signer):
        with pytest.raises(KeyError_, match=r"cannot drive a TPM .*tpm2-pytss module .*docs/keys.md"):
            make(tmp_path, "tpm")
    assert not list(tmp_path.iterdir())
