"""Test doubles for the upstream tests: an in-memory receiver, a fixed random source, a polling day."""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.core import events as ev
from device.core.delays import Delays
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.service import Upstream
from device.upstream.uplink import LinkDown, ReceiverTrouble, Reply
from protocol.batch import decode_batch
from protocol.envelope import EnvelopeError, SignedRecord
from protocol.keys import key_id
from protocol.receipts import make_receipt

STATION = "KG-0001"


class MemoryReceiver:
    """An in-memory stand-in for the receiver's ingest rules (contiguous, idempotent, conflicts kept).

    Used where a test needs to script the receiver's answers exactly; the end-to-end
    tests use the real receiver instead.
    """

    def __init__(self, key: Ed25519PrivateKey, device_public: Ed25519PublicKey, clock: FakeClock) -> None:
        self.key, self.device_public, self.clock = key, device_public, clock
        self.stored: dict[str, list[SignedRecord]] = {}
        self.conflicts: list[SignedRecord] = []
        self.down = False
        self.fail_with_500 = 0
        self.sent_batches = 0
        self.probes = 0
        self.changed = threading.Condition()

    def receipt(self, station: str) -> str:
        return make_receipt(key=self.key, station=station, highest_seq=len(self.stored.get(station, [])),
                            at=self.clock.wall())

    def send(self, batch: bytes) -> Reply:
        if self.down:
            raise LinkDown("no route to the receiver (test)")
        self.sent_batches += 1
        if self.fail_with_500:
            self.fail_with_500 -= 1
            raise ReceiverTrouble("the receiver answered HTTP 500 (test)")
        records = decode_batch(batch)
        station = records[0].station
        return self._ingest(station, records)

    def _ingest(self, station: str, records: list[SignedRecord]) -> Reply:
        stored = self.stored.setdefault(station, [])
        accepted = duplicates = 0
        for record in records:
            error = self._check(stored, record)
            if error == "duplicate":
                duplicates += 1
                continue
            if error:
                if error == "conflict":
                    self.conflicts.append(record)
                return Reply(409 if error in ("gap", "conflict", "chain_broken") else 400, self.receipt(station),
                             error=error, reason=f"{error} at {record.seq}", seq=record.seq)
            stored.append(record)
            accepted += 1
        with self.changed:
            self.changed.notify_all()
        return Reply(200, self.receipt(station), accepted=accepted, duplicates=duplicates)

    def _check(self, stored: list[SignedRecord], record: SignedRecord) -> str | None:
        try:
            record.verify(self.device_public)
        except EnvelopeError:
            return "bad_signature"
        if record.seq <= len(stored):
            return "duplicate" if stored[record.seq - 1].data == record.data else "conflict"
        if record.seq != len(stored) + 1:
            return "gap"
        expected = stored[-1].hash if stored else "0" * 64
        return None if record.fields["prev"] == expected else "chain_broken"

    def probe(self) -> Reply:
        if self.down:
            raise LinkDown("no route to the receiver (test)")
        self.probes += 1
        return Reply(200, self.receipt(STATION))

    def close(self) -> None:
        pass


class FixedRandom:
    """A random source that always returns the same unit, so waits are exact."""

    def __init__(self, unit: float) -> None:
        self.unit = unit

    def random(self) -> float:
        return self.unit


def make_upstream(journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
                  uplink: object, clock: FakeClock, unit: float = 0.5, **extra: object) -> Upstream:
    up = Upstream(journal=journal, key=device_key, station_id=STATION, receiver_public_key=receiver_key.public_key(),
                  uplink=uplink, clock=clock, delays=Delays(), rng=FixedRandom(unit), **extra)  # type: ignore[arg-type]
    up.attach()
    return up


def polling_day(journal: Journal, clock: FakeClock, voters: int = 3) -> None:
    """A short day: open, some voters and ballots, a pause, an alarm, close."""
    journal.append([ev.DeviceStarted("0.1.0", STATION)], clock.wall())
    journal.append([ev.PollsOpened(0, 0)], clock.wall())
    for n in range(1, voters + 1):
        clock.advance(30)
        journal.append([ev.VoterAdmitted(f"{n:064x}", n, "scan", n)], clock.wall())
        journal.append([ev.BallotCounted(n)], clock.wall())
    journal.append([ev.PollsPaused("lunch with Aibek Usenov 12345678901234")], clock.wall())
    journal.append([ev.PollsResumed()], clock.wall())
    journal.append([ev.AlarmRaised(1, "lid_opened", "lid switch opened")], clock.wall())
    journal.append([ev.AlarmAcknowledged(1, "sealed again by Aibek")], clock.wall())
    journal.append([ev.PollsClosed(voters, voters, 0, 1, 0)], clock.wall())


def station_key_id(key: Ed25519PrivateKey) -> str:
    return key_id(key.public_key())
