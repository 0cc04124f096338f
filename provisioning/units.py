"""The ``units`` section of a station package, from the CEC's command line (``cec package --unit ...``).

A station with a second desk or a mobile unit lists its units (docs/units.md): each one's id, role
(``desk`` or ``mobile``), enrolled public key (an Ed25519 key file's, or a P-256 key held in the unit's
TPM, which the section marks ``"alg": "p256"``) and, optionally, the ``host:port`` of its sync
server, plus the voter list lines registered for home voting. On the command line::

    --unit desk-1,desk,requests/desk-1.json,10.0.0.11:8471
    --unit desk-2,desk,requests/desk-2.json
    --unit mobile,mobile,MCowBQYDK2VwAyEA...   --home-voting 11,12,40-45

The key is a unit's enrollment request (its self-signature checked, and it must be for this station),
a ``device.pub`` file, or the base64 key itself. The first desk listed is the main unit: its close
reconciles the station. Everything is checked before the package is written, and a bad value is one
``E078`` line naming it; the finished section is checked again as a unit checks it
(``device.sync.units``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.package import PackageError
from device.sync.units import ADDRESS, units_section
from protocol.envelope import UNIT_RE

from .errors import ProvisionError

ROLES = ("desk", "mobile")
LINES = re.compile(r"\d+(-\d+)?")
MAX_HOME_LINES = 100_000


@dataclass(frozen=True)
class UnitOption:
    """One ``--unit`` value, checked: id, role, base64 public key, address ("" for none)."""

    id: str
    role: str
    public_key: str
    address: str


def _refuse(message: str) -> ProvisionError:
    return ProvisionError("E078", message)


def parse_unit(text: str, station_id: str) -> UnitOption:
    """One ``--unit ID,ROLE,KEY[,ADDRESS]`` value; raises E078 naming what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4) or not all(parts[:3]):
        raise _refuse(f"--unit {text!r}: write ID,ROLE,KEY or ID,ROLE,KEY,HOST:PORT (the key: an enrollment "
                      "request, a device.pub file or the base64 key)")
    uid, role, key = parts[:3]
    address = parts[3] if len(parts) == 4 else ""
    if not UNIT_RE.fullmatch(uid):
        raise _refuse(f"--unit {uid!r}: a unit id is 1 to 32 lower-case letters, digits and dashes, "
                      "starting with a letter or digit")
    if role not in ROLES:
        raise _refuse(f"--unit {uid}: the role {role!r} is not one of {', '.join(ROLES)}")
    if address and (not ADDRESS.fullmatch(address) or not 0 < int(address.rpartition(":")[2]) < 65536):
        raise _refuse(f"--unit {uid}: the address {address!r} is not host:port with a port from 1 to 65535")
    return UnitOption(uid, role, _public_key(uid, key, station_id), address)


def _public_key(uid: str, source: str, station_id: str) -> str:
    """The unit's base64 public key from an enrollment request, a device.pub file or the text itself: an
    Ed25519 key (32 bytes) or a TPM's P-256 key (the 65-byte uncompressed point)."""
    path = Path(source)
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("{"):
            return _key_of_request(uid, path, text, station_id)
        source = text
    from device.sync.units import key_alg
    from protocol.keys import KeyFormatError, decode_any_public_key
    try:
        decode_any_public_key(source, key_alg(source))
    except KeyFormatError:
        raise _refuse(f"--unit {uid}: {source[:60]!r} is neither a readable file nor a base64 Ed25519 public key "
                      "(32 bytes) or a TPM's P-256 key (65 bytes), as in the unit's device.pub") from None
    return source


def _key_of_request(uid: str, path: Path, text: str, station_id: str) -> str:
    from .enrollment import check_request
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _refuse(f"--unit {uid}: {path} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _refuse(f"--unit {uid}: {path} is not an enrollment request")
    body = check_request(doc, str(path))
    if body["station"] != station_id:
        raise _refuse(f"--unit {uid}: the enrollment request {path.name} is for station {body['station']}, "
                      f"not {station_id}")
    return str(body["public_key"])  # checked with its alg by check_request; the section names a P-256 key's


def parse_lines(text: str) -> list[int]:
    """``11,12,40-45`` as list lines; raises E078 on anything else."""
    lines: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not LINES.fullmatch(part):
            raise _refuse(f"--home-voting {text!r}: {part!r} is not a line number or a range such as 40-45")
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if first < 1 or last < first or len(lines) + last - first + 1 > MAX_HOME_LINES:
            raise _refuse(f"--home-voting {text!r}: {part!r} is not a range of list lines from 1 upwards")
        lines.extend(range(first, last + 1))
    return sorted(set(lines))


def units_payload(units: list[UnitOption], home_voting: list[int], list_lines: set[int]) -> dict[str, Any]:
    """The package's ``units`` section from checked options, against the station's voter list lines."""
    seen: dict[str, str] = {}
    for unit in units:
        if unit.id in seen:
            raise _refuse(f"--unit {unit.id} is given twice; every unit of a station has its own id")
        if unit.public_key in seen.values():
            other = next(u for u, k in seen.items() if k == unit.public_key)
            raise _refuse(f"--unit {unit.id} has the same public key as {other}; every unit enrolls its own key")
        seen[unit.id] = unit.public_key
    if len(units) < 2:
        raise _refuse("a station of several units lists at least two (--unit given once: leave it out for a "
                      "one-unit station)")
    if not any(u.role == "desk" for u in units):
        raise _refuse("the units need a desk: the first desk listed is the main unit, whose close reconciles "
                      "the station")
    missing = [line for line in home_voting if line not in list_lines]
    if missing:
        shown = ", ".join(str(x) for x in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise _refuse(f"--home-voting names line(s) {shown}, not on this station's voter list")
    if home_voting and not any(u.role == "mobile" for u in units):
        raise _refuse("--home-voting needs a mobile unit: only the mobile unit admits voters registered for "
                      "home voting")
    try:
        return units_section([(u.id, u.role, u.public_key, u.address) for u in units], home_voting)
    except PackageError as exc:
        raise _refuse(str(exc)) from None


def main_unit(units: list[UnitOption]) -> str:
    """The id of the station's main unit: the first desk listed (its close reconciles the station)."""
    return next(u.id for u in units if u.role == "desk")


def registry_role(unit: UnitOption, units: list[UnitOption]) -> str:
    """The unit's role as the receiver's registry writes it: ``main`` for the main desk, else its package role."""
    return "main" if unit.id == main_unit(units) else unit.role


def enroll_units(registry: Any, station_id: str, units: list[UnitOption]) -> list[str]:
    """Write each unit's id and role into the registry entry of its enrolled key (in memory); E079 if one cannot be.

    Each key must already be enrolled for ``station_id`` (``cec enroll``); a key's unit is set once, so
    running the same package again changes nothing. Returns the units whose entry changed.
    """
    from device.sync.units import key_alg
    from protocol.keys import decode_any_public_key, key_id
    from receiver.registry import RegistryError

    changed = []
    for unit in units:
        kid = key_id(decode_any_public_key(unit.public_key, key_alg(unit.public_key)))
        before = registry.for_key(kid)
        try:
            after = registry.assign_unit(kid, station_id, unit.id, registry_role(unit, units))
        except RegistryError as exc:
            raise ProvisionError("E079", f"station {station_id}: {exc}") from None
        if after != before:
            changed.append(unit.id)
    return changed


UNITS_FILE_COLUMNS = ("station", "unit", "role", "key", "address", "home_voting")


@dataclass(frozen=True)
class StationUnits:
    """One station's units and home-voting lines as read from a units file (``cec packages --units``)."""

    units: list[UnitOption]
    home_voting: list[int]


def read_units_file(path: Path, stations: set[str], training: bool = False) -> tuple[
        dict[str, StationUnits], list[ProvisionError]]:
    """Every station's units from a CSV file, and one E078 error per bad row (all of them, not the first).

    Columns (header required, in this order): ``station,unit,role,key,address,home_voting``. One row per
    unit; ``key`` as ``--unit`` takes it (a path is read relative to the file's folder); ``address`` may be
    empty; ``home_voting`` (e.g. ``"11,12,40-45"``, quoted) only on the mobile unit's row. A station not in
    the file is a one-unit station. ``stations`` are the plan's ids; with ``training`` the requests are for
    the training ids.
    """
    import csv

    from .training import package_station_id
    problems: list[ProvisionError] = []
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return {}, [_refuse(f"{path}: cannot read the units file ({exc})")]
    if not reader or tuple(c.strip() for c in reader[0]) != UNITS_FILE_COLUMNS:
        return {}, [_refuse(f"{path}: the first line must be the header {','.join(UNITS_FILE_COLUMNS)}")]
    for number, row in enumerate(reader[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(UNITS_FILE_COLUMNS):
            problems.append(_refuse(f"{path} line {number}: {len(row)} columns, not {len(UNITS_FILE_COLUMNS)} "
                                    f"({','.join(UNITS_FILE_COLUMNS)}; quote a home_voting list with commas)"))
            continue
        station = row[0].strip()
        if station not in stations:
            problems.append(_refuse(f"{path} line {number}: station {station!r} is not in the election plan"))
            continue
        rows.setdefault(station, []).append((number, [cell.strip() for cell in row]))
    found: dict[str, StationUnits] = {}
    for station, station_rows in rows.items():
        units: list[UnitOption] = []
        home: list[int] = []
        for number, (_, uid, role, key, address, lines) in station_rows:
            if key and not Path(key).is_absolute() and (path.parent / key).is_file():
                key = str(path.parent / key)
            text = ",".join([uid, role, key] + ([address] if address else []))
            try:
                units.append(parse_unit(text, package_station_id(station, training)))
                if lines and role != "mobile":
                    raise _refuse(f"--unit {uid}: home_voting is written on the mobile unit's row only")
                home.extend(parse_lines(lines) if lines else [])
            except ProvisionError as exc:
                problems.append(_refuse(f"{path} line {number} ({station}): {exc.message}"))
        found[station] = StationUnits(units, sorted(set(home)))
    return found, problems
