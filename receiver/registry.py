"""The registry of enrolled devices: which public key belongs to which station.

A registry file is JSON::

    {"format": "pollbox-device-registry/1",
     "devices": [{"station", "serial", "public_key", "key_id", "software", "enrolled_at"}, ...],
     "signature": "<base64 Ed25519 signature by the CEC over canonical JSON of devices>"}

Provisioning builds it with ``Registry.add`` and ``Registry.sign_and_save``;
the receiver loads it with ``Registry.load`` and the CEC public key as trust
anchor, and refuses a file that is unsigned, altered or inconsistent. A key is
bound to exactly one station; a station may have several keys (a spare unit
that replaces a failed one is enrolled for the same station and continues the
station's sequence, see docs/receiver.md).

``RegistryFile`` reloads the file when it changes on disk, so a unit enrolled
during the day is accepted without restarting the receiver; a changed file
that fails verification is refused and the previous registry stays in force.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.core.events import canonical
from device.upstream.envelope import key_id as key_id_of

FORMAT = "pollbox-device-registry/1"
MAX_STATION_CHARS = 64

log = logging.getLogger("pollbox.receiver.registry")


class RegistryError(Exception):
    """The registry cannot be used; the message names the reason."""


@dataclass(frozen=True)
class DeviceEntry:
    """One enrolled unit: its key, bound to one station."""

    station: str
    serial: str
    public_key: str
    key_id: str
    software: str
    enrolled_at: str

    def public(self) -> Ed25519PublicKey:
        return decode_public_key(self.public_key)

    @classmethod
    def from_dict(cls, raw: Any, position: int) -> DeviceEntry:
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict) or sorted(raw) != sorted(names):
            raise RegistryError(f"device {position}: fields must be exactly {', '.join(names)}")
        if not all(isinstance(raw[name], str) for name in names):
            raise RegistryError(f"device {position}: every field is a string")
        entry = cls(**raw)
        entry.check(position)
        return entry

    def check(self, position: int) -> None:
        if not self.station or len(self.station) > MAX_STATION_CHARS or not self.station.isprintable():
            raise RegistryError(f"device {position}: station id must be 1-{MAX_STATION_CHARS} printable characters")
        if key_id_of(self.public()) != self.key_id:
            raise RegistryError(f"device {position} ({self.serial}): key_id does not match its public key")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes; raises RegistryError."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error):
        raise RegistryError(f"{text[:60]!r} is not a base64 32-byte Ed25519 public key") from None


class Registry:
    """The enrolled devices, indexed by key id."""

    def __init__(self, entries: list[DeviceEntry] | None = None) -> None:
        self._by_key: dict[str, DeviceEntry] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        for entry in entries or []:
            self.add(entry)

    def add(self, entry: DeviceEntry) -> None:
        """Enroll a unit; a key already bound to another station is refused."""
        entry.check(len(self._by_key))
        known = self._by_key.get(entry.key_id)
        if known is not None and known != entry:
            raise RegistryError(f"key {entry.key_id} is already enrolled for station {known.station} ({known.serial})")
        self._by_key[entry.key_id] = entry
        self._public[entry.key_id] = entry.public()

    def for_key(self, key_id: str) -> DeviceEntry | None:
        return self._by_key.get(key_id)

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self._public.get(key_id)

    def __iter__(self) -> Iterator[DeviceEntry]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def stations(self) -> list[str]:
        return sorted({entry.station for entry in self})

    def devices_of(self, station: str) -> list[DeviceEntry]:
        return [entry for entry in self if entry.station == station]

    def devices_json(self) -> list[dict[str, str]]:
        return [asdict(entry) for entry in sorted(self, key=lambda e: (e.station, e.enrolled_at, e.key_id))]

    def sign_and_save(self, path: Path, cec_private_key: Ed25519PrivateKey) -> None:
        """Write the signed registry atomically (temporary file, then rename)."""
        devices = self.devices_json()
        signature = base64.b64encode(cec_private_key.sign(canonical(devices))).decode("ascii")
        data = canonical({"format": FORMAT, "devices": devices, "signature": signature})
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data + b"\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, cec_public_key: Ed25519PublicKey) -> Registry:
        """Read and verify a registry file; raises RegistryError naming the problem."""
        return cls.from_bytes(_read(path), cec_public_key, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, cec_public_key: Ed25519PublicKey, name: str = "registry") -> Registry:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{name}: not JSON ({exc})") from None
        devices = _verified_devices(doc, cec_public_key, name)
        registry = cls()
        for position, raw in enumerate(devices):
            registry.add(DeviceEntry.from_dict(raw, position))
        return registry


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"no device registry at {path}") from None
    except OSError as exc:
        raise RegistryError(f"cannot read the device registry {path}: {exc.strerror}") from None


def _verified_devices(doc: Any, cec_public_key: Ed25519PublicKey, name: str) -> list[Any]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RegistryError(f"{name}: not a device registry (format must be {FORMAT!r})")
    devices, signature = doc.get("devices"), doc.get("signature")
    if not isinstance(devices, list):
        raise RegistryError(f"{name}: 'devices' must be a list")
    if not isinstance(signature, str) or not signature:
        raise RegistryError(f"{name}: the registry is unsigned")
    try:
        cec_public_key.verify(base64.b64decode(signature, validate=True), canonical(devices))
    except (InvalidSignature, ValueError, binascii.Error):
        raise RegistryError(f"{name}: the CEC signature does not verify: altered or signed by another key") from None
    return devices


class RegistryFile:
    """A registry file that is reloaded when its size or modification time changes."""

    def __init__(self, path: Path, cec_public_key: Ed25519PublicKey) -> None:
        self.path, self._cec = path, cec_public_key
        self._stamp = self._stat()
        self.registry = Registry.load(path, cec_public_key)

    def _stat(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise RegistryError(f"cannot read the device registry {self.path}: {exc.strerror}") from None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Registry:
        """The registry in force, reloading the file if it changed; a bad new file is logged and ignored."""
        try:
            stamp = self._stat()
        except RegistryError as exc:
            log.error("device registry not reloaded, keeping the previous one: %s", exc)
            return self.registry
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.registry = Registry.load(self.path, self._cec)
                log.info("device registry reloaded: %d devices", len(self.registry))
            except RegistryError as exc:
                log.error("device registry not reloaded, keeping the previous one: %s", exc)
        return self.registry
