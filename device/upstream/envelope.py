"""The signed-record envelope shared by stations and the CEC receiver.

A **record** is the canonical JSON object (sorted keys, no insignificant
whitespace, UTF-8)::

    {"at": "2026-11-27T08:00:00.123456Z", "body": {...}, "key": "<key id>",
     "prev": "<64 hex>", "seq": 17, "station": "KG-0001", "type": "polls_opened", "v": 1}

``seq`` is gapless from 1 per station; ``prev`` is the SHA-256 (hex) of the
previous record's exact bytes (64 zeros for seq 1); ``key`` is the key id of
the signing device key (first 16 hex digits of SHA-256 of the 32 raw public
key bytes). The **signed form** of a record is one line::

    base64url(Ed25519 signature over the record bytes, 86 characters) " " record bytes

(base64url without padding, then one space, then the record's exact bytes,
which never contain a newline). A **batch** is signed forms joined by ``\\n``,
UTF-8; over HTTP it may be gzip-compressed (records compress well). A **receipt** is
the same signed form of ``{"highest_seq", "key", "station", "type": "receipt",
"v": 1, "at"}`` under the receiver's key. ``docs/protocol.md`` specifies all of
this for outside verifiers; this module is the one implementation both ends use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.core.events import canonical

VERSION = 1
ZERO_HASH = "0" * 64
MAX_LINE = 16_384
SIG_CHARS = 86


class EnvelopeError(Exception):
    """A signed form that cannot be decoded or does not verify; ``code`` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("malformed", f"not base64url: {exc}") from None


def key_id(public: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def iso_utc(at: float) -> str:
    """Wall seconds as an ISO-8601 UTC string with microseconds and a Z."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(record_bytes: bytes) -> str:
    return hashlib.sha256(record_bytes).hexdigest()


@dataclass(frozen=True)
class SignedRecord:
    """A record's exact bytes, its signature, and its parsed fields."""

    data: bytes
    signature: bytes
    fields: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])

    @property
    def station(self) -> str:
        return str(self.fields["station"])

    @property
    def key(self) -> str:
        return str(self.fields["key"])

    @property
    def hash(self) -> str:
        return record_hash(self.data)

    def line(self) -> str:
        return f"{b64u(self.signature)} {self.data.decode('utf-8')}"

    def verify(self, public: Ed25519PublicKey) -> None:
        try:
            public.verify(self.signature, self.data)
        except InvalidSignature:
            raise EnvelopeError("bad_signature", f"record {self.seq}: signature does not verify") from None


def make_record(
    *, key: Ed25519PrivateKey, station: str, seq: int, prev: str, at: float, type_: str, body: dict[str, Any]
) -> SignedRecord:
    """Build and sign one record."""
    fields = {"v": VERSION, "station": station, "key": key_id(key.public_key()), "seq": seq,
              "prev": prev, "at": iso_utc(at), "type": type_, "body": body}
    data = canonical(fields)
    return SignedRecord(data, key.sign(data), fields)


def parse_line(line: str) -> SignedRecord:
    """Decode one signed form (no signature check yet); raises EnvelopeError."""
    if len(line) > MAX_LINE:
        raise EnvelopeError("oversized", f"record line of {len(line)} characters exceeds {MAX_LINE}")
    sig, data = _split(line)
    try:
        fields = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("malformed", f"record is not JSON: {exc}") from None
    _check_fields(fields, data)
    return SignedRecord(data, sig, fields)


def _split(line: str) -> tuple[bytes, bytes]:
    """(signature, record bytes) of a signed form."""
    head, sep, rest = line.rstrip("\r\n").partition(" ")
    if not sep or len(head) != SIG_CHARS:
        raise EnvelopeError("malformed", f"a signed form is {SIG_CHARS} base64url characters, a space, then the record")
    sig = unb64u(head)
    if len(sig) != 64:
        raise EnvelopeError("malformed", "an Ed25519 signature is 64 bytes")
    return sig, rest.encode("utf-8")


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "v": int, "station": str, "key": str, "seq": int, "prev": str, "at": str, "type": str, "body": dict}


def _check_fields(fields: Any, data: bytes) -> None:
    if not isinstance(fields, dict):
        raise EnvelopeError("malformed", "record is not a JSON object")
    for name, kind in _REQUIRED.items():
        if not isinstance(fields.get(name), kind) or isinstance(fields.get(name), bool):
            raise EnvelopeError("malformed", f"record field {name!r} is missing or of the wrong type")
    if fields["v"] != VERSION:
        raise EnvelopeError("malformed", f"record version {fields['v']} is not {VERSION}")
    if canonical(fields) != data:
        raise EnvelopeError("malformed", "record bytes are not in canonical form")
    if fields["seq"] < 1 and fields["type"] != "receipt":
        raise EnvelopeError("malformed", "record seq must be 1 or more")


def encode_batch(records: list[SignedRecord]) -> bytes:
    return "\n".join(r.line() for r in records).encode("utf-8")


def decode_batch(data: bytes) -> list[SignedRecord]:
    """All records of a batch, in order; raises EnvelopeError at the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("malformed", "a batch is UTF-8 text") from None
    return [parse_line(line) for line in text.split("\n") if line.strip()]


def make_receipt(*, key: Ed25519PrivateKey, station: str, highest_seq: int, at: float) -> str:
    """The receiver's signed receipt line: all records up to ``highest_seq`` are stored."""
    fields = {"v": VERSION, "type": "receipt", "station": station, "highest_seq": highest_seq,
              "key": key_id(key.public_key()), "at": iso_utc(at)}
    data = canonical(fields)
    return f"{b64u(key.sign(data))} {data.decode('utf-8')}"


def verify_receipt(line: str, public: Ed25519PublicKey, station: str) -> int:
    """The highest sequence a receipt acknowledges, after checking signature and station."""
    sig, data = _split(line)
    try:
        public.verify(sig, data)
    except InvalidSignature:
        raise EnvelopeError("bad_signature", "receipt signature does not verify") from None
    fields = json.loads(data)
    if fields.get("type") != "receipt" or fields.get("station") != station:
        raise EnvelopeError("wrong_station", f"receipt is not for station {station}")
    highest = fields.get("highest_seq")
    if not isinstance(highest, int) or highest < 0:
        raise EnvelopeError("malformed", "receipt has no valid highest_seq")
    return highest
