"""The CEC's keys: the package signing key and a station's voter-list key.

The signing key is an Ed25519 key kept on the CEC's offline machine as PKCS#8
PEM, encrypted with a passphrase when one is given, mode 0600; its public half
(base64 of the 32 raw bytes) goes beside it as ``<name>.pub`` and into every
unit's config as the trust anchor. The list key (32 random bytes) is per
station: the CEC hashes that station's personal numbers with it, and the unit
hashes scanned numbers with it. ``list_key_check`` lets a unit confirm that the
list key it was given belongs to its package without revealing the key.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from device.core.voterkey import LIST_KEY_BYTES
from device.package import list_key_check

from .errors import ProvisionError
from .keyfiles import read_secret, write_public, write_secret

__all__ = ["create_cec_key", "create_list_key", "list_key_check", "load_cec_key", "load_list_key", "public_b64"]


def public_b64(public: Ed25519PublicKey) -> str:
    """Base64 of a public key's 32 raw bytes (the form configs and packages use)."""
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def create_cec_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Create the CEC signing key at ``path`` (and ``path.pub``); refuses to overwrite."""
    key = Ed25519PrivateKey.generate()
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    write_secret(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    write_public(public_path(path), public_b64(key.public_key()) + "\n")
    return key


def load_cec_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Load the CEC signing key; numbered errors for a missing file, wrong passphrase or wrong key type."""
    pem = read_secret(path, "CEC signing key")
    try:
        key = load_pem_private_key(pem, password=passphrase)
    except TypeError:
        raise ProvisionError("E020", f"{path}: the CEC key is encrypted; give its passphrase "
                                     "(POLLBOX_CEC_PASSPHRASE, or the prompt on a terminal)") from None
    except ValueError:
        raise ProvisionError("E020", f"{path}: not a CEC key, or the passphrase is wrong") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvisionError("E020", f"{path}: the CEC key must be Ed25519")
    return key


def create_list_key(path: Path) -> bytes:
    """Create a station's list key (32 random bytes, mode 0600); refuses to overwrite."""
    key = secrets.token_bytes(LIST_KEY_BYTES)
    write_secret(path, key)
    return key


def load_list_key(path: Path) -> bytes:
    key = read_secret(path, "list key")
    if len(key) != LIST_KEY_BYTES:
        raise ProvisionError("E020", f"{path}: a list key is {LIST_KEY_BYTES} bytes, this file has {len(key)}")
    return key
