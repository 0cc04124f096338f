"""Where a station's copy lies on the backup stick, and how far it goes: read by the backup and by verify.

``backup_name`` is the copy's file name; ``backup_head`` reads its last event
(one query, read-only), the second anchor ``verify_journal`` holds the journal
against: a journal shorter than its own copy on the stick is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .journal import GENESIS


def backup_name(station_id: str) -> str:
    """The file name of the station's journal copy on the stick."""
    return f"pollbox-{station_id}-journal.db"


def backup_head(directory: Path, station_id: str) -> tuple[int, bytes] | None:
    """(last seq, its chain hash) of the station's backup in ``directory``; None if there is none to read.

    Read-only and cheap (one query): the appliance compares it with its journal
    at start, so a journal shorter than its own backup is refused.
    """
    path = directory / backup_name(station_id)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None     # an unreadable stick is reported by the next backup, not here
    return (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
