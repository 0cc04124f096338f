"""Journal backups to removable media, so a failed unit can be replaced without losing what it recorded.

``backup_journal`` copies a consistent snapshot of the journal (SQLite's online
backup, through its own read connection, so the appliance keeps writing) to a
temporary file in the target directory, fsyncs it, checks that the copy's hash
chain verifies and ends where the snapshot ended, and only then renames it over
the previous backup. A half-written stick therefore never replaces a good backup.

Wiring: the appliance calls it from its loop every ``Delays.backup_every``
when the config names a ``[backup] directory`` (a USB stick kept in the unit),
and ``pollbox backup DIR`` calls it on demand. A replacement unit starts from
the copy: ``docs/technician-guide.md`` says how.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from device.files import sync_path
from protocol.errors import UserError

from .backuphead import backup_name
from .journal import Journal, JournalError
from .verify import verify_journal


class BackupError(UserError):
    """The backup could not be written or did not verify; the previous backup is untouched."""


@dataclass(frozen=True)
class Backup:
    path: Path
    events: int
    head_hash: str


def backup_journal(source: Path, station_id: str, directory: Path) -> Backup:
    """Copy the journal at ``source`` into ``directory``; raises BackupError and leaves the old copy alone."""
    if not directory.is_dir():
        raise BackupError(f"backup directory {directory} is not there (is the USB stick inserted?)")
    target = directory / backup_name(station_id)
    tmp = target.with_name(target.name + ".part")
    try:
        copy_database(source, tmp)
        copy = _check(tmp, station_id)
        os.replace(tmp, target)
        sync_path(directory)
    except (OSError, sqlite3.Error, JournalError) as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"could not write the backup to {directory}: {exc}") from None
    except BackupError:
        tmp.unlink(missing_ok=True)
        raise
    return Backup(target, copy[0], copy[1])


def copy_database(source: Path, target: Path) -> None:
    """A consistent, synced copy of the SQLite file ``source`` at ``target`` (its online backup; ``source``
    is only read). Raises ``sqlite3.Error`` when ``source`` cannot be read as a database."""
    target.unlink(missing_ok=True)
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.commit()
    finally:
        dst.close()
        src.close()
    sync_path(target)


def _check(path: Path, station_id: str) -> tuple[int, str]:
    journal = Journal(path, station_id, anchored=False)
    try:
        report = verify_journal(journal)
    finally:
        journal.close()
    if not report.ok:
        raise BackupError(f"the copy does not verify: {report.sentence()}")
    return report.events, report.head_hash

