"""Installing a station package on a unit from the technician's USB stick.

The stick holds ``station.pkg`` (CEC-signed), the list key (``list.key.sealed``
sealed to this unit, or a plain ``list.key``) and, once the CEC has enrolled
the unit, its ``*.enrollment.json`` certificate. ``install_from`` checks all of
them against the trust anchor in the unit's config (the CEC public key and
election id baked into the image) before anything is copied: a package that
is unsigned, altered, for another election or expired, a list key that does
not match the package, or an enrollment for another unit is refused and the
unit is left as it was. So is a training package on a unit holding live data,
and a live package on a unit holding training data (E024,
``device/training.py``): the technician zeroizes the unit first. Files land
in the data dir by temporary file and rename.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from device.config import Config
from device.package import PackageError, StationPackage, load_package, public_key_from_b64
from device.training import TrainingRefused, check_unit, installed_package_training, journal_path

from .cec import load_list_key
from .enrollment import read_json, record_enrollment, verify_certificate
from .errors import ProvisionError
from .keyfiles import write_secret
from .seal import open_sealed_list_key

PACKAGE_NAME = "station.pkg"


@dataclass(frozen=True)
class Installed:
    station_id: str
    registered: int
    sealed: bool
    enrolled: bool


def verify_stick_package(stick: Path, config: Config, now: float) -> StationPackage:
    try:
        return load_package(stick / PACKAGE_NAME, public_key_from_b64(config.cec_public_key), config.election_id, now)
    except PackageError as exc:
        raise ProvisionError("E022", f"{stick / PACKAGE_NAME}: refused: {exc}") from None


def _list_key(stick: Path, config: Config, package: StationPackage) -> tuple[bytes, bool]:
    sealed = stick / "list.key.sealed"
    if sealed.exists():
        key, was_sealed = open_sealed_list_key(sealed, config.data_dir, package.station_id), True
    else:
        key, was_sealed = load_list_key(stick / "list.key"), False
    if not package.list_key_matches(key):
        raise ProvisionError("E023", f"the list key on {stick} was not made for station {package.station_id}'s package")
    return key, was_sealed


def _journal_station(path: Path) -> str | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'station_id'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    finally:
        conn.close()
    return str(row[0]) if row else None


def _own_certificate(stick: Path, config: Config) -> Path | None:
    cec = public_key_from_b64(config.cec_public_key)
    for path in sorted(stick.glob("*.enrollment.json")):
        try:
            verify_certificate(read_json(path, "enrollment certificate"), cec, config.data_dir, str(path))
        except ProvisionError:
            continue
        return path
    return None


def install_from(stick: Path, config: Config, now: float) -> Installed:
    """Check everything on the stick, then install it; the unit is unchanged if anything is refused."""
    package = verify_stick_package(stick, config, now)
    try:
        check_unit(config.data_dir, training=package.training,
                   installed=installed_package_training(config.station_package))
    except TrainingRefused as exc:
        raise ProvisionError("E024", f"{stick / PACKAGE_NAME}: {exc}") from None
    key, sealed = _list_key(stick, config, package)
    journal_station = _journal_station(journal_path(config.data_dir, package.training))
    if journal_station not in (None, package.station_id):
        raise ProvisionError("E022", f"this unit's journal belongs to station {journal_station}; it cannot take "
                                     f"{package.station_id}'s package until it is zeroized and its journal archived")
    certificate = _own_certificate(stick, config)
    _copy(stick / PACKAGE_NAME, config.station_package)
    write_secret(config.data_dir / "list.key", key, overwrite=True)
    if certificate is not None:
        record_enrollment(certificate, public_key_from_b64(config.cec_public_key), config.data_dir)
    return Installed(package.station_id, package.registered, sealed, certificate is not None)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
