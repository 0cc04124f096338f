"""The entries of a device registry file: a device (its key, bound to one station) and a revocation.

What one line of the ``devices`` list holds and how it is checked, apart from
the file as a whole (``receiver/registry.py``), so that the whole-file reader
and the streamed one (``receiver/registry_stream.py``) apply the same checks
with the same messages. ``receiver.registry`` re-exports every name here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from protocol.errors import UserError
from protocol.keys import ED25519, P256, KeyFormatError, PublicKey, decode_any_public_key
from protocol.keys import key_id as key_id_of

FORMAT = "pollbox-device-registry/1"
MAX_STATION_CHARS = 64
MAX_REVOCATION_TEXT = 200
UNIT_ROLES = ("main", "desk", "mobile")
"""A key's unit role: ``main`` writes the station's chain (no ``unit`` in its records), the others their own."""
UNIT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")  # as protocol.envelope.UNIT_RE
ISO_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


class RegistryError(UserError):
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
    alg: str = ED25519
    """The key's record algorithm: ``ed25519`` (absent from the file) or ``p256``."""
    unit: str = ""
    """The unit of its station the key was enrolled for ("" when not known: a one-unit station, an older file)."""
    role: str = ""
    """That unit's role (``UNIT_ROLES``), "" exactly when ``unit`` is."""

    OPTIONAL = ("alg", "unit", "role")

    @property
    def chain_unit(self) -> str | None:
        """The ``unit`` its records must carry ("" for the main desk), or None when the key's unit is not known."""
        if not self.unit:
            return None
        return "" if self.role == "main" else self.unit

    def public(self) -> PublicKey:
        try:
            return decode_any_public_key(self.public_key, self.alg)
        except KeyFormatError as exc:
            raise RegistryError(str(exc)) from None

    def as_json(self) -> dict[str, Any]:
        """The device as the file writes it: ``alg`` only for a key that is not Ed25519, ``unit``/``role`` if set."""
        doc: dict[str, Any] = asdict(self)
        if self.alg == ED25519:
            del doc["alg"]
        if not self.unit:
            del doc["unit"], doc["role"]
        return doc

    @classmethod
    def from_dict(cls, raw: Any, position: int) -> DeviceEntry:
        names = [f.name for f in fields(cls) if f.name not in cls.OPTIONAL]
        given = sorted(k for k in raw if k not in cls.OPTIONAL) if isinstance(raw, dict) else None
        if given != sorted(names):
            raise RegistryError(f"device {position}: fields must be exactly {', '.join(names)} (and alg "
                                f"for a {P256} key, unit and role for a unit of a station of several units)")
        if not all(isinstance(value, str) for value in raw.values()):
            raise RegistryError(f"device {position}: every field is a string")
        if ("unit" in raw) != ("role" in raw) or ("unit" in raw and not (raw["unit"] and raw["role"])):
            raise RegistryError(f"device {position}: unit and role are written together, neither empty (or "
                                "neither is written)")
        if "alg" in raw and raw["alg"] != P256:
            raise RegistryError(f'device {position}: alg is written only as "{P256}" (absent means {ED25519})')
        entry = cls(**raw)
        entry.check(position)
        return entry

    def check(self, position: int) -> None:
        if not self.station or len(self.station) > MAX_STATION_CHARS or not self.station.isprintable():
            raise RegistryError(f"device {position}: station id must be 1-{MAX_STATION_CHARS} printable characters")
        if key_id_of(self.public()) != self.key_id:
            raise RegistryError(f"device {position} ({self.serial}): key_id does not match its public key")
        if (self.unit or self.role) and (not UNIT_ID_RE.fullmatch(self.unit) or self.role not in UNIT_ROLES):
            raise RegistryError(f"device {position} ({self.serial}): unit must be a unit id (1 to 32 lower-case "
                                f"letters, digits and -) and role one of {', '.join(UNIT_ROLES)}; got unit "
                                f"{self.unit!r}, role {self.role!r}")


@dataclass(frozen=True)
class Revocation:
    """Why and when the CEC revoked a key, and the last seq of that key it still accepts.

    ``last_seq`` is a station sequence number, never a time: a stolen key can
    sign any timestamp, but the receiver's stored sequence cannot be rewritten.
    """

    at: str
    reason: str
    by: str
    last_seq: int

    def refuses(self, seq: int) -> bool:
        """True for a record of the revoked key the CEC no longer accepts."""
        return seq > self.last_seq

    def check(self, where: str) -> None:
        if not ISO_UTC_RE.match(self.at):
            raise RegistryError(f"{where}: revocation 'at' must be UTC like 2026-11-27T20:00:00.000000Z")
        for name in ("reason", "by"):
            text = getattr(self, name)
            if not text.strip() or len(text) > MAX_REVOCATION_TEXT or not text.isprintable():
                raise RegistryError(f"{where}: revocation {name!r} must be 1-{MAX_REVOCATION_TEXT} "
                                    "printable characters")
        if isinstance(self.last_seq, bool) or not isinstance(self.last_seq, int) or self.last_seq < 0:
            raise RegistryError(f"{where}: revocation 'last_seq' must be a whole number, 0 or more")

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Revocation:
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict) or sorted(raw) != sorted(names):
            raise RegistryError(f"{where}: revocation fields must be exactly {', '.join(names)}")
        if not all(isinstance(raw[name], str) for name in ("at", "reason", "by")):
            raise RegistryError(f"{where}: revocation at, reason and by are strings")
        revocation = cls(**raw)
        revocation.check(where)
        return revocation
