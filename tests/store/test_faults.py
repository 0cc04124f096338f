"""Storage faults at the journal: one typed family with advice, a full disk that heals, a read-only journal."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from device.core import events as ev
from device.store.errors import (
    JournalError,
    StorageDamaged,
    StorageError,
    StorageFull,
    StorageReadOnly,
    from_os,
)
from device.store.journal import Journal
from device.store.mark import mark_path, read_mark
from device.store.space import STORAGE_RESERVE_BYTES, storage_space
from device.store.verify import verify_journal

BIG = "x" * 20_000   # needs overflow pages: fails on the first append once the disk is full


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "journal.db", "S1")
    j.append([ev.DeviceStarted("t", "S1"), ev.PollsOpened(0, 0)], 1000.0)
    return j


def test_full_disk_is_a_typed_error_and_the_journal_stays_as_it_was(journal: Journal, full_disk: Any) -> None:
    before = list(journal.rows())
    full_disk.fill(journal.conn)
    with pytest.raises(StorageFull) as caught:
        journal.append([ev.Annotation("note", BIG)], 1001.0)
    assert not isinstance(caught.value, sqlite3.Error) and isinstance(caught.value, JournalError)
    assert caught.value.code == "storage_full" and "Free space" in caught.value.advice
    assert "Free space" in str(caught.value)
    assert list(journal.rows()) == before and journal.last_seq == 2
    assert not journal.conn.in_transaction
    assert read_mark(mark_path(journal.path)).seq == 2          # type: ignore[union-attr]


def test_small_appends_fill_the_last_page_then_fail_cleanly(journal: Journal, full_disk: Any) -> None:
    full_disk.fill(journal.conn)
    written = 0
    with pytest.raises(StorageFull):
        for _ in range(2000):
            journal.append([ev.BallotCounted(None)], 1001.0)
            written += 1
    assert journal.last_seq == 2 + written and len(list(journal.rows())) == 2 + written
    assert verify_journal(journal).ok


def test_appends_resume_once_space_is_back_without_a_restart(journal: Journal, full_disk: Any) -> None:
    full_disk.fill(journal.conn)
    for _ in range(3):
        with pytest.raises(StorageFull):
            journal.append([ev.Annotation("note", BIG)], 1001.0)
    full_disk.free()
    recorded = journal.append([ev.Annotation("note", BIG), ev.BallotCounted(None)], 1002.0)
    assert [r.seq for r in recorded] == [3, 4]
    report = verify_journal(journal)
    assert report.ok and report.events == 4
    assert read_mark(mark_path(journal.path)).seq == 4          # type: ignore[union-attr]


def test_outbox_rows_of_a_failed_append_roll_back_with_it(journal: Journal, full_disk: Any) -> None:
    journal.conn.execute("CREATE TABLE side (seq INTEGER PRIMARY KEY, pad TEXT)")

    def side(conn: sqlite3.Connection, recorded: Any) -> None:
        conn.executemany("INSERT INTO side VALUES (?, ?)", [(r.seq, BIG) for r in recorded])
    journal.add_hook(side)
    journal.append([ev.BallotCounted(None)], 1001.0)
    full_disk.fill(journal.conn)
    with pytest.raises(StorageFull):
        journal.append([ev.BallotCounted(None)], 1002.0)
    assert journal.conn.execute("SELECT MAX(seq) FROM side").fetchone()[0] == journal.last_seq == 3
    full_disk.free()
    journal.append([ev.BallotCounted(None)], 1003.0)
    assert journal.conn.execute("SELECT COUNT(*) FROM side").fetchone()[0] == 2 and verify_journal(journal).ok


def test_a_read_only_journal_at_start_is_a_typed_error(journal: Journal, make_unwritable: Any) -> None:
    journal.close()
    make_unwritable(journal.path)
    with pytest.raises(StorageReadOnly) as caught:
        Journal(journal.path, "S1")
    assert caught.value.code == "storage_read_only" and "technician" in caught.value.advice


def test_an_unwritable_mark_at_start_is_a_typed_error(journal: Journal, make_unwritable: Any) -> None:
    journal.close()
    make_unwritable(mark_path(journal.path))
    with pytest.raises(StorageReadOnly):
        Journal(journal.path, "S1")


def test_a_journal_made_unwritable_while_running_is_typed_and_heals(journal: Journal,
                                                                     make_unwritable: Any) -> None:
    undo = make_unwritable(journal.path.with_name("journal.db-wal"), live=True)
    with pytest.raises(StorageReadOnly) as caught:
        journal.append([ev.BallotCounted(None)], 1001.0)
    assert "journal.db-wal" in str(caught.value) and journal.last_seq == 2 and not journal.conn.in_transaction
    undo()
    assert [r.seq for r in journal.append([ev.BallotCounted(None)], 1002.0)] == [3]
    assert verify_journal(journal).ok


def test_garbage_database_is_storage_damaged(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageDamaged) as caught:
        Journal(tmp_path / "journal.db", "S1")
    assert caught.value.code == "storage_damaged"


@pytest.mark.parametrize(("errno_", "cls"), [(28, StorageFull), (30, StorageReadOnly), (13, StorageReadOnly),
                                             (5, StorageDamaged)])
def test_os_errors_map_to_the_family(tmp_path: Path, errno_: int, cls: type[StorageError]) -> None:
    err = from_os(OSError(errno_, os.strerror(errno_)), tmp_path)
    assert type(err) is cls and err.advice in str(err)


def test_free_space_against_the_reserve(journal: Journal) -> None:
    space = journal.space()
    assert space.reserve_bytes == STORAGE_RESERVE_BYTES and space.free_bytes > 0
    st = os.statvfs(journal.path.parent)
    assert abs(space.free_bytes - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
    low = storage_space(journal.path, reserve_bytes=space.free_bytes + 2**40)
    assert low.low and "call the technician" in low.sentence()
    assert not storage_space(journal.path.parent, reserve_bytes=1).low


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Any:
    """A 512 KiB tmpfs, where a real ENOSPC can happen; only as root (skips elsewhere)."""
    import subprocess
    mount = tmp_path / "card"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_file_system_is_storage_full_and_heals(tiny_tmpfs: Path) -> None:
    journal = Journal(tiny_tmpfs / "journal.db", "S1")
    journal.append([ev.PollsOpened(0, 0)], 1000.0)
    filler = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(filler, b"x" * 4096)
    os.close(filler)
    assert storage_space(journal.path).low
    with pytest.raises(StorageFull):
        for _ in range(1000):
            journal.append([ev.Annotation("note", "y" * 300)], 1001.0)
    seq = journal.last_seq
    assert verify_journal(journal).ok and read_mark(mark_path(journal.path)).seq == seq   # type: ignore[union-attr]
    (tiny_tmpfs / "filler").unlink()
    assert [r.seq for r in journal.append([ev.BallotCounted(None)], 1002.0)] == [seq + 1]
    assert verify_journal(journal).ok
    journal.close()


@pytest.mark.parametrize("offset", [0.3, 0.5, 0.7, 0.9])
def test_damaged_pages_in_the_database_never_verify_as_intact(tmp_path: Path, offset: float) -> None:
    """Bytes flipped inside journal.db (after a checkpoint): the chain, SQLite's page check or the read fails."""
    j = Journal(tmp_path / "journal.db", "S1")
    j.append([ev.DeviceStarted("t", "S1"), ev.PollsOpened(0, 0)], 1000.0)
    for i in range(300):
        j.append([ev.Annotation("note", f"event {i} " + "z" * 200)], 1001.0 + i)
    j.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    raw = bytearray(j.path.read_bytes())
    at = int(len(raw) * offset)
    raw[at:at + 16] = bytes(b ^ 0xA5 for b in raw[at:at + 16])
    j.path.write_bytes(bytes(raw))
    try:
        damaged = Journal(j.path, "S1")
    except StorageDamaged:
        return                                   # refused at open: also fine, it is typed
    try:
        report = verify_journal(damaged)
        assert not report.ok and "chain intact" not in report.sentence()
    finally:
        damaged.close()
