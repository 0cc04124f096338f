"""The journal's high-water mark: the last event recorded, kept in a small file outside the journal.

SQLite silently drops a damaged or cut WAL tail, and a deleted ``journal.db``
or ``journal.db-wal`` looks like a fresh station. The mark makes all of that
visible: ``journal.mark`` beside the journal holds the station id, the seq and
the chain hash of the newest event known to be committed, so a journal that
ends before the mark (or whose event at the mark's seq has another hash) is
refused instead of opened as if nothing happened.

Format: two 4 KiB slots (each on its own page, so one torn write cannot damage
both). A slot is one line of canonical JSON ``{"hash", "n", "seq", "station"}``
and a second line with the CRC-32 of the first; the rest is zeros. Writes
alternate between the slots by ``n``; the reader takes the valid slot with
the highest seq. A file with no valid slot is damaged (``MarkDamaged``).

Cost: the mark is written (``pwrite`` into the page cache, a few microseconds)
after every commit, so it survives any crash or kill of the process. It is
made durable (``fdatasync``) at most every ``Delays.journal_mark_sync`` seconds
from ``append``, on ``sync()`` (the appliance calls it each tick, off the
voter's path) and on close: an fsync per append would halve the journal's
append rate. The mark is only written after the journal's own commit has
been fsynced, so it never runs ahead of the journal, even after a power cut;
it can lag by at most that delay.
"""

from __future__ import annotations

import json
import os
import time
from binascii import hexlify
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from zlib import crc32

from device.core.delays import DEFAULT_DELAYS
from device.files import sync_path

from .errors import StorageDamaged, from_os

SLOT = 4096
MARK_SUFFIX = ".mark"


class MarkDamaged(StorageDamaged):
    """The high-water mark file exists but neither of its slots is readable."""

    code = "mark_damaged"


class Mark(NamedTuple):
    """The newest event known to be committed: its seq and chain hash, for one station (a tuple: made per append)."""

    station_id: str
    seq: int
    hash: bytes
    n: int = 0


def mark_path(journal_path: Path) -> Path:
    """Where the mark of the journal at ``journal_path`` lives: ``journal.db`` -> ``journal.mark``."""
    return journal_path.with_suffix(MARK_SUFFIX)


def encode_slot(mark: Mark) -> bytes:
    return _slot(json.dumps(mark.station_id).encode(), mark.seq, mark.hash, mark.n)


def _slot(station_json: bytes, seq: int, digest: bytes, n: int) -> bytes:
    """The slot bytes: canonical JSON (keys sorted, built as bytes) and its CRC-32; ``advance`` inlines the same."""
    line = b'{"hash":"%s","n":%d,"seq":%d,"station":%s}' % (hexlify(digest), n, seq, station_json)
    return b"%s\n%08x\n" % (line, crc32(line))


def decode_slot(data: bytes) -> Mark | None:
    """The mark in one slot, or None if the slot is empty, torn or damaged."""
    text = data.split(b"\0", 1)[0]
    parts = text.split(b"\n")
    if len(parts) != 3 or parts[2] or parts[1] != b"%08x" % crc32(parts[0]):
        return None
    try:
        obj = json.loads(parts[0])
        return Mark(str(obj["station"]), int(obj["seq"]), bytes.fromhex(obj["hash"]), int(obj["n"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_mark(path: Path) -> Mark | None:
    """The mark stored at ``path``; None if there is no file; MarkDamaged if no slot is valid."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_os(exc, path) from None
    slots = [decode_slot(data[i:i + SLOT]) for i in (0, SLOT)]
    valid = [m for m in slots if m is not None]
    if not valid:
        raise MarkDamaged(f"{path}: the journal's high-water mark is damaged (no readable copy in it), so "
                          "the journal cannot be shown to be complete")
    return max(valid, key=lambda m: (m.seq, m.n))


class HighWaterMark:
    """Writes the mark of one journal; opened for writing, so a read-only folder shows at start."""

    def __init__(self, path: Path, station_id: str, *, sync_every: float = DEFAULT_DELAYS.journal_mark_sync,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path, self.station_id = path, station_id
        self._station_json = json.dumps(station_id).encode()
        self.sync_every, self._monotonic = sync_every, monotonic
        self._seq, self._hash, self._n = -1, b"", -1     # the newest mark written or read (n -1: none)
        self._remember(read_mark(path))
        self._fd = -1
        self._dirty = False
        self._synced_at = monotonic()

    def open(self, seq: int, digest: bytes) -> None:
        """Open the mark for writing, creating it at (``seq``, ``digest``) if there is none yet.

        A new file is written whole to a temporary name, fsynced and renamed, so a
        mark file that exists always held a valid mark. Raises StorageError if the
        mark cannot be written (a read-only folder shows here, at start).
        """
        if self._fd >= 0:
            return
        try:
            if not self.path.exists():
                self._create(Mark(self.station_id, seq, digest, 1))
            self._fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise from_os(exc, self.path) from None
        self.advance(seq, digest)

    def _create(self, mark: Mark) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, 2 * SLOT)  # later writes never need a new block: no ENOSPC
            os.pwrite(fd, encode_slot(Mark(mark.station_id, mark.seq, mark.hash, 0)), 0)
            os.pwrite(fd, encode_slot(mark), SLOT)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        sync_path(self.path.parent)
        self._remember(mark)

    def advance(self, seq: int, digest: bytes) -> None:
        """Record that events through ``seq`` (chain hash ``digest``) are committed; never moves back.

        Runs after every append, so it is kept lean: one ``pwrite`` and no objects
        beyond the slot's bytes.
        """
        if seq <= self._seq:
            return
        if self._fd < 0:
            raise StorageDamaged(f"{self.path}: the high-water mark was not opened for writing")
        n = self._n + 1
        line = b'{"hash":"%s","n":%d,"seq":%d,"station":%s}' % (hexlify(digest), n, seq, self._station_json)
        try:
            os.pwrite(self._fd, b"%s\n%08x\n" % (line, crc32(line)), (n & 1) * SLOT)
        except OSError as exc:
            raise from_os(exc, self.path) from None
        self._seq, self._hash, self._n, self._dirty = seq, digest, n, True
        if self._monotonic() - self._synced_at >= self.sync_every:
            self.sync()

    @property
    def last(self) -> Mark | None:
        """The newest mark written (or read at open), None if there is none yet."""
        return None if self._n < 0 else Mark(self.station_id, self._seq, self._hash, self._n)

    def _remember(self, mark: Mark | None) -> None:
        self._seq, self._hash, self._n = (mark.seq, mark.hash, mark.n) if mark is not None else (-1, b"", -1)

    def sync(self) -> None:
        """Make the newest mark durable (one fdatasync), if it is not yet."""
        if not self._dirty or self._fd < 0:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise from_os(exc, self.path) from None
        self._dirty, self._synced_at = False, self._monotonic()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1
