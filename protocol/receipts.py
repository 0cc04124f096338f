"""The receiver's receipt: a signed form of ``{"at", "highest_seq", "key", "station", "type": "receipt", "v"}``.

``highest_seq`` is the highest ``seq`` such that the receiver durably stores
every record ``1..N`` of the station (section 4). A receipt for the chain of a
unit other than the station's main one (``envelope.UNIT_FIELD``) also carries
``"unit": "<unit id>"``, and counts that unit's records only. Signed with the receiver's
key; a unit verifies it against the receiver key from its station package.

The receiver makes one for every batch it answers, so the signature is made
with libsodium (PyNaCl), about twice as fast as the OpenSSL binding for
Ed25519 signing and without Python's global lock; Ed25519 signatures are
deterministic, so the bytes are the same either way.
"""

from __future__ import annotations

from functools import lru_cache

import nacl.bindings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from protocol.canonical import canonical
from protocol.envelope import (
    MAIN_UNIT,
    UNIT_FIELD,
    VERSION,
    EnvelopeError,
    b64u,
    is_int,
    iso_utc,
    load_json,
    split_signed,
)
from protocol.keys import key_id


def make_receipt(*, key: Ed25519PrivateKey, station: str, highest_seq: int, at: float, unit: str = MAIN_UNIT) -> str:
    """The receiver's signed receipt line: all records up to ``highest_seq`` (of ``unit``'s chain) are stored."""
    signer_id, secret = _signer(key)
    fields = {"v": VERSION, "type": "receipt", "station": station, "highest_seq": highest_seq,
              "key": signer_id, "at": iso_utc(at)}
    if unit != MAIN_UNIT:
        fields[UNIT_FIELD] = unit
    data = canonical(fields)
    return f"{b64u(nacl.bindings.crypto_sign(data, secret)[:64])} {data.decode('utf-8')}"


@lru_cache(maxsize=8)
def _signer(key: Ed25519PrivateKey) -> tuple[str, bytes]:
    """(key id, libsodium's 64-byte secret key) of the receiver's key, worked out once per key object."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key_id(key.public_key()), seed + public


def verify_receipt(line: str, public: Ed25519PublicKey, station: str, unit: str = MAIN_UNIT) -> int:
    """The highest sequence a receipt acknowledges, after checking signature, station and unit."""
    sig, data = split_signed(line)
    try:
        public.verify(sig, data)
    except InvalidSignature:
        raise EnvelopeError("bad_signature", "receipt signature does not verify") from None
    fields = load_json(data, "receipt")
    if fields.get("type") != "receipt" or fields.get("station") != station:
        raise EnvelopeError("wrong_station", f"receipt is not for station {station}")
    if fields.get(UNIT_FIELD, MAIN_UNIT) != unit:
        raise EnvelopeError("wrong_station", f"receipt is for unit {fields.get(UNIT_FIELD, MAIN_UNIT) or 'main'} "
                                             f"of station {station}, not {unit or 'the main unit'}")
    highest = fields.get("highest_seq")
    if not is_int(highest):
        raise EnvelopeError("malformed", "receipt has no valid highest_seq")
    return highest
