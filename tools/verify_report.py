"""``pollbox verify-report``: check a close-report QR code offline against the station's key.

An observer photographs the QR code on the close report (or copies its text)
and runs::

    pollbox verify-report --key STATION_PUBLIC_KEY --text 'SIGNED LINE'
    pollbox verify-report --key device.pub --image photo.jpg

``--key`` is the station's Ed25519 public key as base64 of its 32 raw bytes,
or a file holding it (the CEC publishes every station's key). The command
prints VALID with the station, the time and the counts, or INVALID with the
reason, and exits 0 or 1 (2 for unusable input). A training station's report
(``"training": true`` in its signed bytes, ``protocol/training.py``) is
printed under a TRAINING line. It needs no network.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.envelope import EnvelopeError, parse_line
from protocol.errors import UserError
from protocol.keys import ED25519, P256, RAW_LENGTH, KeyFormatError, PublicKey, decode_any_public_key, key_id
from protocol.training import is_training

COUNT_FIELDS = ("identified", "ballots", "difference", "alarms_total", "alarms_open")


class InputProblem(UserError):
    """The key, text or image given cannot be used; the message says why."""


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str
    fields: dict[str, Any]

    def lines(self) -> list[str]:
        if not self.valid:
            return [f"INVALID: {self.reason}"]
        f, body = self.fields, self.fields["body"]
        out = [f"VALID: close report of station {f['station']}, signed by key {f['key']}",
               f"  closed at {f['at']} (record {f['seq']})"]
        if is_training(f):
            out.insert(0, "TRAINING: a practice station's report (signed training flag); it counts for nothing")
        out += [f"  {name.replace('_', ' ')}: {body.get(name)}" for name in COUNT_FIELDS]
        return out


def load_key(text: str) -> PublicKey:
    """A public key from base64 text or from a file holding it: 32 Ed25519 bytes, or a 65-byte P-256 point."""
    path = Path(text)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return decode_any_public_key(text.strip(), P256 if len(raw) == RAW_LENGTH[P256] else ED25519)
    except (ValueError, binascii.Error, KeyFormatError):
        raise InputProblem("the key must be base64 of 32 raw Ed25519 bytes or of a 65-byte P-256 point "
                           "(the station's device.pub)") from None


def verify_line(line: str, public: PublicKey) -> Verdict:
    """Check one signed ``polls_closed`` record line against ``public``."""
    try:
        record = parse_line(line.strip())
    except EnvelopeError as exc:
        return Verdict(False, f"not a signed record ({exc})", {})
    if record.fields["type"] != "polls_closed":
        return Verdict(False, f"this is a {record.fields['type']!r} record, not a close report", record.fields)
    if record.key != key_id(public):
        return Verdict(False, f"signed by key {record.key}, not by the given key {key_id(public)}", record.fields)
    try:
        record.verify(public)
    except EnvelopeError:
        return Verdict(False, "the signature does not match: the report was altered or forged", record.fields)
    missing = [name for name in COUNT_FIELDS if not isinstance(record.fields["body"].get(name), int)]
    if missing:
        return Verdict(False, f"the signed record lacks the counts {', '.join(missing)}", record.fields)
    return Verdict(True, "", record.fields)


def text_from_image(path: Path) -> str:
    """The text of the QR code in a photo (zxing-cpp)."""
    from . import qr_image
    try:
        return qr_image.read_qr_text(path)
    except qr_image.QrUnreadable as exc:
        raise InputProblem(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pollbox verify-report", description=__doc__.split("\n\n")[0])
    p.add_argument("--key", required=True, help="station public key: base64, or a file such as device.pub")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the QR code's text (the signed record line)")
    source.add_argument("--image", type=Path, help="a photo or screenshot of the QR code")
    source.add_argument("--file", type=Path, help="a text file holding the signed record line")
    return p


def _line(args: argparse.Namespace) -> str:
    if args.text is not None:
        return str(args.text)
    path = args.image or args.file
    if not path.is_file():
        raise InputProblem(f"{path}: no such file")
    return text_from_image(path) if args.image else path.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        public = load_key(args.key)
        verdict = verify_line(_line(args), public)
    except InputProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(verdict.lines()))
    return 0 if verdict.valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
