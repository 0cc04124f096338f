"""The software backend of ``Signer``: the Ed25519 key file ``device.key`` (``device/keys.py``)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.keys import KeyError_, create_device_key, load_device_key
from protocol.keys import ED25519


class FileSigner:
    """The unit's Ed25519 key read from the data partition; ``key`` is the private key itself."""

    alg = ED25519

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self._public = key.public_key()

    @classmethod
    def load(cls, data_dir: Path) -> FileSigner:
        return cls(load_device_key(data_dir))

    @classmethod
    def create(cls, data_dir: Path) -> FileSigner:
        """Make ``device.key``; refused if the unit has a key already, in a file or in its TPM (``device.tpm``)."""
        if (data_dir / "device.tpm").exists():
            raise KeyError_(f"{data_dir / 'device.tpm'} already exists: this unit's key is in its TPM; a unit keeps "
                            "its key until zeroized")
        return cls(create_device_key(data_dir))

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def close(self) -> None:
        """Nothing to release: the key is in memory."""
