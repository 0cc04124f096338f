"""The upstream service: delivery only on verified receipts, backoff, probes, rewinds, export, worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upstream_fakes import STATION, MemoryReceiver, make_upstream, polling_day

from device.core import events as ev
from device.core.delays import Delays
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.service import Upstream, UpstreamError
from device.upstream.uplink import Reply
from protocol.envelope import make_record
from protocol.export import ExportError, read_export
from protocol.receipts import make_receipt


def fill(journal: Journal, clock: FakeClock, count: int) -> None:
    journal.append([ev.Annotation("load", f"note {n}") for n in range(count)], clock.wall())


def test_drain_delivers_everything_and_marks_it_after_the_receipt(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    polling_day(journal, fake_clock)
    result = upstream.drain_once()
    assert (result.attempted, result.sent, result.delivered_through, result.waiting, result.error) == (
        True, 6, 6, 0, None)
    assert [r.seq for r in receiver.stored[STATION]] == [1, 2, 3, 4, 5, 6]
    status = upstream.status()
    assert (status["waiting"], status["delivered_through"], status["online"]) == (0, 6, True)
    assert status["last_receipt_at"] is not None


def test_large_backlog_goes_in_batches_of_the_configured_size(
        journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
        receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    up = make_upstream(journal, device_key, receiver_key, receiver, fake_clock, batch_records=100)
    fill(journal, fake_clock, 450)
    assert up.drain_once().delivered_through == 450
    assert receiver.sent_batches == 5
    up.close()


class ForgingUplink(MemoryReceiver):
    """Stores records but answers with a receipt signed by someone else (or for another station)."""

    def __init__(self, *args: object, forge_key: Ed25519PrivateKey, station: str = STATION) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.forge_key, self.forge_station = forge_key, station

    def send(self, batch: bytes) -> Reply:
        reply = super().send(batch)
        fake = make_receipt(key=self.forge_key, station=self.forge_station, highest_seq=len(self.stored[STATION]),
                            at=self.clock.wall())
        return Reply(reply.status, fake, accepted=reply.accepted)


@pytest.mark.parametrize("forger", ["other key", "other station"])
def test_a_receipt_that_does_not_verify_delivers_nothing(
        forger: str, journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
        fake_clock: FakeClock) -> None:
    key = Ed25519PrivateKey.generate() if forger == "other key" else receiver_key
    station = STATION if forger == "other key" else "KG-0002"
    uplink = ForgingUplink(receiver_key, device_key.public_key(), fake_clock, forge_key=key, station=station)
    up = make_upstream(journal, device_key, receiver_key, uplink, fake_clock)
    polling_day(journal, fake_clock)
    result = up.drain_once()
    assert (result.delivered_through, result.waiting) == (0, 6)
    assert result.error is not None and ("does not verify" in result.error or "not for station" in result.error)
    assert up.status()["failures"] == 1
    up.close()


def test_link_down_backs_off_with_full_jitter_and_retries_only_when_due(
        journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
        receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    delays = Delays(uplink_backoff_base=2.0, uplink_backoff_cap=60.0)
    up = Upstream(journal=journal, key=device_key, station_id=STATION, receiver_public_key=receiver_key.public_key(),
                  uplink=receiver, clock=fake_clock, delays=delays, rng=_Fixed(0.75), probe_every=1000.0)
    up.attach()
    polling_day(journal, fake_clock)
    receiver.down = True
    expected = [0.75 * 2.0, 0.75 * 4.0, 0.75 * 8.0, 0.75 * 16.0, 0.75 * 32.0, 0.75 * 60.0, 0.75 * 60.0]
    for wait in expected:
        assert up.drain_once().attempted is True
        assert up.status()["next_attempt_in"] == pytest.approx(wait)
        assert up.status()["online"] is False
        fake_clock.advance(wait / 2)
        assert up.drain_once().attempted is False
        fake_clock.advance(wait / 2)
    receiver.down = False
    assert up.drain_once().delivered_through == 6
    assert up.status()["failures"] == 0 and up.status()["last_error"] is None
    up.close()


class _Fixed:
    def __init__(self, unit: float) -> None:
        self.unit = unit

    def random(self) -> float:
        return self.unit


def test_probe_notices_the_link_is_back_and_drains_at_once(
        journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
        receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    delays = Delays(uplink_backoff_base=100.0, uplink_backoff_cap=300.0)
    up = Upstream(journal=journal, key=device_key, station_id=STATION, receiver_public_key=receiver_key.public_key(),
                  uplink=receiver, clock=fake_clock, delays=delays, rng=_Fixed(0.5), probe_every=10.0)
    up.attach()
    fill(journal, fake_clock, 30)
    receiver.down = True
    up.drain_once()
    assert up.next_attempt_in() == pytest.approx(50.0)
    fake_clock.advance(9.9)
    assert up.drain_once().attempted is False
    fake_clock.advance(0.1)
    assert up.drain_once().attempted is False
    receiver.down = False
    fake_clock.advance(9.9)
    assert up.drain_once().attempted is False
    fake_clock.advance(0.1)
    result = up.drain_once()
    assert (result.attempted, result.delivered_through, receiver.probes) == (True, 30, 1)
    assert fake_clock.monotonic() < 1000.0 + 50.0
    up.close()


def test_a_busy_receiver_gets_backoff_but_no_probes(
        journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
        receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    up = make_upstream(journal, device_key, receiver_key, receiver, fake_clock, probe_every=1.0)
    fill(journal, fake_clock, 5)
    receiver.fail_with_500 = 1
    result = up.drain_once()
    assert "HTTP 500" in str(result.error) and up.status()["online"] is True
    fake_clock.advance(up.next_attempt_in() / 2)
    assert up.drain_once().attempted is False and receiver.probes == 0
    fake_clock.advance(up.next_attempt_in())
    assert up.drain_once().delivered_through == 5
    up.close()


def test_wake_sends_at_once_even_during_a_backoff(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    fill(journal, fake_clock, 3)
    receiver.down = True
    upstream.drain_once()
    receiver.down = False
    journal.append([ev.PollsClosed(0, 0, 0, 0, 0)], fake_clock.wall())
    assert upstream.drain_once().attempted is False
    upstream.wake()
    assert upstream.drain_once().delivered_through == 4


def test_resending_delivered_records_is_harmless(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    fill(journal, fake_clock, 10)
    batch = "\n".join(line for _, line in upstream.outbox.lines_after(0, 10, 10**6)).encode()
    first = receiver.send(batch)
    assert first.accepted == 10
    again = receiver.send(batch)
    assert (again.ok, again.accepted, again.duplicates) == (True, 0, 10)
    assert upstream.drain_once().delivered_through == 10
    assert len(receiver.stored[STATION]) == 10


def test_receiver_that_lost_records_gets_them_again(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    fill(journal, fake_clock, 8)
    upstream.drain_once()
    del receiver.stored[STATION][5:]
    fill(journal, fake_clock, 2)
    result = upstream.drain_once()
    assert result.error is None and result.delivered_through == 10
    assert [r.seq for r in receiver.stored[STATION]] == list(range(1, 11))


def test_a_conflicting_record_at_the_receiver_keeps_ours_and_reports_it(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock,
        device_key: Ed25519PrivateKey) -> None:
    fill(journal, fake_clock, 4)
    impostor = make_record(key=device_key, station=STATION, seq=1, prev="0" * 64, at=0.0, type_="annotation",
                           body={"topic": "x", "text": "y"})
    receiver.stored[STATION] = [impostor]
    result = upstream.drain_once()
    assert result.delivered_through == 1 and result.waiting == 4 - 1
    assert "conflict" in str(result.error)
    assert receiver.conflicts[0].seq == 1
    assert upstream.outbox.last_seq() == 4


def test_export_writes_pending_records_and_refuses_when_nothing_waits(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock, tmp_path: Path) -> None:
    fill(journal, fake_clock, 5)
    upstream.drain_once()
    fill(journal, fake_clock, 3)
    usb = tmp_path / "usb"
    usb.mkdir()
    path = upstream.export(usb)
    assert path.name == f"pollbox-export-{STATION}-6-8.txt"
    header, records = read_export(path.read_bytes())
    assert (header.station, header.from_seq, header.to_seq, [r.seq for r in records]) == (STATION, 6, 8, [6, 7, 8])
    everything = upstream.export(tmp_path / "all.txt", everything=True)
    assert read_export(everything.read_bytes())[0].from_seq == 1
    upstream.drain_once()
    with pytest.raises(UpstreamError, match="nothing to export"):
        upstream.export(usb)


def test_export_to_a_missing_stick_says_so(upstream: Upstream, journal: Journal, fake_clock: FakeClock,
                                           tmp_path: Path) -> None:
    fill(journal, fake_clock, 1)
    with pytest.raises(ExportError, match="could not write the export file"):
        upstream.export(tmp_path / "no-such-stick" / "file.txt")


def test_signed_line_for_a_journal_event(upstream: Upstream, journal: Journal, fake_clock: FakeClock) -> None:
    recorded = journal.append([ev.PollsOpened(0, 0)], fake_clock.wall())
    line = upstream.signed_line_for(recorded[0].seq)
    assert line is not None and '"type":"polls_opened"' in line


def test_worker_thread_delivers_what_is_journaled(
        upstream: Upstream, journal: Journal, receiver: MemoryReceiver, fake_clock: FakeClock) -> None:
    upstream.start()
    try:
        fill(journal, fake_clock, 20)
        upstream.wake()
        with receiver.changed:
            assert receiver.changed.wait_for(lambda: len(receiver.stored.get(STATION, [])) == 20, timeout=30)
    finally:
        upstream.stop()
    assert upstream.status()["waiting"] == 0
