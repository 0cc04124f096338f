"""Recovery of a refused journal: restore it from the backup stick, never by starting a fresh one.

A journal is refused at start when it ends before its high-water mark (a
damaged or cut WAL, a deleted ``journal.db-wal``), when ``journal.db`` is gone
while the mark exists, or when the mark itself is damaged (``journal.py``).
The technician then, with the service stopped:

* ``restore(backup, journal_path, station_id)``: puts the station's verified
  copy from the backup stick in place. Refused if the copy holds fewer events
  than the mark (they would be lost) or is another journal, unless
  ``accept_loss``: then the gap is written into the journal as a note of record
  (sent to the CEC), so it is never silent.
* ``accept_as_found(journal_path, station_id)``: when there is no backup at all,
  keeps what the journal still holds and records the loss the same way.

Nothing is deleted: the files replaced (database, WAL, mark) are moved into a
``journal-replaced-<n>`` folder beside the journal. Run as
``python -m device.store.recovery --journal PATH --station ID restore BACKUP``
(or ``accept-as-found``); ``docs/technician-guide.md`` gives the procedure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from device.core import events as ev
from device.files import sync_path

from .backup import copy_database
from .errors import JournalError
from .journal import Journal, connect_read_only
from .mark import Mark, MarkDamaged, mark_path, read_mark
from .verify import verify_journal


class RecoveryRefused(JournalError):
    """The recovery would lose events or mix two journals; nothing was changed."""


@dataclass(frozen=True)
class Recovered:
    events: int
    """Events the journal holds now (before the note of the loss, if any)."""
    recorded: int | None
    """Events the high-water mark said were recorded (None if it was unreadable)."""
    replaced: Path
    """Folder that keeps the files as they were."""

    @property
    def lost(self) -> int | None:
        return None if self.recorded is None else max(0, self.recorded - self.events)

    def sentence(self) -> str:
        if self.lost == 0:
            return (f"journal restored: {self.events} events, nothing lost; the previous files are kept in "
                    f"{self.replaced}")
        gap = "an unknown number of events" if self.lost is None else f"{self.lost} events"
        return (f"journal recovered with {self.events} events; {gap} recorded before are lost and noted in the "
                f"journal; the previous files are kept in {self.replaced}")


def restore(backup: Path, journal_path: Path, station_id: str, *, accept_loss: bool = False,
            at: float | None = None) -> Recovered:
    """Replace the journal with its verified copy from the backup stick (see the module text)."""
    if not backup.is_file():
        raise RecoveryRefused(f"{backup} is not there (is the backup stick inserted?)")
    known, readable = _mark(journal_path)
    staged = _stage_copy(backup, journal_path)    # the stick's file is only read
    try:
        events, digest = _verified_copy(staged, station_id, known)
        problem = _loss(known, readable, events, digest, "the backup")
        if problem is not None and not accept_loss:
            raise RecoveryRefused(f"{problem}; nothing was changed. If no better copy exists, note it in the "
                                  "protocol and run the restore again with --accept-loss")
        replaced = _move_aside(journal_path)
        os.replace(staged, journal_path)
        sync_path(journal_path.parent)
    finally:
        for leftover in (staged, staged.with_name(staged.name + "-wal"), staged.with_name(staged.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return _finish(journal_path, station_id, events, known, readable, replaced, problem, at)


def accept_as_found(journal_path: Path, station_id: str, *, at: float | None = None) -> Recovered:
    """Keep what the refused journal still holds, as it is, and note the loss in it (no backup exists)."""
    if not journal_path.exists():
        raise RecoveryRefused(f"{journal_path} is not there; restore a copy from the backup stick instead")
    known, readable = _mark(journal_path)
    replaced = _move_aside(journal_path, keep_journal=True)   # copies first: opening may checkpoint the WAL
    events, digest = _verified_copy(journal_path, station_id, known)
    problem = _loss(known, readable, events, digest, "the journal")
    return _finish(journal_path, station_id, events, known, readable, replaced,
                   problem or "the journal was accepted as found", at)


def _verified_copy(path: Path, station_id: str, known: Mark | None) -> tuple[int, bytes | None]:
    """(events, chain hash of the event at the mark's seq) of a journal that must verify."""
    if not path.is_file():
        raise RecoveryRefused(f"{path} is not there (is the backup stick inserted?)")
    journal = Journal(path, station_id, anchored=False)
    try:
        report = verify_journal(journal)
        row = journal.conn.execute("SELECT hash FROM events WHERE seq = ?",
                                   (known.seq if known is not None else 0,)).fetchone()
    finally:
        journal.close()
    if not report.ok:
        raise RecoveryRefused(f"{path} does not verify: {report.sentence()}")
    return report.events, bytes(row[0]) if row else None


def _mark(journal_path: Path) -> tuple[Mark | None, bool]:
    """What was recorded: the mark, or the journal's own head where it reaches further (a lost mark)."""
    try:
        known, readable = read_mark(mark_path(journal_path)), True
    except MarkDamaged:
        known, readable = None, False
    head = _head(journal_path)
    if head is not None and (known is None or head.seq > known.seq):
        known = head
    return known, readable


def _head(journal_path: Path) -> Mark | None:
    if not journal_path.is_file():
        return None
    try:
        conn = connect_read_only(journal_path)
        try:
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except (sqlite3.Error, JournalError):
        return None
    return Mark("", int(row[0]), bytes(row[1])) if row else None


def _loss(known: Mark | None, readable: bool, events: int, digest: bytes | None, what: str) -> str | None:
    if not readable:
        return f"the journal's high-water mark is damaged, so it is unknown whether {what} holds every event"
    if known is None or known.seq == 0:
        return None
    if events < known.seq:
        return f"{what} holds {events} events, but {known.seq} were recorded: {known.seq - events} would be lost"
    if digest != known.hash:
        return f"{what} is not this unit's journal: its event {known.seq} differs from the one recorded"
    return None


def _move_aside(journal_path: Path, *, keep_journal: bool = False) -> Path:
    """Move the journal's files into a new ``journal-replaced-<n>`` folder; with ``keep_journal`` copy them instead.

    The mark always moves: the recovered journal gets a new one at its head.
    """
    folder = _free_name(journal_path.parent)
    folder.mkdir()
    base = journal_path.name
    for name in (base, base + "-wal", base + "-shm", mark_path(journal_path).name):
        source = journal_path.parent / name
        if not source.exists():
            continue
        if keep_journal and name != mark_path(journal_path).name:
            shutil.copy2(source, folder / name)
        else:
            os.replace(source, folder / name)
    sync_path(folder)
    sync_path(journal_path.parent)
    return folder


def _free_name(directory: Path) -> Path:
    n = 1
    while (directory / f"journal-replaced-{n}").exists():
        n += 1
    return directory / f"journal-replaced-{n}"


def _stage_copy(backup: Path, journal_path: Path) -> Path:
    """A consistent copy of ``backup`` beside the journal (SQLite's online backup, read-only on the stick)."""
    staged = journal_path.with_name(journal_path.name + ".restore")
    try:
        copy_database(backup, staged)
    except sqlite3.Error as exc:
        raise RecoveryRefused(f"{backup} cannot be read as a journal ({exc})") from None
    return staged


def _finish(journal_path: Path, station_id: str, events: int, known: Mark | None, readable: bool,
            replaced: Path, problem: str | None, at: float | None) -> Recovered:
    journal = Journal(journal_path, station_id)       # a new mark at the recovered head
    try:
        if problem is not None:
            journal.append([ev.Annotation("journal_recovered", f"{problem}; files kept in {replaced.name}")],
                           time.time() if at is None else at)
    finally:
        journal.close()
    return Recovered(events, known.seq if known is not None and readable else None, replaced)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device.store.recovery",
                                     description="Recover a journal refused at start (service stopped).")
    parser.add_argument("--journal", type=Path, default=Path("/var/lib/pollbox/journal.db"))
    parser.add_argument("--station", required=True, help="the station id, e.g. KG-0001")
    sub = parser.add_subparsers(dest="action", required=True)
    r = sub.add_parser("restore", help="put the station's copy from the backup stick in place")
    r.add_argument("backup", type=Path, help="pollbox-<station>-journal.db on the backup stick")
    r.add_argument("--accept-loss", action="store_true", help="restore even if the copy is shorter (noted)")
    sub.add_parser("accept-as-found", help="no backup exists: keep what the journal holds and note the loss")
    args = parser.parse_args(argv)
    try:
        if args.action == "restore":
            done = restore(args.backup, args.journal, args.station, accept_loss=args.accept_loss)
        else:
            done = accept_as_found(args.journal, args.station)
    except JournalError as exc:
        print(f"not done: {exc}", file=sys.stderr)
        return 1
    print(done.sentence())
    return 0


if __name__ == "__main__":
    sys.exit(main())
