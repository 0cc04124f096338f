"""The unit's record key behind one small protocol, ``Signer``, with two backends chosen by config.

``[key] store`` in the unit's config names the backend; nothing falls back to
the other:

- ``"file"`` (the default): the Ed25519 key in ``device.key`` on the data
  partition (``device/keys.py``, wrapped by ``filekey.FileSigner``), for a unit
  without a TPM;
- ``"tpm"``: an ECDSA P-256 key made inside the unit's TPM 2.0 and never leaving
  it (``device/hardware/tpm.py``, imported only when chosen); the data partition
  holds only the key's TPM-wrapped blob, which no other TPM can load.

The composition root (``device/compose.py``) builds the signer once with
``load_signer``; provisioning makes it with ``create_signer``. Records name the
algorithm in their signed bytes (``protocol/envelope.py``); docs/keys.md tells
the key's life.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from protocol.keys import PublicKey

if TYPE_CHECKING:
    from device.hardware.tpm import TpmSigner

STORES = ("file", "tpm")
DEFAULT_TCTI = "device:/dev/tpmrm0"


class Signer(Protocol):
    """A record key: its algorithm (``ed25519`` or ``p256``), its public key and 64-byte signatures."""

    alg: str

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...

    def close(self) -> None: ...


def load_signer(data_dir: Path, store: str = "file", tcti: str = DEFAULT_TCTI) -> Signer:
    """The unit's existing record key from the backend ``store`` names; raises KeyError_ saying what is wrong."""
    if store == "file":
        from device.signing.filekey import FileSigner
        return FileSigner.load(data_dir)
    if store == "tpm":
        return _tpm_backend().load(data_dir, tcti)
    raise ValueError(f"unknown key store {store!r}; known: {', '.join(STORES)}")


def create_signer(data_dir: Path, store: str = "file", tcti: str = DEFAULT_TCTI) -> Signer:
    """Make the unit's record key in the backend ``store`` names; refuses if the unit already has one."""
    if store == "file":
        from device.signing.filekey import FileSigner
        return FileSigner.create(data_dir)
    if store == "tpm":
        return _tpm_backend().create(data_dir, tcti)
    raise ValueError(f"unknown key store {store!r}; known: {', '.join(STORES)}")


def _tpm_backend() -> type[TpmSigner]:
    """The TPM backend's class; a unit whose software lacks the TSS library is refused saying so."""
    try:
        from device.hardware.tpm import TpmSigner
    except ImportError as exc:
        from device.keys import KeyError_
        raise KeyError_(f'[key] store = "tpm", but this unit\'s software cannot drive a TPM ({exc}): the '
                        "tpm2-pytss module or its TSS2 libraries are missing (an image built for another "
                        "architecture than its build machine has none); see docs/keys.md") from None
    return TpmSigner


def own_public_b64(data_dir: Path) -> str:
    """The unit's record public key as exchanged (base64 of its raw bytes), read without using it.

    A unit holds one record key: ``device.tpm`` (a TPM key's file, whose public
    key the TPM proves at every start) or ``device.key``; creating either
    refuses when the other exists. Used to check that an enrollment
    certificate names this unit's key.
    """
    import json

    from device.keys import KeyError_, load_device_key
    from protocol.keys import public_b64

    tpm_file = data_dir / "device.tpm"
    if tpm_file.exists():
        try:
            return str(json.loads(tpm_file.read_bytes())["public_key"])
        except (OSError, ValueError, KeyError, TypeError):
            raise KeyError_(f"{tpm_file} is not a TPM key file") from None
    return public_b64(load_device_key(data_dir).public_key())
