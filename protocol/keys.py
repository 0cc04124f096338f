"""Device public keys on the wire: base64 of their raw bytes, and the 16-hex-digit key id (section 1).

Two record algorithms (``alg``): ``ed25519`` (the default; raw key = its 32 bytes) and ``p256``
(ECDSA on NIST P-256 with SHA-256, for keys held in a TPM; raw key = the 65-byte uncompressed
SEC1 point ``04 || X || Y``). Both sign 64 bytes: Ed25519's own signature, or ECDSA's ``r || s``
as two 32-byte big-endian integers. The key id is the same rule for both: the first 16 hex
digits of SHA-256 of the raw key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.errors import UserError

ED25519 = "ed25519"
P256 = "p256"
ALGS = (ED25519, P256)
RAW_LENGTH = {ED25519: 32, P256: 65}
SIGNATURE_LENGTH = 64

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


class KeyFormatError(UserError, ValueError):
    """Text that is not base64 of a public key of the named algorithm."""


def alg_of(public: PublicKey) -> str:
    """The record algorithm of a public key: ``ed25519`` or ``p256``; raises KeyFormatError for others."""
    if isinstance(public, Ed25519PublicKey):
        return ED25519
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return P256
    raise KeyFormatError(f"a {type(public).__name__} is neither an Ed25519 nor a P-256 key")


def raw_public(public: PublicKey) -> bytes:
    """The raw key bytes: 32 for Ed25519, the 65-byte uncompressed point for P-256."""
    if alg_of(public) == P256:
        return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: PublicKey) -> str:
    """The short id of a public key: 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_b64(public: PublicKey) -> str:
    """The public key as exchanged: standard base64, with padding, of its raw bytes."""
    return base64.b64encode(raw_public(public)).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes; raises KeyFormatError."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error):
        raise KeyFormatError(f"{text[:60]!r} is not a base64 32-byte Ed25519 public key") from None


def decode_any_public_key(text: str, alg: str) -> PublicKey:
    """A public key of algorithm ``alg`` from base64 of its raw bytes; raises KeyFormatError."""
    if alg == ED25519:
        return decode_public_key(text)
    if alg != P256:
        raise KeyFormatError(f"unknown key algorithm {alg[:20]!r}; known: {', '.join(ALGS)}")
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) != RAW_LENGTH[P256] or raw[0] != 4:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except (ValueError, binascii.Error):
        raise KeyFormatError(f"{text[:60]!r} is not base64 of a 65-byte uncompressed P-256 point") from None


def p256_signature(der: bytes) -> bytes:
    """An ECDSA signature as records carry it: ``r || s``, 32 big-endian bytes each, from its DER form."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_holds(public: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (64 bytes, section 2) over ``data`` verifies under ``public``, for either algorithm."""
    if len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        if isinstance(public, Ed25519PublicKey):
            public.verify(signature, data)
        else:
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
