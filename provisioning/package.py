"""Building and signing station packages on the CEC side.

``build_payload`` puts one station's sections together with its voter entries
(from ``voterlist.import_csv``) and the list key check; ``write_package``
signs it with the CEC key (the bytes of ``device.package.sign_package``,
written as a stream by ``package_stream.py`` so that a region's list is never
held in memory), proves the file passes every check a unit makes when it
loads it, and writes it atomically. ``payload_from_plan`` builds the payload for one station
of an election plan. ``build_station`` is the whole job for one station, shared
by ``cec package`` and ``cec packages`` (``bulk.py``): import its voter list,
write ``station.pkg`` and its list key (plain ``list.key``, or
``list.key.sealed`` sealed to the unit's enrollment request) into one folder;
for a station of several units, with the ``units`` section (``units.py``).
The unit side of the same format is ``device/package.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core.documents.rules import pin_rule_from_mapping
from device.core.voterkey import LIST_KEY_BYTES
from device.files import write_private
from device.package import PackageError, StationPackage, list_key_check, load_package, voters_digest
from protocol.envelope import iso_utc

from .cec import public_b64
from .election import ElectionPlan
from .errors import ProvisionError
from .keyfiles import write_secret
from .package_stream import MARK, Entries, entries_summary, write_streamed
from .seal import seal_list_key
from .training import package_station_id, training_payload
from .units import UnitOption, units_payload
from .voterlist import ImportResult, Progress, import_csv

PACKAGE_FILE = "station.pkg"
LIST_KEY_FILE = "list.key"
SEALED_KEY_FILE = "list.key.sealed"


class VoterListRefused(ProvisionError):
    """A voter list with bad rows: one numbered line per bad row (``lines``), and this summary as the error."""

    def __init__(self, filename: str, result: ImportResult) -> None:
        super().__init__(result.errors[0].code, f"{filename}: {len(result.errors)} bad row(s) of {result.rows}; "
                                                "nothing was imported. Correct the file and run the command again.")
        self.lines = [err.format(filename) for err in result.errors]


@dataclass(frozen=True)
class BuiltStation:
    """What ``build_station`` wrote: the voter count, the package's SHA-256, where the list key went."""

    station_id: str
    voters: int
    sha256: str
    sealed_to: str | None  # the serial of the unit the list key is sealed to; None: a plain list.key
    built_at: str


def build_payload(*, election: dict[str, Any], station: dict[str, Any], receiver: dict[str, str],
                  cec_public_key: str, entries: list[list[Any]] | Entries, list_key: bytes, issued_at: float,
                  documents: dict[str, Any] | None = None, hardware: dict[str, Any] | None = None,
                  units: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of one station's package (plain data, not yet signed); ``units`` is the section of a station
    with several units (``device.sync.units.units_section``), left out for a one-unit station.

    ``entries`` is the list, or a function giving a fresh reading of it (a long list, never held): then the
    digest and count are of one reading, and ``voters.entries`` is ``package_stream.MARK``, for ``write_package``
    to stream the same function's entries into its place."""
    if callable(entries):
        digest, count = entries_summary(entries())
        listed: list[list[Any]] | str = MARK
    else:
        digest, count, listed = voters_digest(entries), len(entries), entries
    return {**({"units": dict(units)} if units is not None else {}),
        "election": dict(election),
        "station": dict(station),
        "receiver": dict(receiver),
        "cec": {"public_key": cec_public_key},
        "documents": dict(documents or {"pin_rule": {"country": "KGZ"}}),
        "hardware": dict(hardware or {}),
        "voters": {"entries": listed, "digest": digest, "count": count,
                   "key_check": list_key_check(list_key)},
        "issued_at": iso_utc(issued_at),
    }


def payload_from_plan(plan: ElectionPlan, station_id: str, voters: ImportResult, list_key: bytes,
                      cec_key: Ed25519PrivateKey, issued_at: float, *, stream: bool = False) -> dict[str, Any]:
    """The payload for ``station_id`` of ``plan``; refuses a voter list that had errors.

    With ``stream`` the entries are not put in the payload (see ``build_payload``): ``write_package`` with
    ``entries=voters.iter_entries`` writes them."""
    if voters.errors or not voters.count:
        raise ProvisionError("E012" if voters.errors else "E018",
                             f"the voter list for {station_id} has {len(voters.errors)} bad row(s); "
                             "nothing was packaged")
    if voters.station_id != station_id:
        raise ProvisionError("E014", f"the voter list was imported for {voters.station_id}, not {station_id}")
    return build_payload(election=plan.election, station=plan.station(station_id), receiver=plan.receiver,
                         cec_public_key=public_b64(cec_key.public_key()),
                         entries=voters.iter_entries if stream else voters.entries,
                         list_key=list_key, issued_at=issued_at, documents=plan.documents, hardware=plan.hardware)


def write_package(path: Path, payload: dict[str, Any], cec_key: Ed25519PrivateKey, now: float,
                  entries: Entries | None = None) -> str:
    """Sign ``payload``, check it loads as a unit loads it, write it atomically; returns its SHA-256 hex.

    The file is ``device.package.sign_package(payload)`` byte for byte, written as a stream
    (``package_stream.write_streamed``): ``entries`` gives the voter entries of a payload made with them
    streamed (``build_payload``); without it they are the list in the payload.
    """
    if entries is None:
        listed = payload["voters"]["entries"]
        if not isinstance(listed, list):
            raise ProvisionError("E022", f"{path}: the package's voters.entries is not a list of voters")
        payload = {**payload, "voters": {**payload["voters"], "entries": MARK}}
        return write_streamed(path, payload, lambda: iter(listed), cec_key, now)
    return write_streamed(path, payload, entries, cec_key, now)


def check_package(path: Path, cec_key: Ed25519PrivateKey, election_id: str, now: float) -> StationPackage:
    """Load a package exactly as a unit would; a numbered error if it would be refused."""
    try:
        return load_package(path, cec_key.public_key(), election_id, now)
    except PackageError as exc:
        raise ProvisionError("E022", f"{path}: {exc}") from None


def build_station(plan: ElectionPlan, station_id: str, voters_csv: Path, cec_key: Ed25519PrivateKey, out: Path,
                  now: float, *, list_key: bytes | None = None, seal_to: dict[str, Any] | None = None,
                  progress: Progress | None = None, training: bool = False,
                  units: tuple[list[UnitOption], list[int]] | None = None) -> BuiltStation:
    """Import ``voters_csv`` and write ``station.pkg`` and the list key into ``out``.

    ``seal_to`` is a checked enrollment request body (``enrollment.check_request``):
    the list key is then sealed to that unit; otherwise a plain ``list.key`` is
    written. A fresh random list key is made unless ``list_key`` is given.
    ``training`` makes a training package (``training.py``): the station's
    training id, and an enrollment request must be for that id. ``units`` (checked ``--unit`` options and
    the home-voting lines) makes the package of a station of several units; the lines must be on its list.
    """
    package_id = package_station_id(station_id, training)
    if seal_to is not None and seal_to["station"] != package_id:
        raise ProvisionError("E031", f"the enrollment request is for station {seal_to['station']}, not {package_id}")
    key = list_key if list_key is not None else os.urandom(LIST_KEY_BYTES)
    voters = import_voters(plan, station_id, voters_csv, key, progress)
    payload = payload_from_plan(plan, station_id, voters, key, cec_key, now, stream=True)
    if units is not None:
        payload["units"] = units_payload(units[0], units[1], {int(entry[1]) for entry in voters.iter_entries()})
    if training:
        payload = training_payload(payload)
    sealed = seal_list_key(key, seal_to["seal_public_key"], package_id) if seal_to is not None else None
    digest = write_package(out / PACKAGE_FILE, payload, cec_key, now, entries=voters.iter_entries)
    write_list_key(out, key, sealed)
    return BuiltStation(package_id, voters.rows, digest, seal_to["serial"] if seal_to else None, payload["issued_at"])


def import_voters(plan: ElectionPlan, station_id: str, path: Path, list_key: bytes,
                  progress: Progress | None = None) -> ImportResult:
    """The checked voter list of ``station_id``; ``VoterListRefused`` with every bad row otherwise."""
    plan.station(station_id)
    result = import_csv(path, station_id, list_key, pin_rule_from_mapping(plan.documents["pin_rule"]), progress)
    if result.errors:
        raise VoterListRefused(path.name, result)
    return result


def write_list_key(out: Path, list_key: bytes, sealed: bytes | None) -> None:
    """The ``sealed`` key file if given, else a plain ``list.key``; removes the other, stale one."""
    if sealed is None:
        write_secret(out / LIST_KEY_FILE, list_key, overwrite=True)
        (out / SEALED_KEY_FILE).unlink(missing_ok=True)
    else:
        write_private(out / SEALED_KEY_FILE, sealed)
        (out / LIST_KEY_FILE).unlink(missing_ok=True)
