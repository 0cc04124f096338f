"""Check-in records and sync messages on the station LAN.

A **record** is one unit's admission, or its undo of one: the body ``{"station", "unit", "seq", "voter",
"line", "at", "hlc", "undoes"}`` (``voter`` is the keyed hash, never a number or a name; ``undoes`` is 0
for an admission, else the seq of the admission undone), ``signature``, base64 of the unit's 64-byte
signature over ``RECORD_LABEL + canonical(body)``, and ``alg``, the record algorithm that made it
(``ed25519`` for a key file, ``p256`` for a key held in the unit's TPM; ``protocol/keys.py``; absent
means ``ed25519``, as units wrote before TPM keys could join). Any unit can pass a record on (it keeps
the signature it arrived with), so a record proves itself whoever serves it: it is checked against the
key the CEC-signed package enrolled for the unit that made it, with that key's algorithm. ``alg`` only
names it: a record whose ``alg`` is unknown or is not the enrolled key's is refused saying so, and the
enrolled key, never the record, decides how a signature is checked.

A **message** answers a pull: ``{"format", "station", "unit", "now", "records": [...]}``: who
answers, its wall clock (for the drift alarm) and the records asked for, at most ``MAX_RECORDS``
of them and ``MAX_MESSAGE`` bytes.

``check_record`` returns a ``PeerCheckin`` for the core or says why the record is refused; nothing
of a refused record is applied.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from device.core.units import PeerCheckin, PeerClose
from protocol.canonical import canonical
from protocol.errors import UserError
from protocol.keys import ALGS, ED25519, PublicKey, alg_of, signature_holds

FORMAT = "pollbox-unit-sync/1"
RECORD_LABEL = b"pollbox unit check-in record v1\0"
CLOSE_LABEL = b"pollbox unit close record v1\0"
_CLOSE_FIELDS = {"station": str, "unit": str, "admissions": int, "identified": int, "ballots": int, "at": float}
MAX_RECORDS = 500
MAX_MESSAGE = 1 << 20
"""The largest sync message a unit reads (1 MiB: 500 records take about 130 kB)."""
_FIELDS = {"station": str, "unit": str, "seq": int, "voter": str, "line": int, "at": float, "hlc": int, "undoes": int}


class MessageRefused(UserError):
    """A sync message as a whole cannot be used (too large, not JSON, another format or station)."""


@dataclass(frozen=True)
class Refusal:
    """A record not applied: its unit and seq where they could be read, and why."""

    unit: str | None
    seq: int | None
    reason: str


def body_of(record: PeerCheckin) -> dict[str, Any]:
    return {"station": record.station, "unit": record.unit, "seq": record.seq, "voter": record.voter,
            "line": record.line, "at": record.at, "hlc": record.hlc, "undoes": record.undoes}


class RecordKey(Protocol):
    """What signs this unit's records: an Ed25519 private key or a ``device.signing.Signer`` (file or TPM)."""

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


def sign(record: PeerCheckin, key: RecordKey) -> dict[str, Any]:
    """The record on the wire, signed by this unit's device key, naming the key's algorithm."""
    signature = base64.b64encode(key.sign(RECORD_LABEL + canonical(body_of(record)))).decode()
    return {"body": body_of(record), "signature": signature, "alg": alg_of(key.public_key())}


def relayed(record: PeerCheckin, alg: str = ED25519) -> dict[str, Any]:
    """Another unit's record passed on as it arrived (its own signature; ``alg``: its enrolled key's)."""
    return {"body": body_of(record), "signature": record.signature, "alg": alg}


def check_record(item: Any, keys: Mapping[str, PublicKey], station: str) -> PeerCheckin | Refusal:
    """A record from a message: well formed, from a unit of this station, signed by that unit's enrolled key."""
    body = item.get("body") if isinstance(item, dict) else None
    if not isinstance(body, dict):
        return Refusal(None, None, "a record without a body")
    unit = body.get("unit") if isinstance(body.get("unit"), str) else None
    seq = body.get("seq") if isinstance(body.get("seq"), int) else None
    if set(body) != set(_FIELDS) or not all(_typed(body[k], t) for k, t in _FIELDS.items()):
        return Refusal(unit, seq, f"a malformed record: fields {sorted(body)}")
    refused = _unit_signed(item, body, RECORD_LABEL, keys, station, seq,
                           ("a record", f"record {seq} of unit {unit}"))
    if refused is not None:
        return refused
    return PeerCheckin(station, body["unit"], body["seq"], body["voter"], body["line"], float(body["at"]),
                       body["hlc"], str(item["signature"]), body["undoes"])


def _unit_signed(item: dict[str, Any], body: dict[str, Any], label: bytes, keys: Mapping[str, PublicKey],
                 station: str, seq: int | None, names: tuple[str, str]) -> Refusal | None:
    """Why a well-formed record is refused: another station, a unit with no enrolled key, an ``alg`` that is
    unknown or not the enrolled key's, or a signature that does not verify over ``label`` and the canonical
    body under the enrolled key; None when it is this station's and truly signed.
    ``names``: how the refusals call the record (its kind, and this one)."""
    kind, this = names
    unit = body["unit"]
    if body["station"] != station:
        return Refusal(unit, seq, f"{kind} of another station ({body['station']!r}), not {station!r}")
    key = keys.get(unit)
    if key is None:
        return Refusal(unit, seq, f"unit {unit!r} has no key enrolled for this station")
    alg = item.get("alg", ED25519)
    if not isinstance(alg, str) or alg not in ALGS:
        return Refusal(unit, seq, f"{this}: signed with the algorithm {str(alg)[:20]!r}, which units do not use "
                                  f"(known: {', '.join(ALGS)})")
    enrolled = alg_of(key)
    if alg != enrolled:
        return Refusal(unit, seq, f"{this}: signed as {alg}, but the package enrolled a {enrolled} key for unit "
                                  f"{unit!r} (not the key it was enrolled with)")
    try:
        signature = base64.b64decode(str(item.get("signature", "")), validate=True)
    except (ValueError, binascii.Error):
        signature = b""
    if not signature_holds(key, signature, label + canonical(body)):
        return Refusal(unit, seq, f"{this}: the signature does not verify against the unit's enrolled key "
                                  "(forged or altered)")
    return None


def _typed(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, float)  # signed as a float: an int here is not the signed body
    return isinstance(value, kind) and (not isinstance(value, int) or value >= 0)


def close_body(close: PeerClose) -> dict[str, Any]:
    return {"station": close.station, "unit": close.unit, "admissions": close.admissions,
            "identified": close.identified, "ballots": close.ballots, "at": close.at}


def sign_close(close: PeerClose, key: RecordKey) -> dict[str, Any]:
    """A unit's close record on the wire, signed by its device key, naming the key's algorithm."""
    signature = base64.b64encode(key.sign(CLOSE_LABEL + canonical(close_body(close)))).decode()
    return {"body": close_body(close), "signature": signature, "alg": alg_of(key.public_key())}


def check_close(item: Any, keys: Mapping[str, PublicKey], station: str) -> PeerClose | Refusal:
    """A close record: well formed, of this station, signed by the enrolled key of the unit it names."""
    body = item.get("body") if isinstance(item, dict) else None
    if not isinstance(body, dict) or set(body) != set(_CLOSE_FIELDS) or \
            not all(_typed(body[k], t) for k, t in _CLOSE_FIELDS.items()):
        return Refusal(None, None, "a malformed close record")
    unit = body["unit"]
    refused = _unit_signed(item, body, CLOSE_LABEL, keys, station, None,
                           ("a close record", f"the close record of unit {unit}"))
    if refused is not None:
        return refused
    return PeerClose(station, unit, body["admissions"], body["identified"], body["ballots"], float(body["at"]),
                     str(item["signature"]))


def message(station: str, unit: str, now: float, records: list[dict[str, Any]], held: Mapping[str, int],
            close: dict[str, Any] | None = None) -> bytes:
    """A pull's answer; ``held`` is how far the answering unit holds each unit (its own included); ``close`` the
    asked-for unit's close record once that unit closed its polls and every one of its records is in ``records``
    or before them."""
    doc: dict[str, Any] = {"format": FORMAT, "station": station, "unit": unit, "now": now, "records": records,
                           "held": dict(held)}
    if close is not None:
        doc["close"] = close
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Message:
    unit: str
    now: float
    records: list[Any]
    held: dict[str, int]
    close: Any = None


def read_message(raw: bytes, station: str) -> Message:
    """Parse a pull's answer; raises MessageRefused for the whole message."""
    if len(raw) > MAX_MESSAGE:
        raise MessageRefused(f"a sync message of more than {MAX_MESSAGE} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageRefused(f"a sync message that is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MessageRefused(f"not a sync message (format must be {FORMAT!r})")
    if doc.get("station") != station:
        raise MessageRefused(f"a sync message from another station ({doc.get('station')!r})")
    records, now = doc.get("records"), doc.get("now")
    if not isinstance(records, list) or len(records) > MAX_RECORDS or not isinstance(now, (int, float)):
        raise MessageRefused(f"a sync message without its clock or with more than {MAX_RECORDS} records")
    held = doc.get("held", {})
    held = {str(k): v for k, v in held.items() if isinstance(v, int)} if isinstance(held, dict) else {}
    return Message(str(doc.get("unit", "")), float(now), records, held, doc.get("close"))
