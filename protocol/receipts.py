"""The receiver's receipt: a signed form of ``{"at", "highest_seq", "key", "station", "type": "receipt", "v"}``.

``highest_seq`` is the highest ``seq`` such that the receiver durably stores
every record ``1..N`` of the station (section 4). Signed with the receiver's
key; a unit verifies it against the receiver key from its station package.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.envelope import VERSION, EnvelopeError, is_int, iso_utc, load_json, sign_fields, split_signed
from protocol.keys import key_id


def make_receipt(*, key: Ed25519PrivateKey, station: str, highest_seq: int, at: float) -> str:
    """The receiver's signed receipt line: all records up to ``highest_seq`` are stored."""
    return sign_fields(key, {"v": VERSION, "type": "receipt", "station": station, "highest_seq": highest_seq,
                             "key": _signer_id(key), "at": iso_utc(at)})


@lru_cache(maxsize=8)
def _signer_id(key: Ed25519PrivateKey) -> str:
    """The key id of the receiver's key, worked out once per key object (a receipt is made for every batch)."""
    return key_id(key.public_key())


def verify_receipt(line: str, public: Ed25519PublicKey, station: str) -> int:
    """The highest sequence a receipt acknowledges, after checking signature and station."""
    sig, data = split_signed(line)
    try:
        public.verify(sig, data)
    except InvalidSignature:
        raise EnvelopeError("bad_signature", "receipt signature does not verify") from None
    fields = load_json(data, "receipt")
    if fields.get("type") != "receipt" or fields.get("station") != station:
        raise EnvelopeError("wrong_station", f"receipt is not for station {station}")
    highest = fields.get("highest_seq")
    if not is_int(highest):
        raise EnvelopeError("malformed", "receipt has no valid highest_seq")
    return highest
