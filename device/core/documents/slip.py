"""The CEC voter slip: a QR code on the invitation, signed by the CEC with Ed25519.

Payload (ASCII, one line)::

    PBS1.<body>.<signature>

``body`` is base64url without padding of the canonical JSON (sorted keys, no
spaces, UTF-8) of ``{"serial": int, "station": str, "voter": str}``, where
``voter`` is the voter's keyed hash (64 lowercase hex digits, the same
HMAC-SHA256 under the station's list key as the voter list holds).
``signature`` is base64url without padding of the 64-byte Ed25519 signature
over the ASCII bytes ``PBS1.<body>``. The station verifies offline with the
CEC slip key from its station package. A correctly signed slip for another
station is refused as ``WRONG_STATION``; anything not signed by that key is
``BAD_SIGNATURE``. The CEC prints slips with ``issue_slip``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .result import Identified, RefusalCode, Unreadable
from .rules import DocumentRules

SCHEME = "slip"
PREFIX = "PBS1."
_HEX = frozenset("0123456789abcdef")


def claims(text: str) -> bool:
    return text.strip().startswith(PREFIX)


def issue_slip(key: Ed25519PrivateKey, station: str, voter_hash: str, serial: int) -> str:
    """The QR payload of a slip for ``voter_hash`` at ``station`` (CEC side)."""
    if len(voter_hash) != 64 or set(voter_hash) - _HEX:
        raise ValueError("a slip carries the voter's keyed hash: 64 lowercase hex digits")
    if not station or serial < 1:
        raise ValueError("a slip needs a station id and a positive serial")
    body = _b64(_canonical({"serial": serial, "station": station, "voter": voter_hash}))
    signed = PREFIX + body
    return f"{signed}.{_b64(key.sign(signed.encode('ascii')))}"


def parse(text: str, rules: DocumentRules) -> Identified | Unreadable:
    parts = text.strip().split(".")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return Unreadable(RefusalCode.MALFORMED, "the voter slip code does not have its three parts")
    if rules.slip_key is None:
        return Unreadable(RefusalCode.NO_SLIP_KEY, "this station has no CEC slip key; use the voter's ID document")
    signed = f"{parts[0]}.{parts[1]}"
    signature = _unb64(parts[2])
    if signature is None or not signed.isascii() or not _verifies(rules.slip_key, signature, signed.encode("ascii")):
        return Unreadable(RefusalCode.BAD_SIGNATURE, "the voter slip is not signed by the CEC (forged or damaged)")
    content = _content(parts[1])
    if content is None:
        return Unreadable(RefusalCode.MALFORMED, "the signed voter slip has an unexpected content")
    station, voter, serial = content
    if station != rules.station_id:
        return Unreadable(RefusalCode.WRONG_STATION, "the voter slip is for another polling station")
    return Identified(SCHEME, None, voter, f"CEC voter slip no. {serial}")


def _verifies(key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _content(body: str) -> tuple[str, str, int] | None:
    raw = _unb64(body)
    try:
        doc: Any = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or set(doc) != {"serial", "station", "voter"}:
        return None
    station, voter, serial = doc["station"], doc["voter"], doc["serial"]
    if not (isinstance(station, str) and isinstance(voter, str) and type(serial) is int):
        return None
    if len(voter) != 64 or set(voter) - _HEX or not _is_canonical(doc, raw):
        return None
    return station, voter, serial


def _is_canonical(doc: dict[str, Any], raw: bytes | None) -> bool:
    try:
        return _canonical(doc) == raw
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON (only a signed slip gets here)
        return False


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text.isascii() or set(text) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
