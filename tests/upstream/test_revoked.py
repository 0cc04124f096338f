"""A unit whose key the CEC revoked keeps every record, says why on its status, and retries with backoff."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upstream_fakes import STATION, FixedRandom
from upstream_live import live_receiver

from device.core import events as ev
from device.core.delays import Delays
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.service import Upstream
from device.upstream.uplink import HttpUplink
from protocol.keys import key_id
from receiver.registry import Registry, Revocation


def test_records_after_the_revocation_stay_waiting_and_the_status_says_revoked(tmp_path: Path) -> None:
    device, clock = Ed25519PrivateKey.generate(), FakeClock()
    with live_receiver(tmp_path / "rx", STATION, device) as live:
        assert live.registry_path is not None and live.cec is not None
        journal = Journal(tmp_path / "journal.db", STATION)
        uplink = HttpUplink(url=live.url, station=STATION, mode="simulation", timeout=5.0)
        up = Upstream(journal=journal, key=device, station_id=STATION, receiver_public_key=live.key.public_key(),
                      uplink=uplink, clock=clock, delays=Delays(), rng=FixedRandom(0.5))
        up.attach()
        journal.append([ev.Annotation("load", f"before {n}") for n in range(4)], clock.wall())
        assert up.drain_once().delivered_through == 4

        registry = Registry.load(live.registry_path, live.cec.public_key())
        registry.revoke(key_id(device.public_key()), STATION,
                        Revocation("2026-11-29T12:00:00.000000Z", "unit reported stolen", "CEC duty officer", 4))
        registry.sign_and_save(live.registry_path, live.cec)
        journal.append([ev.Annotation("load", f"after {n}") for n in range(3)], clock.wall())

        result = up.drain_once()
        status = up.status()
        assert (result.delivered_through, result.waiting) == (4, 3)
        assert status["refused"] == "revoked_key" and "revoked_key" in (status["last_error"] or "")
        assert status["next_attempt_in"] > 0 and up.outbox.last_seq() == 7
        assert live.storage.highest_seq(STATION) == 4
        clock.advance(up.next_attempt_in() + 0.001)
        assert up.drain_once().waiting == 3 and up.status()["failures"] == 2  # kept, retried, never dropped
        up.close()
        journal.close()
