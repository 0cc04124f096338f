"""The signed record: its canonical bytes, its signature (Ed25519 or P-256) and its fields (docs/protocol.md, 2).

A **record** is the canonical JSON object (``canonical.py``)::

    {"at": "2026-11-27T08:00:00.123456Z", "body": {...}, "key": "<key id>",
     "prev": "<64 hex>", "seq": 17, "station": "KG-0001", "type": "polls_opened", "v": 1}

with exactly these fields, and on a training station's records one more,
``"training": true`` (``training.py``); a record signed with a P-256 key (held in a
TPM) carries ``"alg": "p256"``, an Ed25519 record no ``alg`` (``keys.py``). A station of
several units (docs/units.md) has one chain per unit: the main desk's records carry no
``unit`` and form the station's chain, as a one-unit station's do; every other unit's
records carry ``"unit": "<unit id>"`` (``UNIT_RE``) and form that unit's own chain. ``seq`` is
gapless from 1 per chain (station and unit); ``prev`` is the SHA-256 (hex) of the previous
record's exact bytes in the same chain (64 zeros for seq 1,
``chain.py``); ``key`` is the key id of the signing device key
(``keys.py``). The **signed form** of a record is one line::

    base64url(64-byte signature over the record bytes, 86 characters) " " record bytes

(the Ed25519 signature, or for ``"alg": "p256"`` ECDSA P-256/SHA-256 as ``r || s``)

(base64url without padding, then one space, then the record's exact bytes,
which never contain a newline). Receipts (``receipts.py``) and tree heads
(``treehead.py``) use the same signed form. What a body holds is checked
separately, by type (``schema.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeGuard, TypeVar, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.canonical import canonical
from protocol.chain import record_hash
from protocol.errors import UserError
from protocol.keys import ED25519, P256, PublicKey, alg_of, key_id, signature_holds
from protocol.training import TRAINING_FIELD

VERSION = 1
MAX_LINE = 16_384
SIG_CHARS = 86
MAX_INT = 2**53 - 1  # the largest integer every JSON reader keeps exactly (RFC 7493, I-JSON)
MAX_STATION = 64
MAX_TYPE = 64
ALG_FIELD = "alg"
UNIT_FIELD = "unit"
MAIN_UNIT = ""
"""The unit of a record without a ``unit`` field: the station's main chain (a one-unit station's only unit)."""

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HEX16_RE = re.compile(r"^[0-9a-f]{16}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
UNIT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class RecordSigner(Protocol):
    """What signs records: an Ed25519 private key, or a device signer (``device/signing``) such as a TPM key.

    ``sign`` returns the 64-byte signature of section 2 for the algorithm of ``public_key()``.
    """

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


class EnvelopeError(UserError):
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


def iso_utc(at: float) -> str:
    """Wall seconds as an ISO-8601 UTC string with microseconds and a Z."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_utc_time(value: object) -> bool:
    """Whether ``value`` is a time as records write it (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) and a real date."""
    if not isinstance(value, str) or not TIME_RE.match(value):
        return False
    try:
        datetime(int(value[:4]), int(value[5:7]), int(value[8:10]), int(value[11:13]), int(value[14:16]),
                 int(value[17:19]))
    except ValueError:
        return False
    return True


def is_int(value: object, low: int = 0, high: int = MAX_INT) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer (not a boolean) within [low, high]."""
    return type(value) is int and low <= value <= high


T = TypeVar("T")


class computed_once(Generic[T]):  # noqa: N801 (used as a decorator, like functools.cached_property)
    """A field computed on first read and kept on the instance, like ``functools.cached_property`` without the
    lock Python 3.11 takes on every first read (1.6 µs against 0.5 µs here; ingest reads five of a record's)."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute, self.name = compute, compute.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> computed_once[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | computed_once[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.compute(obj)  # later reads find it there, not here
        return value


@dataclass(frozen=True)
class SignedRecord:
    """A record's exact bytes, its signature, and its parsed fields (read once, on first use)."""

    data: bytes
    signature: bytes
    fields: dict[str, Any]

    @computed_once
    def seq(self) -> int:
        return int(self.fields["seq"])

    @computed_once
    def station(self) -> str:
        return str(self.fields["station"])

    @computed_once
    def key(self) -> str:
        return str(self.fields["key"])

    @property
    def prev(self) -> str:
        return str(self.fields["prev"])

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def training(self) -> bool:
        """Whether this is a training station's record: ``"training": true`` in the signed bytes."""
        return self.fields.get(TRAINING_FIELD) is True

    @property
    def alg(self) -> str:
        """The signature algorithm named in the signed bytes: ``p256``, or ``ed25519`` when absent."""
        return str(self.fields.get(ALG_FIELD, ED25519))

    @computed_once
    def unit(self) -> str:
        """The unit whose chain this record is in: its ``unit`` field, or ``MAIN_UNIT`` ("") when absent."""
        return str(self.fields.get(UNIT_FIELD, MAIN_UNIT))

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.fields["body"]
        return body

    @computed_once
    def hash(self) -> str:
        return record_hash(self.data)

    def line(self) -> str:
        return f"{b64u(self.signature)} {self.data.decode('utf-8')}"

    def verify(self, public: PublicKey) -> None:
        if alg_of(public) != self.alg:
            raise EnvelopeError("bad_signature", f"record {self.seq}: signed with {self.alg}, "
                                                 f"but the key is {alg_of(public)}")
        if not signature_holds(public, self.signature, self.data):
            raise EnvelopeError("bad_signature", f"record {self.seq}: signature does not verify")


def make_record(
    *, key: RecordSigner, station: str, seq: int, prev: str, at: float, type_: str, body: dict[str, Any],
    training: bool = False, unit: str = MAIN_UNIT,
) -> SignedRecord:
    """Build and sign one record; a training station's records carry ``"training": true`` (``training.py``).

    A P-256 signer's records carry ``"alg": "p256"``; an Ed25519 key's records no ``alg``. A unit other
    than the station's main one names itself in ``unit``; the main unit's records carry none.
    """
    public = key.public_key()
    fields = {"v": VERSION, "station": station, "key": key_id(public), "seq": seq,
              "prev": prev, "at": iso_utc(at), "type": type_, "body": body}
    if alg_of(public) == P256:
        fields[ALG_FIELD] = P256
    if training:
        fields[TRAINING_FIELD] = True
    if unit != MAIN_UNIT:
        fields[UNIT_FIELD] = unit
    data = canonical(fields)
    return SignedRecord(data, key.sign(data), fields)


def sign_fields(key: Ed25519PrivateKey, fields: dict[str, Any]) -> str:
    """The signed form of any object (a receipt, a tree head): signature, space, canonical JSON."""
    data = canonical(fields)
    return f"{b64u(key.sign(data))} {data.decode('utf-8')}"


def parse_line(line: str) -> SignedRecord:
    """Decode one signed form (no signature check yet); raises EnvelopeError."""
    if len(line) > MAX_LINE:
        raise EnvelopeError("oversized", f"record line of {len(line)} characters exceeds {MAX_LINE}")
    sig, data = split_signed(line)
    fields = load_json(data, "record")
    _check_fields(fields, data)
    return SignedRecord(data, sig, fields)


def split_signed(line: str) -> tuple[bytes, bytes]:
    """(signature, signed bytes) of a signed form."""
    head, sep, rest = line.rstrip("\r\n").partition(" ")
    if not sep or len(head) != SIG_CHARS:
        raise EnvelopeError("malformed", f"a signed form is {SIG_CHARS} base64url characters, a space, then the record")
    sig = unb64u(head)
    if len(sig) != 64:
        raise EnvelopeError("malformed", "a signature is 64 bytes (Ed25519, or P-256 r || s)")
    return sig, rest.encode("utf-8")


def _no_float(text: str) -> Any:
    raise EnvelopeError("malformed", f"{text} is not allowed: records hold integers only, never a fraction, "
                                     "an exponent, NaN or Infinity")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """The JSON object in ``data``; integers only (no fraction, exponent, NaN or Infinity). Raises EnvelopeError."""
    try:
        fields = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise EnvelopeError("malformed", f"{what} is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise EnvelopeError("malformed", f"{what} is not a JSON object")
    return fields


_FIELDS = ("at", "body", "key", "prev", "seq", "station", "type", "v")
_FIELD_SET = frozenset(_FIELDS)
_ALLOWED = _FIELD_SET | {TRAINING_FIELD, ALG_FIELD, UNIT_FIELD}
_CHECKS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("v", lambda v: v == VERSION and is_int(v), f"record version must be {VERSION}"),
    ("station", lambda v: _is_station(v), f"station must be 1 to {MAX_STATION} printable characters"),
    ("key", lambda v: isinstance(v, str) and HEX16_RE.match(v) is not None, "key must be 16 lowercase hex digits"),
    ("seq", lambda v: is_int(v, 1), f"seq must be an integer from 1 to {MAX_INT}"),
    ("prev", lambda v: isinstance(v, str) and HEX64_RE.match(v) is not None, "prev must be 64 lowercase hex digits"),
    ("at", is_utc_time, "at must be a UTC time written YYYY-MM-DDTHH:MM:SS.ffffffZ"),
    ("type", lambda v: isinstance(v, str) and len(v) <= MAX_TYPE and TYPE_RE.match(v) is not None,
     f"type must be lowercase letters, digits and _ (at most {MAX_TYPE})"),
    ("body", lambda v: isinstance(v, dict), "body must be a JSON object"),
)


def envelope_problem(fields: dict[str, Any]) -> str | None:
    """What is wrong with a record's own fields (not its body), in one phrase; None if nothing."""
    if fields.keys() != _FIELD_SET:
        missing = [name for name in _FIELDS if name not in fields]
        if missing:
            return f"record field(s) {', '.join(missing)} missing"
        if not fields.keys() <= _ALLOWED:
            return f"unknown record field(s) {', '.join(sorted(set(fields) - _ALLOWED))[:100]}"
    for name, check, message in _CHECKS:
        if not check(fields[name]):
            return message
    if not isinstance(fields.get(TRAINING_FIELD, False), bool):
        return "training must be true or false (a unit writes it only as true, on a training station's records)"
    if ALG_FIELD in fields and fields[ALG_FIELD] != P256:
        return f'alg must be "{P256}" (ECDSA P-256 with SHA-256) or absent (Ed25519)'
    if UNIT_FIELD in fields and not (isinstance(fields[UNIT_FIELD], str) and UNIT_RE.match(fields[UNIT_FIELD])):
        return ("unit must be a unit id: 1 to 32 lowercase letters, digits and -, starting with a letter or digit "
                "(absent on the station's main unit)")
    return None


def _is_station(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_STATION and value.isprintable()


def _check_fields(fields: dict[str, Any], data: bytes) -> None:
    problem = envelope_problem(fields)
    if problem is not None:
        raise EnvelopeError("malformed", problem)
    if canonical(fields) != data:
        raise EnvelopeError("malformed", "record bytes are not in canonical form")
