"""Sealing a station's list key to one unit, so the USB stick never carries it in the clear.

At ``unit keygen`` the unit also makes an X25519 sealing key (``seal.key``,
mode 0600; public half in ``seal.pub`` and in the enrollment request). The CEC
side seals the list key to that public key: an ephemeral X25519 exchange,
HKDF-SHA256 over the shared secret (salt: both public keys, info: a fixed
label), and ChaCha20-Poly1305 with the station id as associated data. Only
that unit can open ``list.key.sealed``; a stick lost in a taxi reveals nothing.
When no enrollment request is at hand the CEC may still write a plain
``list.key``; the technician guide says what that risks.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from .errors import ProvisionError
from .keyfiles import read_secret, read_text, write_public, write_secret

FORMAT = "pollbox-sealed-list-key/1"
_INFO = b"pollbox list key seal v1"
_NONCE = bytes(12)  # each sealing key (derived from a fresh ephemeral key) encrypts exactly one message


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def create_seal_key(directory: Path) -> X25519PublicKey:
    """Create ``seal.key``/``seal.pub`` in ``directory``; refuses to overwrite."""
    key = X25519PrivateKey.generate()
    write_secret(directory / "seal.key", key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    write_public(directory / "seal.pub", base64.b64encode(_raw(key.public_key())).decode() + "\n")
    return key.public_key()


def load_seal_public(directory: Path) -> str:
    """The base64 sealing public key of the unit whose data dir is ``directory``."""
    return read_text(directory / "seal.pub", "sealing public key").strip()


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO).derive(shared)
    return ChaCha20Poly1305(key)


def seal_list_key(list_key: bytes, recipient_b64: str, station_id: str) -> bytes:
    """The sealed-key file bytes for the unit whose sealing public key is ``recipient_b64``."""
    try:
        recipient = X25519PublicKey.from_public_bytes(base64.b64decode(recipient_b64, validate=True))
    except ValueError:
        msg = "the unit's sealing key in the enrollment request is not 32 base64 bytes"
        raise ProvisionError("E030", msg) from None
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    box = _derive(ephemeral.exchange(recipient), eph_raw, _raw(recipient))
    doc = {"format": FORMAT, "station": station_id, "recipient": recipient_b64,
           "ephemeral": base64.b64encode(eph_raw).decode(),
           "ciphertext": base64.b64encode(box.encrypt(_NONCE, list_key, station_id.encode())).decode()}
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def open_sealed_list_key(path: Path, directory: Path, station_id: str) -> bytes:
    """The list key from ``path``, opened with this unit's ``seal.key``; numbered errors otherwise."""
    doc = _sealed_doc(path)
    own = X25519PrivateKey.from_private_bytes(read_secret(directory / "seal.key", "sealing key"))
    if doc["recipient"] != base64.b64encode(_raw(own.public_key())).decode():
        raise ProvisionError("E023", f"{path}: this list key was sealed to another unit")
    if doc["station"] != station_id:
        raise ProvisionError("E023", f"{path}: this list key is for station {doc['station']}, not {station_id}")
    try:
        eph_raw = base64.b64decode(doc["ephemeral"], validate=True)
        box = _derive(own.exchange(X25519PublicKey.from_public_bytes(eph_raw)), eph_raw, _raw(own.public_key()))
        return box.decrypt(_NONCE, base64.b64decode(doc["ciphertext"], validate=True), station_id.encode())
    except (ValueError, InvalidTag):
        raise ProvisionError("E023", f"{path}: the sealed list key is damaged or was altered") from None


def _sealed_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(read_text(path, "sealed list key"))
    except ValueError:
        raise ProvisionError("E023", f"{path}: not a sealed list key file") from None
    keys = ("format", "station", "recipient", "ephemeral", "ciphertext")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not all(isinstance(doc.get(k), str) for k in keys):
        raise ProvisionError("E023", f"{path}: not a sealed list key file (format {FORMAT})")
    return doc
