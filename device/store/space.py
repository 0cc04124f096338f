"""Free space for the journal: a named reserve, so the unit warns while it can still record.

``storage_space(path)`` reads the free space of the file system that holds the
journal (one ``statvfs``, microseconds: cheap enough for every tick) and
compares it with the reserve. ``low`` turns true while the unit can still
record a whole day, so the chair is told to call the technician before the
first append fails with ``StorageFull``.

Why 64 MiB: a station of 3,000 voters journals about 10,000 events a day
(about 1 KiB each with its signed upstream record), 10 MiB; the WAL can hold
another 4 MiB before a checkpoint, and the debug log rotates at 30 MiB. The
reserve covers one such day with room to spare, and is small next to the
unit's card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import from_os

STORAGE_RESERVE_BYTES = 64 * 1024 * 1024
"""Below this much free space on the journal's file system, ``StorageSpace.low`` is true (the low-storage alarm)."""


@dataclass(frozen=True)
class StorageSpace:
    """Free bytes on the journal's file system, against the reserve."""

    free_bytes: int
    reserve_bytes: int

    @property
    def low(self) -> bool:
        """True when less than the reserve is free: raise the low-storage alarm."""
        return self.free_bytes < self.reserve_bytes

    def sentence(self) -> str:
        free = self.free_bytes / (1024 * 1024)
        if not self.low:
            return f"{free:.0f} MiB free for the journal"
        return (f"only {free:.1f} MiB free for the journal (the reserve is {self.reserve_bytes // (1024 * 1024)} MiB): "
                "call the technician to free space before the unit can no longer record")


def storage_space(path: Path, reserve_bytes: int = STORAGE_RESERVE_BYTES) -> StorageSpace:
    """The free space where ``path`` (the journal file or its folder) lives; StorageError if it cannot be read."""
    folder = path if path.is_dir() else path.parent
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        raise from_os(exc, folder) from None
    return StorageSpace(st.f_bavail * st.f_frsize, reserve_bytes)
