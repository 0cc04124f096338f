"""The units of a station as its CEC-signed package lists them, with the key each enrolled with.

The package's ``units`` section (``provisioning/units.py`` writes it)::

    "units": {"list": [{"id": "desk-1", "role": "desk", "public_key": "<base64>", "address": "10.0.0.11:8470"},
                       ...],
              "home_voting": [31, 32]}

``list`` names every unit of the station (``role`` desk or mobile; ``address`` optional, where its
sync server listens on the station LAN; ``alg`` the enrolled key's record algorithm, written only as
``"p256"`` for a key held in the unit's TPM, absent for an Ed25519 key file, as in the device
registry); ``home_voting`` holds the list lines of the voters registered for home voting. A package
without the section is a station with one unit. ``station_units`` checks the section and which unit
this one is: the config's ``[unit] id`` must be listed, and the unit's own device key (a file's or its
TPM's) must be the one the package enrolled for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device.core import units as un
from device.core.station import VoterEntry
from device.package import PackageError
from protocol.envelope import UNIT_RE
from protocol.keys import ED25519, P256, RAW_LENGTH, KeyFormatError, PublicKey, decode_any_public_key, raw_public

ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}")


@dataclass(frozen=True)
class StationUnits:
    """The core's ``Units`` plus what only the sync layer needs: each unit's enrolled public key."""

    units: un.Units
    keys: Mapping[str, PublicKey]

    @property
    def own(self) -> un.Unit:
        return next(u for u in self.units.units if u.id == self.units.own)


def station_units(payload: Mapping[str, Any], voters: Mapping[str, VoterEntry], own: str,
                  own_key: PublicKey | None) -> StationUnits | None:
    """The station's units from a verified package payload; None for a one-unit station. Raises PackageError."""
    section = payload.get("units")
    if section is None:
        if own:
            raise PackageError(f"the config names unit {own!r}, but the station package lists no units")
        return None
    if not isinstance(section, dict) or not isinstance(section.get("list"), list) or not section["list"]:
        raise PackageError("the package's units section must hold a non-empty list of units")
    units: list[un.Unit] = []
    keys: dict[str, PublicKey] = {}
    for n, item in enumerate(section["list"], start=1):
        unit, key = _unit(n, item)
        if unit.id in keys:
            raise PackageError(f"the package lists unit {unit.id!r} twice")
        if any(raw_public(key) == raw_public(k) for k in keys.values()):
            raise PackageError(f"unit {unit.id!r} has the same key as another unit of the station")
        units.append(unit)
        keys[unit.id] = key
    if not own:
        raise PackageError("the station package lists several units: set [unit] id in the config "
                           f"to one of {', '.join(u.id for u in units)}")
    if own not in keys:
        raise PackageError(f"unit {own!r} is not one of this station's units ({', '.join(u.id for u in units)})")
    if own_key is not None and raw_public(own_key) != raw_public(keys[own]):
        raise PackageError(f"this unit's device key is not the key the package enrolled for unit {own!r}")
    home = _home(section.get("home_voting", []), voters)
    station = str(payload["station"]["id"])
    return StationUnits(un.Units(station, own, tuple(units), home), keys)


def upstream_unit(payload: Mapping[str, Any], own: str) -> str:
    """The unit id this unit signs into its records for the CEC: "" for a one-unit station and for the main unit
    (the first desk listed: its chain is the station's), else its own id (its own chain at the receiver).

    Raises PackageError, before any record is signed, when the package lists units and ``own`` is not one.
    """
    section = payload.get("units")
    if section is None:
        return ""
    listed = section.get("list") if isinstance(section, dict) else None
    items = [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
    ids = [str(item.get("id")) for item in items]
    if own not in ids:
        raise PackageError(f"unit {own!r} is not one of this station's units ({', '.join(ids)})")
    main = next((str(item.get("id")) for item in items if item.get("role") == un.UnitRole.DESK.value), "")
    return "" if own == main else own


def _unit(n: int, item: Any) -> tuple[un.Unit, PublicKey]:
    if not isinstance(item, dict):
        raise PackageError(f"unit {n} of the package is not a table")
    uid, role, address = item.get("id"), item.get("role"), item.get("address", "")
    if not isinstance(uid, str) or not UNIT_RE.fullmatch(uid):
        raise PackageError(f"unit {n} has the id {uid!r}; an id is lower-case letters, digits and dashes")
    try:
        unit_role = un.UnitRole(role)
    except ValueError:
        raise PackageError(f"unit {uid} has the role {role!r}; a role is desk or mobile") from None
    if not isinstance(address, str) or (address and not ADDRESS.fullmatch(address)):
        raise PackageError(f"unit {uid} has the address {address!r}; an address is host:port")
    alg = item.get("alg", ED25519)
    if alg not in (ED25519, P256):
        raise PackageError(f"unit {uid} names the key algorithm {str(alg)[:20]!r}; a unit's key is ed25519 "
                           f"(a key file, alg left out) or p256 (held in its TPM)")
    try:
        key = decode_any_public_key(str(item.get("public_key", "")), alg)
    except KeyFormatError:
        raise PackageError(f"unit {uid} has no valid public key ({alg}: base64 of {RAW_LENGTH[alg]} bytes"
                           f"{', an uncompressed point' if alg == P256 else ''})") from None
    return un.Unit(uid, unit_role, address), key


def key_alg(public_key: str) -> str:
    """The record algorithm of a unit's base64 public key by its length: ``p256`` for a 65-byte point, else
    ``ed25519`` (the key is checked when the section is read)."""
    import base64
    import binascii
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (ValueError, binascii.Error):
        return ED25519
    return P256 if len(raw) == RAW_LENGTH[P256] else ED25519


def _home(lines: Any, voters: Mapping[str, VoterEntry]) -> frozenset[str]:
    if not isinstance(lines, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in lines):
        raise PackageError("the package's units.home_voting must be a list of voter list lines")
    by_line = {e.line: v for v, e in voters.items()}
    missing = [x for x in lines if x not in by_line]
    if missing:
        raise PackageError(f"units.home_voting names line {missing[0]}, which is not in the voter list")
    return frozenset(by_line[x] for x in lines)


def units_section(units: list[tuple[str, str, str, str]], home_voting: list[int]) -> dict[str, Any]:
    """The package's ``units`` section from (id, role, base64 public key, address) per unit and the
    home-voting lines (a 65-byte P-256 key gets ``"alg": "p256"``); checked as a unit will check it
    (``PackageError``)."""
    listed: list[dict[str, Any]] = [{"id": i, "role": r, "public_key": k, "address": a} for i, r, k, a in units]
    for item in listed:
        if key_alg(item["public_key"]) == P256:
            item["alg"] = P256  # an Ed25519 key's entry is as before TPM keys could join: no alg
    section = {"list": listed, "home_voting": sorted(set(home_voting))}
    for n, item in enumerate(listed, start=1):
        _unit(n, item)
    if len({u[0] for u in units}) != len(units):
        raise PackageError("a unit id is listed twice")
    return section
