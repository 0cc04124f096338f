"""The outbox: records signed inside the journal's transactions, gapless, chained, crash-safe."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upstream_fakes import STATION, polling_day, station_key_id

from device.core import events as ev
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.outbox import Outbox, OutboxError
from protocol.chain import ZERO_HASH
from protocol.envelope import SignedRecord, parse_line


def attached(journal: Journal, key: Ed25519PrivateKey) -> Outbox:
    outbox = Outbox(journal.path, key=key, station_id=STATION)
    outbox.attach(journal)
    return outbox


def all_records(outbox: Outbox) -> list[SignedRecord]:
    return outbox.records(1, outbox.last_seq())


def test_a_polling_day_gives_one_chained_signed_record_per_upstream_event(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    records = all_records(outbox)
    assert [r.fields["type"] for r in records] == [
        "polls_opened", "polls_paused", "polls_resumed", "alarm_raised", "alarm_acknowledged", "polls_closed"]
    prev = ZERO_HASH
    for n, record in enumerate(records, start=1):
        record.verify(device_key.public_key())
        assert (record.seq, record.fields["prev"], record.station, record.key) == (
            n, prev, STATION, station_key_id(device_key))
        prev = record.hash
    outbox.close()


def test_records_point_at_their_journal_event_and_hash(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    rows = {r.seq: r for r in journal.rows()}
    for record in all_records(outbox):
        body = record.fields["body"]
        row = rows[body["journal_seq"]]
        assert row.kind == record.fields["type"]
        assert body["journal_hash"] == row.hash.hex()
    outbox.close()


def test_no_voter_hash_or_typed_text_leaves_the_station(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    journal.append([ev.CheckinUndone(f"{1:064x}", "mistaken identity of Aibek")], fake_clock.wall())
    text = "\n".join(r.line() for r in all_records(outbox))
    for secret in (f"{1:064x}", "Aibek", "12345678901234", "lunch"):
        assert secret not in text


def test_undo_record_counts_the_journal_up_to_that_event(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    journal.append([ev.PollsOpened(0, 0)], fake_clock.wall())
    journal.append([ev.VoterAdmitted(f"{n:064x}", n, "scan", n) for n in (1, 2, 3)], fake_clock.wall())
    journal.append([ev.BallotCounted(1)], fake_clock.wall())
    journal.append([ev.CheckinUndone(f"{2:064x}", "r"), ev.CheckinUndone(f"{3:064x}", "r")], fake_clock.wall())
    undos = [r.fields["body"] for r in all_records(outbox) if r.fields["type"] == "checkin_undone"]
    assert [(b["undone_total"], b["identified"], b["ballots"]) for b in undos] == [(1, 2, 1), (2, 1, 1)]


def test_a_failed_append_leaves_neither_event_nor_record(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    journal.append([ev.PollsOpened(0, 0)], fake_clock.wall())

    def power_cut(conn: sqlite3.Connection, recorded: object) -> None:
        raise OSError("disk gone")

    journal.add_hook(power_cut)
    with pytest.raises(OSError):
        journal.append([ev.PollsPaused("break")], fake_clock.wall())
    assert outbox.last_seq() == 1
    assert [r.kind for r in journal.rows()] == ["polls_opened"]


def test_attach_signs_events_journaled_before_it_and_never_twice(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    polling_day(journal, fake_clock)
    first = Outbox(journal.path, key=device_key, station_id=STATION)
    assert first.attach(journal) == 6
    journal.append([ev.Annotation("readiness", "ok")], fake_clock.wall())
    reopened = Journal(journal.path, STATION)
    second = Outbox(journal.path, key=device_key, station_id=STATION)
    assert second.attach(reopened) == 0
    records = all_records(second)
    assert [r.seq for r in records] == list(range(1, 8))
    assert records[-1].fields["type"] == "annotation"
    reopened.close()


def test_a_replacement_key_continues_the_sequence_and_chain(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    attached(journal, device_key)
    journal.append([ev.PollsOpened(0, 0)], fake_clock.wall())
    spare_key = Ed25519PrivateKey.generate()
    spare_journal = Journal(journal.path, STATION)
    spare = attached(spare_journal, spare_key)
    spare_journal.append([ev.PollsPaused("swap unit")], fake_clock.wall())
    one, two = all_records(spare)
    assert (two.seq, two.fields["prev"], two.key) == (2, one.hash, station_key_id(spare_key))
    spare_journal.close()


def test_signed_records_cannot_be_altered_or_deleted(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock, tmp_path: Path) -> None:
    attached(journal, device_key)
    journal.append([ev.PollsOpened(0, 0)], fake_clock.wall())
    conn = sqlite3.connect(str(journal.path))
    with pytest.raises(sqlite3.DatabaseError, match="never changed"):
        conn.execute("UPDATE outbox SET line = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        conn.execute("DELETE FROM outbox")
    conn.close()


def test_receipts_move_delivery_forward_only_within_the_outbox(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    assert outbox.accept_receipt(4, "r4", fake_clock.wall()) is True
    assert outbox.accept_receipt(2, "r2", fake_clock.wall()) is False
    with pytest.raises(OutboxError, match="beyond the last record 6"):
        outbox.accept_receipt(7, "r7", fake_clock.wall())
    assert outbox.delivered_through() == 4
    assert outbox.last_receipt() == (4, "r4", fake_clock.wall())


def test_pending_lines_respect_count_and_size_limits(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    assert [s for s, _ in outbox.lines_after(2, 3, 10**6)] == [3, 4, 5]
    one_line = len(outbox.lines_after(0, 1, 10**6)[0][1]) + 1
    assert [s for s, _ in outbox.lines_after(0, 10, one_line)] == [1]
    assert [s for s, _ in outbox.lines_after(0, 10, 1)] == [1]


def test_line_for_journal_seq_finds_the_close_report(
        journal: Journal, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> None:
    outbox = attached(journal, device_key)
    polling_day(journal, fake_clock)
    closed = [r for r in journal.rows() if r.kind == "polls_closed"][0]
    line = outbox.line_for_journal_seq(closed.seq)
    assert line is not None and parse_line(line).fields["type"] == "polls_closed"
    assert outbox.line_for_journal_seq(1) is None
    assert hashlib.sha256(parse_line(line).data).hexdigest() == parse_line(line).hash
