"""Ed25519 public keys on the wire: base64 of the 32 raw bytes, and the 16-hex-digit key id (section 1)."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.errors import UserError


class KeyFormatError(UserError, ValueError):
    """Text that is not base64 of a 32-byte Ed25519 public key."""


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_b64(public: Ed25519PublicKey) -> str:
    """The public key as exchanged: standard base64, with padding, of its 32 raw bytes."""
    return base64.b64encode(raw_public(public)).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes; raises KeyFormatError."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error):
        raise KeyFormatError(f"{text[:60]!r} is not a base64 32-byte Ed25519 public key") from None
