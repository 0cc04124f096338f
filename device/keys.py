"""The unit's Ed25519 device key, kept in a file only the appliance can read.

The private key is a 32-byte raw seed in ``device.key`` (mode 0600, written to
a temporary file and renamed, so a crash never leaves half a key); the public
key sits beside it in ``device.pub`` as base64 of its 32 raw bytes. Created at
provisioning (``pollbox-provision unit keygen``) or, in simulation only, by the
demo set-up. Key ids and the base64 form of public keys are wire format: ``protocol/keys.py``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from device.files import write_private as write_private_file
from protocol.errors import UserError
from protocol.keys import public_b64

__all__ = ["KeyError_", "create_device_key", "load_device_key", "write_private"]


class KeyError_(UserError):
    """A key file is missing, unreadable or malformed; the message says which."""


def write_private(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a raw private key atomically with mode 0600."""
    write_private_file(path, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def create_device_key(directory: Path) -> Ed25519PrivateKey:
    """Create ``device.key`` and ``device.pub`` in ``directory``; refuses to overwrite."""
    path = directory / "device.key"
    if path.exists():
        raise KeyError_(f"{path} already exists; a unit keeps its key until zeroized")
    key = Ed25519PrivateKey.generate()
    write_private(path, key)
    (directory / "device.pub").write_text(public_b64(key.public_key()) + "\n")
    return key


def load_device_key(directory: Path) -> Ed25519PrivateKey:
    """Load ``device.key`` from ``directory``."""
    path = directory / "device.key"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyError_(f"no device key at {path}; provision the unit first") from None
    except PermissionError:
        raise KeyError_(f"{path} is not readable by this user; the appliance must own it") from None
    if len(raw) != 32:
        raise KeyError_(f"{path} is not a 32-byte Ed25519 key")
    return Ed25519PrivateKey.from_private_bytes(raw)
