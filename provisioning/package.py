"""Building and signing station packages on the CEC side.

``build_payload`` puts one station's sections together with its voter entries
(from ``voterlist.import_csv``) and the list key check; ``write_package``
signs it with the CEC key (``device.package.sign_package``), proves the file
loads exactly as a unit would load it (``device.package.load_package``), and
writes it atomically. ``package_from_plan`` does both for one station of an
election plan. The unit side of the same format is ``device/package.py``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.package import PackageError, StationPackage, list_key_check, load_package, sign_package, voters_digest
from device.upstream.envelope import iso_utc

from .cec import public_b64
from .election import ElectionPlan
from .errors import ProvisionError
from .voterlist import ImportResult


def build_payload(*, election: dict[str, Any], station: dict[str, Any], receiver: dict[str, str],
                  cec_public_key: str, entries: list[list[Any]], list_key: bytes, issued_at: float,
                  documents: dict[str, Any] | None = None, hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of one station's package (plain data, not yet signed)."""
    return {
        "election": dict(election),
        "station": dict(station),
        "receiver": dict(receiver),
        "cec": {"public_key": cec_public_key},
        "documents": dict(documents or {"pin_rule": {"country": "KGZ"}}),
        "hardware": dict(hardware or {}),
        "voters": {"entries": entries, "digest": voters_digest(entries), "count": len(entries),
                   "key_check": list_key_check(list_key)},
        "issued_at": iso_utc(issued_at),
    }


def payload_from_plan(plan: ElectionPlan, station_id: str, voters: ImportResult, list_key: bytes,
                      cec_key: Ed25519PrivateKey, issued_at: float) -> dict[str, Any]:
    """The payload for ``station_id`` of ``plan``; refuses a voter list that had errors."""
    if voters.errors or not voters.entries:
        raise ProvisionError("E012" if voters.errors else "E018",
                             f"the voter list for {station_id} has {len(voters.errors)} bad row(s); "
                             "nothing was packaged")
    if voters.station_id != station_id:
        raise ProvisionError("E014", f"the voter list was imported for {voters.station_id}, not {station_id}")
    return build_payload(election=plan.election, station=plan.station(station_id), receiver=plan.receiver,
                         cec_public_key=public_b64(cec_key.public_key()), entries=voters.entries,
                         list_key=list_key, issued_at=issued_at, documents=plan.documents, hardware=plan.hardware)


def write_package(path: Path, payload: dict[str, Any], cec_key: Ed25519PrivateKey, now: float) -> str:
    """Sign ``payload``, check it loads as a unit loads it, write it atomically; returns its SHA-256 hex."""
    data = sign_package(payload, cec_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        check_package(tmp, cec_key, str(payload["election"]["id"]), now)
    except ProvisionError:
        tmp.unlink()
        raise
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def check_package(path: Path, cec_key: Ed25519PrivateKey, election_id: str, now: float) -> StationPackage:
    """Load a package exactly as a unit would; a numbered error if it would be refused."""
    try:
        return load_package(path, cec_key.public_key(), election_id, now)
    except PackageError as exc:
        raise ProvisionError("E022", f"{path}: {exc}") from None
