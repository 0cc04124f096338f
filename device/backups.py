"""The journal's copies on the backup stick: every ``Delays.backup_every``, and on demand.

A copy reads the journal through SQLite's online backup on a connection of its
own (``device/store/backup.py``), so it runs on a short-lived thread of its own
and never holds up the owner thread: a slow USB stick never delays a voter.
``last`` is what the chair's screen shows of the most recent attempt.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from device.core.delays import Delays
from device.hardware.interfaces import Clock
from device.store.backup import BackupError, backup_journal

log = logging.getLogger("pollbox.backup")


class JournalBackups:
    """Copies of one station's journal to its backup folder (``directory``: None when none is configured)."""

    def __init__(self, *, journal_path: Path, station_id: str, directory: Path | None, clock: Clock,
                 delays: Delays) -> None:
        self.journal_path, self.station_id, self.directory = journal_path, station_id, directory
        self.clock, self.delays = clock, delays
        self.last: dict[str, Any] = {"configured": directory is not None}
        self._next = 0.0
        self._running = threading.Lock()

    def start_if_due(self) -> None:
        """Start a copy on its own thread when one is due and none is running."""
        now = self.clock.monotonic()
        if self.directory is None or now < self._next or self._running.locked():
            return
        self._next = now + self.delays.backup_every
        threading.Thread(target=self._quietly, name="pollbox-backup", daemon=True).start()

    def _quietly(self) -> None:
        assert self.directory is not None
        try:
            self.copy(self.directory)
        except BackupError as exc:
            log.warning("journal backup failed: %s", exc)

    def copy(self, directory: Path) -> dict[str, Any]:
        """Copy the journal to ``directory`` now (checked before it replaces the previous copy)."""
        with self._running:
            configured = self.directory is not None
            try:
                done = backup_journal(self.journal_path, self.station_id, directory)
            except BackupError as exc:
                self.last = {"configured": configured, "ok": False, "error": str(exc), "at": self.clock.wall()}
                raise
            self.last = {"configured": configured, "ok": True, "path": str(done.path), "events": done.events,
                         "at": self.clock.wall()}
            return dict(self.last)
