"""Storage faults as one typed family, each with a sentence that says what to do.

``Journal.append`` and ``Journal(...)`` raise only these for storage trouble,
never a raw ``sqlite3`` or ``OSError``:

* ``StorageFull``: the disk (or the journal's size limit) is full. Nothing of
  the failed transaction was written; once space is freed the next append
  works, without a restart.
* ``StorageReadOnly``: the journal or its folder cannot be written (a read-only
  file system, wrong permissions, a card that locked itself).
* ``StorageDamaged``: the database or its high-water mark is damaged, or the
  journal holds fewer events than were already recorded (``JournalIncomplete``),
  or it is missing (``JournalMissing``). Never repaired silently.

Every class carries ``code`` (a stable name for translations and the control
socket) and ``advice`` (one plain sentence for the chair). All are
``JournalError`` too, so callers that already catch that keep working.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from protocol.errors import UserError


class JournalError(UserError):
    """The journal cannot be opened or written; the message says why and what to do."""


FREE_SPACE = "Free space on the unit's card or call the technician; nothing is lost, and recording resumes by itself."
CALL_TECHNICIAN = "Keep the unit as it is, lock the ballot box, and call the technician: the journal must be checked."
RESTORE = ("Do not use the unit for voting: call the technician, who restores the journal from the backup stick "
           "(technician guide, \"Journal refused at start\").")


class StorageError(JournalError):
    """The journal's storage failed; ``advice`` says what to do, ``code`` names the fault."""

    code = "storage_failed"
    advice = CALL_TECHNICIAN

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}. {self.advice}")
        self.detail = detail


class StorageFull(StorageError):
    """No room to write: the transaction was rolled back whole; free space and carry on."""

    code = "storage_full"
    advice = FREE_SPACE


class StorageReadOnly(StorageError):
    """The journal cannot be written at all (read-only file, folder or file system)."""

    code = "storage_read_only"
    advice = CALL_TECHNICIAN


class StorageDamaged(StorageError):
    """The database file or its high-water mark is damaged, or the disk reports I/O errors."""

    code = "storage_damaged"
    advice = CALL_TECHNICIAN


class JournalIncomplete(StorageDamaged):
    """The journal holds fewer events than the high-water mark (or the backup) says were recorded."""

    code = "journal_incomplete"
    advice = RESTORE


class JournalMissing(JournalIncomplete):
    """The journal file is gone although the high-water mark shows events were recorded."""

    code = "journal_missing"


_SQLITE_CLASS: dict[int, type[StorageError]] = {
    13: StorageFull,        # SQLITE_FULL
    8: StorageReadOnly,     # SQLITE_READONLY (and its extended codes)
    3: StorageReadOnly,     # SQLITE_PERM
    14: StorageReadOnly,    # SQLITE_CANTOPEN: the file or folder cannot be opened for writing
    11: StorageDamaged,     # SQLITE_CORRUPT
    26: StorageDamaged,     # SQLITE_NOTADB
    10: StorageDamaged,     # SQLITE_IOERR
}

_ERRNO_CLASS: dict[int, type[StorageError]] = {
    errno.ENOSPC: StorageFull,
    errno.EDQUOT: StorageFull,
    errno.EFBIG: StorageFull,
    errno.EROFS: StorageReadOnly,
    errno.EACCES: StorageReadOnly,
    errno.EPERM: StorageReadOnly,
}


def from_sqlite(exc: sqlite3.Error, path: Path) -> StorageError | None:
    """The typed storage error for an sqlite3 error, or None when it is not a storage fault."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    cls = _SQLITE_CLASS.get(code & 0xFF)
    if cls is None:
        return None
    return cls(f"{path}: {_what(cls)} ({exc})")


def from_os(exc: OSError, path: Path) -> StorageError:
    """The typed storage error for an OSError while writing a storage file."""
    cls = _ERRNO_CLASS.get(exc.errno or 0, StorageDamaged)
    return cls(f"{path}: {_what(cls)} ({exc.strerror or exc})")


def diagnose(typed: StorageError, path: Path) -> StorageError:
    """Sharpen an I/O error (SQLite does not say why a write failed): a read-only or full file system,
    or a journal file that can no longer be opened for writing, get their own class and advice."""
    if type(typed) is not StorageDamaged:
        return typed
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return typed
    if st.f_flag & os.ST_RDONLY:
        return StorageReadOnly(f"{path}: {_what(StorageReadOnly)} (the file system is read-only)")
    if st.f_bavail == 0:
        return StorageFull(f"{path}: {_what(StorageFull)} (no free block left)")
    for name in (path.name, path.name + "-wal"):
        try:
            os.close(os.open(path.parent / name, os.O_WRONLY))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return from_os(exc, path.parent / name)
    return typed


def _what(cls: type[StorageError]) -> str:
    if cls is StorageFull:
        return "the storage is full and the event could not be recorded"
    if cls is StorageReadOnly:
        return "the journal cannot be written"
    return "the journal's storage reports damage or an I/O error"
