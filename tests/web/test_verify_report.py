"""``pollbox verify-report``: a signed close record from a QR code is VALID; anything else INVALID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.chain import ZERO_HASH
from protocol.envelope import make_record
from protocol.keys import public_b64
from tools.verify_report import main, verify_line

BODY = {"identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2, "alarms_open": 0}


def signed(key: Ed25519PrivateKey, type_: str = "polls_closed", body: dict[str, Any] | None = None) -> str:
    return make_record(key=key, station="KG-0001", seq=57, prev=ZERO_HASH, at=1_800_000_000.0, type_=type_,
                       body=body or BODY).line()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_valid_report(key: Ed25519PrivateKey, capsys: Any) -> None:
    assert main(["--key", public_b64(key.public_key()), "--text", signed(key)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID") and "ballots: 811" in out and "KG-0001" in out


def test_altered_count_is_invalid(key: Ed25519PrivateKey) -> None:
    line = signed(key)
    sig, record = line.split(" ", 1)
    fields = json.loads(record)
    fields["body"]["ballots"] = 900
    forged = sig + " " + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    verdict = verify_line(forged, key.public_key())
    assert not verdict.valid and "altered or forged" in verdict.reason


def test_other_key_wrong_type_and_garbage_are_invalid(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    assert "not by the given key" in verify_line(signed(other), key.public_key()).reason
    assert "not a close report" in verify_line(signed(key, "polls_opened"), key.public_key()).reason
    assert "not a signed record" in verify_line("hello", key.public_key()).reason
    assert "lacks the counts" in verify_line(signed(key, body={"x": 1}), key.public_key()).reason


def test_key_file_and_image(key: Ed25519PrivateKey, tmp_path: Path, capsys: Any) -> None:
    pub = tmp_path / "device.pub"
    pub.write_text(public_b64(key.public_key()) + "\n")
    photo = tmp_path / "qr.png"
    segno.make(signed(key), error="m").save(str(photo), scale=4, border=4)
    assert main(["--key", str(pub), "--image", str(photo)]) == 0
    assert capsys.readouterr().out.startswith("VALID")


def test_unusable_input_exits_2(key: Ed25519PrivateKey, tmp_path: Path, capsys: Any) -> None:
    assert main(["--key", "not-a-key", "--text", "x"]) == 2
    blank = tmp_path / "blank.png"
    segno.make("x").save(str(tmp_path / "unused.png"))
    from PIL import Image
    Image.new("L", (50, 50), 255).save(blank)
    assert main(["--key", public_b64(key.public_key()), "--image", str(blank)]) == 2
    assert "no QR code found" in capsys.readouterr().err
    assert main(["--key", public_b64(key.public_key()), "--file", str(tmp_path / "missing.txt")]) == 2
