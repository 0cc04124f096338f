"""Test kit for the receiver: units that sign chained records, a receiver set-up, HTTP shortcuts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient

from device.hardware.clock import FakeClock
from protocol.batch import encode_batch
from protocol.chain import ZERO_HASH
from protocol.envelope import SignedRecord, make_record
from protocol.keys import key_id, public_b64
from protocol.training import is_training_station
from receiver.registry import DeviceEntry, Registry, Revocation

BATCH = "application/x-pollbox-batch"


@dataclass
class Unit:
    """A polling-station unit: signs gap-free, chained records with its device key."""

    station: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    seq: int = 0
    prev: str = ZERO_HASH
    at: float = 1_800_000_000.0
    unit: str = ""
    """The unit whose chain it signs ("" for the station's main unit; docs/units.md)."""

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())

    def entry(self, serial: str = "") -> DeviceEntry:
        return DeviceEntry(station=self.station, serial=serial or f"SN-{self.key_id[:6]}",
                           public_key=public_b64(self.key.public_key()), key_id=self.key_id, software="0.1.0",
                           enrolled_at="2026-11-20T10:00:00.000000Z")

    def record(self, type_: str = "annotation", body: dict[str, Any] | None = None,
               journal: bool = True) -> SignedRecord:
        """The next record; its body gets the journal fields every body carries unless ``journal`` is False."""
        self.seq, self.at = self.seq + 1, self.at + 60
        body = dict(body) if body is not None else {"topic": "t", "text": "x"}
        if journal:
            body.setdefault("journal_seq", 2 * self.seq)
            body.setdefault("journal_hash", hashlib.sha256(f"{self.station} {self.seq}".encode()).hexdigest())
        record = make_record(key=self.key, station=self.station, seq=self.seq, prev=self.prev, at=self.at,
                             type_=type_, body=body, training=is_training_station(self.station), unit=self.unit)
        self.prev = record.hash
        return record

    def records(self, n: int) -> list[SignedRecord]:
        return [self.record() for _ in range(n)]


@dataclass
class Setup:
    """Keys and files of one receiver."""

    directory: Path
    cec: Ed25519PrivateKey
    receiver_key: Ed25519PrivateKey
    units: dict[str, Unit]

    @property
    def registry_path(self) -> Path:
        return self.directory / "registry.json"

    @property
    def key_path(self) -> Path:
        return self.directory / "receiver.key"

    def enroll(self, *units: Unit) -> None:
        registry = Registry.load(self.registry_path, self.cec.public_key()) if self.registry_path.exists() \
            else Registry()
        for unit in units:
            registry.add(unit.entry())
        registry.sign_and_save(self.registry_path, self.cec)

    def revoke(self, unit: Unit, last_seq: int, reason: str = "stolen from the school", by: str = "CEC duty officer",
               at: str = "2026-11-27T11:00:00.000000Z") -> Registry:
        """Revoke ``unit``'s key in the signed registry file; records up to ``last_seq`` stay accepted."""
        registry = Registry.load(self.registry_path, self.cec.public_key())
        registry.revoke(unit.key_id, unit.station, Revocation(at=at, reason=reason, by=by, last_seq=last_seq))
        registry.sign_and_save(self.registry_path, self.cec)
        return registry

    def config(self, db: str, clock: FakeClock) -> dict[str, Any]:
        return {"DATABASE_URL": db, "REGISTRY_PATH": str(self.registry_path),
                "CEC_PUBLIC_KEY": public_b64(self.cec.public_key()), "RECEIVER_KEY_PATH": str(self.key_path),
                "SILENT_AFTER_MINUTES": 15, "CLOCK": clock.wall, "TESTING": True}

    def cli_args(self, db: str) -> list[str]:
        return ["--db", db, "--registry", str(self.registry_path), "--cec-public-key",
                public_b64(self.cec.public_key()), "--key", str(self.key_path)]


def post(client: FlaskClient, records: list[SignedRecord] | bytes, **headers: str) -> Any:
    body = records if isinstance(records, bytes) else encode_batch(records)
    return client.post("/api/v1/records", data=body, headers={"Content-Type": BATCH, **headers})


def stored(app: Flask) -> tuple[int, int]:
    """(records stored, Merkle tree size): both must move together."""
    storage = app.extensions["pollbox_receiver"].storage
    return storage.count_records(), storage.tree()[0]
