"""The journal's high-water mark: follows every commit, survives a torn slot, never runs ahead, syncs in batches."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from device.core import events as ev
from device.core.delays import DEFAULT_DELAYS
from device.store.errors import JournalError, JournalIncomplete, JournalMissing
from device.store.journal import GENESIS, Journal
from device.store.mark import SLOT, Mark, MarkDamaged, decode_slot, encode_slot, mark_path, read_mark
from device.store.verify import verify_journal, verify_path


def fill(j: Journal, n: int) -> None:
    for i in range(n):
        j.append([ev.BallotCounted(None)], 1000.0 + i)


def test_a_new_journal_has_a_mark_at_genesis(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    assert read_mark(tmp_path / "journal.mark") == Mark("S1", 0, GENESIS, 1)
    j.close()


def test_the_mark_follows_every_commit(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    for i in range(5):
        j.append([ev.BallotCounted(None), ev.BallotCounted(None)], 1000.0 + i)
        mark = read_mark(mark_path(j.path))
        assert mark is not None and (mark.seq, mark.hash) == (j.last_seq, j.last_hash)
    j.close()


def test_a_failed_commit_does_not_move_the_mark(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 2)

    def boom(conn: sqlite3.Connection, recorded: Any) -> None:
        raise RuntimeError("hook failed")
    j.add_hook(boom)
    with pytest.raises(RuntimeError):
        j.append([ev.BallotCounted(None)], 2000.0)
    assert read_mark(mark_path(j.path)).seq == 2              # type: ignore[union-attr]
    j.close()


def test_slots_alternate_and_a_torn_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 3)
    j.close()
    path = mark_path(j.path)
    data = bytearray(path.read_bytes())
    slots = [decode_slot(bytes(data[i:i + SLOT])) for i in (0, SLOT)]
    assert sorted(m.seq for m in slots if m is not None) == [2, 3]
    newest = 0 if slots[0] is not None and slots[0].seq == 3 else SLOT
    data[newest + 10] ^= 0xFF                                   # a torn write of the newest slot
    path.write_bytes(bytes(data))
    assert read_mark(path).seq == 2                             # type: ignore[union-attr]
    j2 = Journal(j.path, "S1")                                  # behind the journal is fine: it moves forward
    assert j2.refusal is None and read_mark(path).seq == 3      # type: ignore[union-attr]
    j2.close()


def test_slot_encoding_round_trips_and_rejects_damage() -> None:
    mark = Mark('KG "0001"', 42, bytes(range(32)), 7)
    raw = encode_slot(mark)
    assert decode_slot(raw + bytes(100)) == mark
    assert decode_slot(raw.replace(b"42", b"43")) is None and decode_slot(bytes(SLOT)) is None


def test_a_damaged_mark_refuses_the_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 3)
    j.close()
    mark_path(j.path).write_bytes(os.urandom(2 * SLOT))
    with pytest.raises(MarkDamaged):
        read_mark(mark_path(j.path))
    refused = Journal(j.path, "S1")
    assert refused.refusal is not None and "high-water mark is damaged" in refused.refusal
    with pytest.raises(JournalIncomplete):
        refused.append([ev.BallotCounted(None)], 2000.0)
    report = verify_journal(refused)
    assert not report.ok and report.events == 3 and "REFUSED" in report.sentence()
    refused.close()


def test_another_stations_mark_is_refused(tmp_path: Path) -> None:
    Journal(tmp_path / "journal.db", "S1").close()
    os.replace(tmp_path / "journal.mark", tmp_path / "keep.mark")
    Journal(tmp_path / "journal.db", "S1").close()
    Journal(tmp_path / "other.db", "S2").close()
    os.replace(tmp_path / "other.mark", tmp_path / "journal.mark")
    with pytest.raises(JournalError, match="belongs to station 'S2'"):
        Journal(tmp_path / "journal.db", "S1")


def test_copies_opened_unanchored_leave_no_mark(tmp_path: Path) -> None:
    Journal(tmp_path / "copy.db", "S1", anchored=False).close()
    assert not (tmp_path / "copy.mark").exists()


def test_a_missing_journal_with_a_mark_is_refused_not_recreated(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 4)
    j.close()
    j.path.unlink()
    with pytest.raises(JournalMissing, match="4 events were recorded"):
        Journal(j.path, "S1")
    assert not j.path.exists()
    report = verify_path(j.path, "S1")
    assert not report.ok and "missing" in report.reason and "backup stick" in report.sentence()


def test_the_mark_is_fsynced_in_batches_and_on_each_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost rule: an append writes the mark but fsyncs it only every ``journal_mark_sync`` seconds."""
    now = [0.0]
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    j = Journal(tmp_path / "journal.db", "S1")
    assert j.mark is not None
    j.mark._monotonic = lambda: now[0]
    j.mark._synced_at = 0.0
    fill(j, 10)
    assert synced == []                                        # ten appends, no extra fsync
    now[0] = DEFAULT_DELAYS.journal_mark_sync
    fill(j, 1)
    assert len(synced) == 1
    j.sync_mark()
    assert len(synced) == 1                                    # nothing new to sync
    fill(j, 1)
    j.sync_mark()                                              # the appliance's tick
    assert len(synced) == 2
    j.close()


def test_a_damaged_mark_and_no_journal_is_missing_not_fresh(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 3)
    j.close()
    mark_path(j.path).write_bytes(bytes(2 * SLOT))
    j.path.unlink()
    with pytest.raises(JournalMissing, match="high-water mark is damaged"):
        Journal(j.path, "S1")
    assert not j.path.exists()


def test_an_unreadable_database_behind_a_mark_is_typed_damage(tmp_path: Path) -> None:
    from device.store.errors import StorageDamaged
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 3)
    j.close()
    j.path.write_bytes(b"not a database at all " * 400)
    with pytest.raises(StorageDamaged):
        Journal(j.path, "S1")
    assert list(tmp_path.glob("journal-refused-*"))


def test_verify_reports_a_mark_damaged_while_open(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", "S1")
    fill(j, 3)
    assert verify_journal(j).ok
    mark_path(j.path).write_bytes(bytes(2 * SLOT))
    report = verify_journal(j)
    assert not report.ok and "high-water mark is damaged" in report.reason
    j.close()
