"""The receiver's own Ed25519 key, which signs receipts and tree heads.

Kept as a raw 32-byte file (mode 0600, written atomically), its public key
beside it as ``<name>.pub`` (base64 of the 32 raw bytes), which goes into every
station package so units can verify receipts. Created by
``pollbox-receiver keygen``; loaded by ``create_app``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from protocol.errors import UserError
from protocol.keys import public_b64


class ReceiverKeyError(UserError):
    """The receiver key file is missing, unreadable or not a key; the message says which."""


def write_private(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a raw private key with mode 0600: to a temporary file, synced, then renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def create_receiver_key(path: Path) -> Ed25519PrivateKey:
    """Create the key file and its ``.pub``; refuses to overwrite an existing key."""
    if path.exists():
        raise ReceiverKeyError(f"{path} already exists; the receiver keeps its key (units pin its public half)")
    key = Ed25519PrivateKey.generate()
    write_private(path, key)
    public_path(path).write_text(public_b64(key.public_key()) + "\n")
    return key


def load_receiver_key(path: Path) -> Ed25519PrivateKey:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReceiverKeyError(f"no receiver key at {path}; create one with 'pollbox-receiver keygen'") from None
    except OSError as exc:
        raise ReceiverKeyError(f"cannot read the receiver key {path}: {exc.strerror}") from None
    if len(raw) != 32:
        raise ReceiverKeyError(f"{path} is not a 32-byte raw Ed25519 key")
    return Ed25519PrivateKey.from_private_bytes(raw)
