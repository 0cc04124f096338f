"""Test kit for record keys: a P-256 key in memory (what a TPM key signs like), units and a receiver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from device.hardware.clock import FakeClock
from device.keys import write_private
from protocol.keys import P256, alg_of, key_id, p256_signature, public_b64
from receiver.app import create_app
from receiver.registry import DeviceEntry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receiver"))
from rx_kit import Setup, Unit  # noqa: E402


class P256Key:
    """A software ECDSA P-256 key with the ``Signer`` shape: the same signatures a TPM key makes."""

    alg = P256

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return p256_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))

    def close(self) -> None:
        pass


@dataclass
class AnyUnit(Unit):
    """A receiver-kit unit whose key may be a P-256 signer; its registry entry names the key's alg."""

    key: object = field(default_factory=Ed25519PrivateKey.generate)  # type: ignore[assignment]

    def entry(self, serial: str = "") -> DeviceEntry:
        public = self.key.public_key()  # type: ignore[attr-defined]
        return DeviceEntry(station=self.station, serial=serial or f"SN-{key_id(public)[:6]}",
                           public_key=public_b64(public), key_id=key_id(public), software="0.1.0",
                           enrolled_at="2026-11-20T10:00:00.000000Z", alg=alg_of(public))


def receiver_setup(tmp_path: Path, units: dict[str, Unit], cec: Ed25519PrivateKey | None = None) -> Setup:
    setup = Setup(tmp_path, cec or Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), units)
    write_private(setup.key_path, setup.receiver_key)
    setup.enroll(*units.values())
    return setup


@contextmanager
def receiver_app(setup: Setup, clock: FakeClock) -> Iterator[Flask]:
    app = create_app(setup.config(str(setup.directory / "receiver.db"), clock))
    try:
        yield app
    finally:
        app.extensions["pollbox_receiver"].storage.close()
