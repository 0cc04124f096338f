"""The registry of enrolled devices: which public key belongs to which station.

A registry file is JSON::

    {"format": "pollbox-device-registry/1",
     "devices": [{"station", "serial", "public_key", "key_id", "software", "enrolled_at"
                  [, "alg"] [, "unit", "role"] [, "revocation": {"at", "reason", "by", "last_seq"}]}, ...],
     "signature": "<base64 Ed25519 signature by the CEC over canonical JSON of devices>"}

``alg`` is the key's record algorithm (``protocol/keys.py``): written only as
``"p256"`` for a P-256 key held in a TPM; absent means Ed25519, so files from
before P-256 keys keep their bytes and signature. ``unit`` and ``role`` (both
or neither) say which unit of a station of several units the key was enrolled
for (docs/units.md): ``unit`` is the unit's id in the station package and
``role`` is ``main`` (the main desk, whose records carry no ``unit`` and form
the station's chain), ``desk`` or ``mobile``. The receiver then refuses a
record of that key whose ``unit`` is not its unit's (``unit_mismatch``, see
``ingest.py``). A device without them (a one-unit station, or a registry
written before units were enrolled) is written as before, and the receiver
binds such a key to the first chain it writes. The CEC sets them from the
station package (``pollbox-provision cec package --unit ... --registry``),
re-signing the file in place; a key's unit is set once. A device without
``revocation`` is written exactly as before revocations existed, so older
files load unchanged and an unrevoked registry keeps its bytes and digest.
A revoked key stays in the registry (its stored records must still verify):
records it signs with ``seq`` up to ``last_seq`` are accepted, later ones are
refused (``revoked_key``, see ``ingest.py``). The revocation is
part of the signed ``devices`` list, so only the CEC key can add or remove one.

Provisioning builds it with ``Registry.add`` and ``Registry.sign_and_save``;
the receiver loads it with ``Registry.load`` and the CEC public key as trust
anchor, and refuses a file that is unsigned, altered or inconsistent. A key is
bound to exactly one station; a station may have several keys (a spare unit
that replaces a failed one is enrolled for the same station and continues the
station's sequence, see docs/receiver.md).

A receiver does not hold the registry in memory: ``RegistryFile`` with the
receiver's storage verifies a file it has not met before, indexes it in the
database by its SHA-256 (``receiver/store/registry_index.py``) and answers
from there through ``StoredRegistry``; a file already indexed is not parsed
again, so start and memory do not grow with the number of stations. A new
file is verified and indexed as a stream (``receiver/registry_stream.py``),
in memory that does not grow with it either; ``pollbox-receiver
registry-import`` does it ahead of a start.

``RegistryFile`` reloads the file when it changes on disk, so a unit enrolled
or a key revoked during the day takes effect without restarting the receiver;
a changed file that fails verification, or that would undo a revocation in
force (an older, validly signed registry put back), is refused, logged, and
the previous registry stays in force.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.canonical import canonical
from protocol.keys import ED25519, P256, RAW_LENGTH, KeyFormatError, PublicKey
from protocol.keys import decode_public_key as decode_key
from receiver.registry_entries import FORMAT, DeviceEntry, RegistryError, Revocation

__all__ = [
    "FORMAT", "DeviceEntry", "RegistryError", "Revocation",  # from registry_entries, re-exported
    "AnyRegistry", "Registry", "RegistryFile", "StoredRegistry", "decode_public_key",
]

log = logging.getLogger("pollbox.receiver.registry")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes; raises RegistryError."""
    try:
        return decode_key(text)
    except KeyFormatError as exc:
        raise RegistryError(str(exc)) from None


PUBLIC_KEYS_KEPT = 4096
"""Decoded public keys kept ready; the others are decoded again when their station sends."""


V = TypeVar("V")


class Recent(Generic[V]):
    """The latest ``PUBLIC_KEYS_KEPT`` values made by ``make(key)``, shared between threads.

    ``make`` runs outside the lock; a key it answers None for is not kept.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[str], V | None]) -> V | None:
        with self._lock:
            value = self._kept.get(key)
            if value is not None:
                self._kept.move_to_end(key)
                return value
        value = make(key)
        if value is not None:
            with self._lock:
                self._kept[key] = value
                if len(self._kept) > PUBLIC_KEYS_KEPT:
                    self._kept.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._kept)


class Registry:
    """The enrolled devices, indexed by key id and by station.

    Public keys are kept as their base64 text; the key objects that verify
    signatures are made when a key is first used and the latest
    ``PUBLIC_KEYS_KEPT`` kept, so memory does not hold one per station.
    """

    def __init__(self, entries: list[DeviceEntry] | None = None) -> None:
        self._by_key: dict[str, DeviceEntry] = {}
        self._by_station: dict[str, list[str]] = {}
        self._public: Recent[PublicKey] = Recent()
        self._revoked: dict[str, Revocation] = {}
        self.signed_document: bytes | None = None
        self.digest: str | None = None
        for entry in entries or []:
            self.add(entry)

    def add(self, entry: DeviceEntry) -> None:
        """Enroll a unit; a key already bound to another station is refused."""
        entry.check(len(self._by_key))
        known = self._by_key.get(entry.key_id)
        if known is not None and known != entry and entry.key_id in self._revoked:
            raise RegistryError(f"key {entry.key_id} of station {known.station} ({known.serial}) is revoked; "
                                "a revoked key cannot be enrolled again")
        if known is not None and known != entry:
            raise RegistryError(f"key {entry.key_id} is already enrolled for station {known.station} ({known.serial})")
        if known is None:
            self._by_station.setdefault(entry.station, []).append(entry.key_id)
        self._by_key[entry.key_id] = entry

    def revocable(self, key_id: str, station: str) -> DeviceEntry:
        """The entry of a key that may be revoked for ``station``; raises RegistryError saying why not."""
        entry = self._by_key.get(key_id)
        if entry is None:
            raise RegistryError(f"key {key_id} is not enrolled in this registry")
        if entry.station != station:
            raise RegistryError(f"key {key_id} is enrolled for station {entry.station}, not {station}")
        known = self._revoked.get(key_id)
        if known is not None:
            raise RegistryError(f"key {key_id} of station {station} is already revoked (at {known.at} by {known.by}, "
                                f"records up to seq {known.last_seq} accepted)")
        return entry

    def revoke(self, key_id: str, station: str, revocation: Revocation) -> DeviceEntry:
        """Revoke an enrolled, not yet revoked key of ``station``; the entry stays, marked revoked."""
        entry = self.revocable(key_id, station)
        revocation.check(f"key {key_id}")
        self._revoked[key_id] = revocation
        return entry

    def assign_unit(self, key_id: str, station: str, unit: str, role: str) -> DeviceEntry:
        """Record which unit of ``station`` an enrolled key is for; raises RegistryError saying why not.

        A key's unit is set once (the same unit again changes nothing); a revoked key keeps its entry as it
        was revoked. Within a station a unit has one role, and one unit is the main desk (its spare keys are
        enrolled for the same unit).
        """
        entry = self._by_key.get(key_id)
        if entry is None:
            raise RegistryError(f"unit {unit}: key {key_id} is not enrolled in this registry; enroll the unit's "
                                "request first")
        if entry.station != station:
            raise RegistryError(f"unit {unit}: key {key_id} is enrolled for station {entry.station}, not {station}")
        if entry.unit == unit and entry.role == role:
            return entry
        if entry.unit:
            raise RegistryError(f"key {key_id} of station {station} is already enrolled for unit {entry.unit} "
                                f"({entry.role}), not {unit} ({role}); a key's unit is set once")
        if key_id in self._revoked:
            raise RegistryError(f"unit {unit}: key {key_id} of station {station} is revoked; enroll the unit's "
                                "new key instead")
        for other in self.devices_of(station):
            if other.unit == unit and other.role != role:
                raise RegistryError(f"unit {unit} of station {station} is enrolled as {other.role} (key "
                                    f"{other.key_id}), not {role}")
            if role == "main" and other.role == "main" and other.unit != unit:
                raise RegistryError(f"station {station}'s main desk is unit {other.unit} (key {other.key_id}); "
                                    f"{unit} cannot be the main desk too")
        updated = DeviceEntry(**{**asdict(entry), "unit": unit, "role": role})
        updated.check(0)
        self._by_key[key_id] = updated
        return updated

    def for_key(self, key_id: str) -> DeviceEntry | None:
        return self._by_key.get(key_id)

    def raw_public_key(self, key_id: str) -> bytes | None:
        """The 32 bytes of an enrolled key (checked at load), for libsodium; None if not enrolled."""
        entry = self._by_key.get(key_id)
        return None if entry is None else base64.b64decode(entry.public_key)

    def public_key(self, key_id: str) -> PublicKey | None:
        return self._public.get(key_id, lambda k: None if (e := self._by_key.get(k)) is None else e.public())

    def revocation_of(self, key_id: str) -> Revocation | None:
        return self._revoked.get(key_id)

    def revoked(self) -> list[tuple[DeviceEntry, Revocation]]:
        """Every revoked key's entry and revocation, by station and key id."""
        return sorted(((self._by_key[k], r) for k, r in self._revoked.items()),
                      key=lambda pair: (pair[0].station, pair[0].key_id))

    def revoked_stations(self) -> set[str]:
        return {self._by_key[k].station for k in self._revoked}

    def undone_revocation(self, newer: Registry | StoredRegistry) -> str | None:
        """Why ``newer`` would undo or change a revocation of this registry (None if it keeps them all)."""
        for entry, revocation in self.revoked():
            if newer.for_key(entry.key_id) != entry or newer.revocation_of(entry.key_id) != revocation:
                return (f"it drops or changes the revocation of key {entry.key_id} of station {entry.station} "
                        f"(revoked at {revocation.at}); a revocation is never undone")
        return None

    def __iter__(self) -> Iterator[DeviceEntry]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def stations(self) -> list[str]:
        return sorted(self._by_station)

    def iter_stations(self) -> Iterator[str]:
        return iter(self.stations())

    def devices_of(self, station: str) -> list[DeviceEntry]:
        return [self._by_key[k] for k in self._by_station.get(station, ())]

    def device_json(self, entry: DeviceEntry) -> dict[str, Any]:
        """One device as written in the file: with ``revocation`` only when the key is revoked."""
        return _device_json(entry, self._revoked.get(entry.key_id))

    def devices_json(self) -> list[dict[str, Any]]:
        return [self.device_json(entry) for entry in sorted(self, key=lambda e: (e.station, e.enrolled_at, e.key_id))]

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
            registry._add_signed(raw, position)
        registry.signed_document = data
        registry.digest = hashlib.sha256(data).hexdigest()
        return registry

    def device_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every device as a row of the database index (``receiver/store/registry_index.py``, ``DEVICE_COLUMNS``)."""
        for entry in self:
            revocation = self._revoked.get(entry.key_id)
            yield (entry.key_id, entry.station, entry.serial, entry.public_key, entry.software, entry.enrolled_at,
                   None if revocation is None else canonical(asdict(revocation)).decode(), entry.unit or None,
                   entry.role or None)

    def _add_signed(self, raw: Any, position: int) -> None:
        """Add one device of a verified file, with its revocation if it carries one."""
        fields_only = {k: v for k, v in raw.items() if k != "revocation"} if isinstance(raw, dict) else raw
        entry = DeviceEntry.from_dict(fields_only, position)
        self.add(entry)
        if isinstance(raw, dict) and "revocation" in raw:
            self._revoked[entry.key_id] = Revocation.from_dict(raw["revocation"], f"device {position} "
                                                                                  f"({entry.serial})")


class RegistryIndexLike(Protocol):
    """What ``StoredRegistry`` and ``RegistryFile`` need of the database (``receiver/store/registry_index.py``)."""

    def registry_devices_count(self, digest: str) -> int | None: ...
    def index_registry(self, digest: str, document: Any, devices: Any, count: int | None, now: float) -> None: ...
    def registry_document(self, digest: str) -> bytes: ...
    def registry_device(self, digest: str, key_id: str) -> tuple[Any, ...] | None: ...
    def registry_devices_of(self, digest: str, station: str) -> list[tuple[Any, ...]]: ...
    def registry_revoked(self, digest: str) -> list[tuple[Any, ...]]: ...
    def registry_stations(self, digest: str) -> Iterator[str]: ...
    def registry_all(self, digest: str) -> Iterator[tuple[Any, ...]]: ...


class StoredRegistry:
    """A verified registry file read from the database index, device by device, as the receiver asks.

    The same reading interface as ``Registry``; it holds only its digest, the
    rows and decoded keys of the latest ``PUBLIC_KEYS_KEPT`` devices that sent
    (so ingest does not query the database for every record) and the revoked
    keys, which are few: it costs the same at 1,000 and 1,000,000 stations.
    """

    def __init__(self, index: RegistryIndexLike, digest: str, count: int) -> None:
        self._index, self.digest, self._count = index, digest, count
        self._public: Recent[PublicKey] = Recent()
        self._rows: Recent[tuple[Any, ...]] = Recent()
        self._revoked_rows: list[tuple[Any, ...]] | None = None

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> DeviceEntry:
        key_id, station, serial, public_key, software, enrolled_at, _, unit, role = row
        # The index keeps the key text only; the file was verified when indexed, which checked
        # that a P-256 key (65 raw bytes) is marked alg p256 and an Ed25519 key (32) is not.
        # ``unit`` and ``role`` are NULL for a device without them and for rows indexed before they existed.
        alg = P256 if len(base64.b64decode(public_key)) == RAW_LENGTH[P256] else ED25519
        return DeviceEntry(station=station, serial=serial, public_key=public_key, key_id=key_id,
                           software=software, enrolled_at=enrolled_at, alg=alg, unit=unit or "", role=role or "")

    @staticmethod
    def _revocation(row: tuple[Any, ...]) -> Revocation | None:
        return None if row[6] is None else Revocation(**json.loads(row[6]))

    @property
    def signed_document(self) -> bytes:
        """The registry file in force, byte for byte."""
        return self._index.registry_document(self.digest)

    def _row(self, key_id: str) -> tuple[Any, ...] | None:
        """A device's row, from the latest ``PUBLIC_KEYS_KEPT`` asked for or else from the database."""
        return self._rows.get(key_id, lambda k: self._index.registry_device(self.digest, k))

    def for_key(self, key_id: str) -> DeviceEntry | None:
        row = self._row(key_id)
        return None if row is None else self._entry(row)

    def raw_public_key(self, key_id: str) -> bytes | None:
        row = self._row(key_id)
        return None if row is None else base64.b64decode(row[3])

    def public_key(self, key_id: str) -> PublicKey | None:
        return self._public.get(key_id, lambda k: None if (e := self.for_key(k)) is None else e.public())

    def _revoked_list(self) -> list[tuple[Any, ...]]:
        if self._revoked_rows is None:
            self._revoked_rows = self._index.registry_revoked(self.digest)
        return self._revoked_rows

    def revocation_of(self, key_id: str) -> Revocation | None:
        for row in self._revoked_list():
            if row[0] == key_id:
                return self._revocation(row)
        return None

    def revoked(self) -> list[tuple[DeviceEntry, Revocation]]:
        return [(self._entry(row), Revocation(**json.loads(row[6]))) for row in self._revoked_list()]

    def revoked_stations(self) -> set[str]:
        return {str(row[1]) for row in self._revoked_list()}

    def undone_revocation(self, newer: Registry | StoredRegistry) -> str | None:
        return Registry.undone_revocation(self, newer)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[DeviceEntry]:
        return (self._entry(row) for row in self._index.registry_all(self.digest))

    def __len__(self) -> int:
        return self._count

    def stations(self) -> list[str]:
        return list(self._index.registry_stations(self.digest))

    def iter_stations(self) -> Iterator[str]:
        return self._index.registry_stations(self.digest)

    def devices_of(self, station: str) -> list[DeviceEntry]:
        return [self._entry(row) for row in self._index.registry_devices_of(self.digest, station)]

    def device_json(self, entry: DeviceEntry) -> dict[str, Any]:
        return _device_json(entry, self.revocation_of(entry.key_id))


def _device_json(entry: DeviceEntry, revocation: Revocation | None) -> dict[str, Any]:
    doc: dict[str, Any] = entry.as_json()
    if revocation is not None:
        doc["revocation"] = asdict(revocation)
    return doc


AnyRegistry = Registry | StoredRegistry
"""What the receiver reads devices from: held in memory (tools, tests) or indexed in the database (a server)."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"no device registry at {path}") from None
    except OSError as exc:
        raise RegistryError(f"cannot read the device registry {path}: {exc.strerror}") from None


def _digest(path: Path, prefix: bytes) -> str:
    """SHA-256 of ``prefix`` and the file, read in chunks; raises RegistryError."""
    digest = hashlib.sha256(prefix)
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        raise RegistryError(f"no device registry at {path}") from None
    except OSError as exc:
        raise RegistryError(f"cannot read the device registry {path}: {exc.strerror}") from None
    return digest.hexdigest()


def _digest_of(data: Any, prefix: bytes) -> str:
    """SHA-256 of ``prefix`` and a bytes-like ``data`` (a map of the file), in chunks."""
    digest = hashlib.sha256(prefix)
    view = memoryview(data)
    try:
        for start in range(0, len(view), 1 << 20):
            digest.update(view[start:start + (1 << 20)])
    finally:
        view.release()
    return digest.hexdigest()


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
    """A registry file that is reloaded when its size or modification time changes.

    With ``index`` (the receiver's storage), a file is verified and parsed
    only the first time any process sharing the database meets it; the
    registry in force is then a ``StoredRegistry``. Without one (tools,
    tests), it is held in memory.
    """

    def __init__(self, path: Path, cec_public_key: Ed25519PublicKey, index: RegistryIndexLike | None = None,
                 clock: Any = None) -> None:
        self.path, self._cec, self._index = path, cec_public_key, index
        self._clock = clock
        self._stamp = self._stat()
        self.registry: AnyRegistry = self._load()

    def _load(self) -> AnyRegistry:
        """The file on disk, verified (or found already verified in the index); raises RegistryError."""
        if self._index is None:
            return Registry.from_bytes(_read(self.path), self._cec, str(self.path))
        # The index is keyed by the CEC key as well as the file: a file verified under another CEC key is not trusted.
        # The file is hashed as a stream, and read whole only when it is new here.
        digest = _digest(self.path, self._cec.public_bytes(Encoding.Raw, PublicFormat.Raw))
        count = self._index.registry_devices_count(digest)
        self.newly_indexed = count is None
        """Whether the last file loaded was verified and indexed here (False: found already indexed)."""
        if count is None:
            count = self._index_streamed(digest)
        if count is None:
            data = _read(self.path)
            if hashlib.sha256(self._cec.public_bytes(Encoding.Raw, PublicFormat.Raw) + data).hexdigest() != digest:
                raise RegistryError(f"{self.path} changed while it was read; it is read again on the next request")
            verified = Registry.from_bytes(data, self._cec, str(self.path))
            now = self._clock() if self._clock is not None else 0.0
            self._index.index_registry(digest, data, verified.device_rows(), len(verified), now)
            count = len(verified)
            log.info("device registry %s verified and indexed: %d devices", self.path, count)
        return StoredRegistry(self._index, digest, count)

    def _index_streamed(self, digest: str) -> int | None:
        """Verify and index the file as a stream (``registry_stream.py``); None if it must be read whole instead."""
        from receiver.registry_stream import NotStreamable, RegistryStream
        from receiver.store.registry_index import DuplicateKey
        assert self._index is not None
        try:
            log.info("device registry %s is new to this database: verifying and indexing it (%.1f MB; "
                     "'pollbox-receiver registry-import' does this ahead of a start)", self.path,
                     self.path.stat().st_size / 2 ** 20)
            with RegistryStream(self.path, str(self.path)) as stream:
                if _digest_of(stream.map, self._cec.public_bytes(Encoding.Raw, PublicFormat.Raw)) != digest:
                    raise RegistryError(f"{self.path} changed while it was read; it is read again on the next "
                                        "request")
                stream.verify(self._cec)
                now = self._clock() if self._clock is not None else 0.0
                self._index.index_registry(digest, stream.map, stream.rows(), None, now)
        except FileNotFoundError:
            raise RegistryError(f"no device registry at {self.path}") from None
        except OSError as exc:
            raise RegistryError(f"cannot read the device registry {self.path}: {exc.strerror}") from None
        except (NotStreamable, DuplicateKey) as exc:
            log.info("device registry %s read whole (%s)", self.path, exc)
            return None
        count = self._index.registry_devices_count(digest)
        log.info("device registry %s verified and indexed: %s devices", self.path, count)
        return count

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise RegistryError(f"cannot read the device registry {self.path}: {exc.strerror}") from None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> AnyRegistry:
        """The registry in force, reloading the file if it changed; a bad new file is logged and ignored."""
        try:
            stamp = self._stat()
        except RegistryError as exc:
            log.error("device registry not reloaded, keeping the previous one: %s", exc)
            return self.registry
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._take(self._load())
            except RegistryError as exc:
                log.error("device registry not reloaded, keeping the previous one: %s", exc)
        return self.registry

    def _take(self, newer: AnyRegistry) -> None:
        """Put a verified registry in force unless it undoes a revocation; log what it revokes."""
        undone = self.registry.undone_revocation(newer)
        if undone is not None:
            raise RegistryError(f"{self.path}: {undone}")
        old = self.registry
        self.registry = newer
        log.info("device registry reloaded: %d devices, %d revoked", len(newer), len(newer.revoked()))
        for entry, revocation in newer.revoked():
            if old.revocation_of(entry.key_id) is None:
                log.warning("key %s of station %s (%s) revoked at %s by %s (%s): records after seq %d are refused",
                            entry.key_id, entry.station, entry.serial, revocation.at, revocation.by,
                            revocation.reason, revocation.last_seq)
