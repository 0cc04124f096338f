"""End to end against the real receiver on loopback: faults on the wire, USB export, catch-up.

The device side is driven by ``Upstream.drain_once`` with a fake clock (the
backoff waits are skipped by advancing it); the network, TLS, the receiver and
its SQLite storage are real.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fault_proxy import FAULTS, FaultProxy, Plan, running
from upstream_fakes import STATION, FixedRandom
from upstream_live import LiveReceiver, live_receiver
from upstream_tls import make_ca, server_context

from device.core import events as ev
from device.core.delays import Delays
from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.service import Upstream
from device.upstream.switchable import SwitchableUplink
from device.upstream.uplink import HttpUplink
from protocol.chain import ZERO_HASH
from protocol.envelope import parse_line

MAX_ROUNDS = 20_000
ALL_FAULTS = {"pass": 5.0, "drop": 1.0, "reset": 1.0, "error500": 1.0, "lost_answer": 1.0, "cut_answer": 0.5,
              "duplicate": 1.0, "delay": 1.0, "stall": 0.15, "hold": 1.0}


def journal_records(journal: Journal, clock: FakeClock, count: int, chunk: int = 500) -> None:
    for start in range(0, count, chunk):
        clock.advance(1.0)
        journal.append([ev.Annotation("load", f"record {n}") for n in range(start, min(count, start + chunk))],
                       clock.wall())


def drain_until_done(up: Upstream, clock: FakeClock) -> int:
    """Call drain_once, skipping each backoff wait on the fake clock; returns the rounds used."""
    for rounds in range(1, MAX_ROUNDS):
        result = up.drain_once()
        if result.waiting == 0 and result.error is None:
            return rounds
        clock.advance(up.next_attempt_in() + 0.001)
    raise AssertionError(f"not drained after {MAX_ROUNDS} rounds: {up.status()}")


def assert_stored_exactly_once_in_order(live: LiveReceiver, up: Upstream, count: int) -> None:
    leaves = live.storage.leaves()
    stored = [parse_line(line) for _, line in leaves]
    assert live.storage.count_records() == count == len(stored)
    assert [r.seq for r in stored] == list(range(1, count + 1))
    assert [r.line() for r in stored] == [r.line() for r in up.outbox.records(1, count)]
    prev = ZERO_HASH
    for record in stored:
        assert record.fields["prev"] == prev
        prev = record.hash
    assert live.storage.highest_seq(STATION) == count == up.status()["delivered_through"]


def run_faulty(tmp_path: Path, count: int, batch: int, seed: int) -> None:
    device = Ed25519PrivateKey.generate()
    clock = FakeClock()
    ca = make_ca()
    with live_receiver(tmp_path / "rx", STATION, device) as live:
        plan = Plan(weights=ALL_FAULTS, seed=seed, delay=0.05, stall=1.2)
        proxy = FaultProxy(("127.0.0.1", live.port), plan, tls=server_context(ca, tmp_path / "tls"))
        with running(proxy):
            journal = Journal(tmp_path / "journal.db", STATION)
            uplink = HttpUplink(url=f"https://localhost:{proxy.port}", station=STATION, mode="production",
                                ca_pem=ca.pem, timeout=1.0)
            up = Upstream(journal=journal, key=device, station_id=STATION, receiver_public_key=live.key.public_key(),
                          uplink=uplink, clock=clock, delays=Delays(), rng=FixedRandom(0.3), batch_records=batch)
            up.attach()
            journal_records(journal, clock, count)
            drain_until_done(up, clock)
            assert_stored_exactly_once_in_order(live, up, count)
            up.close()
            journal.close()
        assert all(proxy.counts[f] > 0 for f in FAULTS), proxy.counts


def test_a_thousand_records_through_a_faulty_network_are_stored_exactly_once(tmp_path: Path) -> None:
    run_faulty(tmp_path, count=1_000, batch=25, seed=7)


@pytest.mark.slow
def test_ten_thousand_records_through_a_faulty_network_are_stored_exactly_once(tmp_path: Path) -> None:
    run_faulty(tmp_path, count=10_000, batch=100, seed=11)


def test_usb_export_imported_then_network_catch_up_sends_no_duplicates(tmp_path: Path) -> None:
    device = Ed25519PrivateKey.generate()
    clock = FakeClock()
    with live_receiver(tmp_path / "rx", STATION, device) as live:
        journal = Journal(tmp_path / "journal.db", STATION)
        proxy = FaultProxy(("127.0.0.1", live.port), Plan())
        with running(proxy):
            inner = HttpUplink(url=f"http://127.0.0.1:{proxy.port}", station=STATION, mode="simulation")
            link = SwitchableUplink(inner, mode="simulation")
            up = Upstream(journal=journal, key=device, station_id=STATION, receiver_public_key=live.key.public_key(),
                          uplink=link, clock=clock, rng=FixedRandom(0.5), probe_every=10.0)
            up.attach()
            journal_records(journal, clock, 300)
            link.cut_link()
            assert up.drain_once().error is not None
            export = up.export(tmp_path)
            imported = _post(f"{live.url}/api/v1/import", export.read_bytes())
            assert (imported["accepted"], imported["duplicates"]) == (300, 0)
            again = _post(f"{live.url}/api/v1/import", export.read_bytes())
            assert (again["accepted"], again["duplicates"]) == (0, 300)
            journal_records(journal, clock, 50)
            link.restore_link()
            bytes_before = proxy.bytes_in
            clock.advance(10.0)
            result = up.drain_once()
            assert (result.waiting, result.delivered_through, result.sent) == (0, 350, 50)
            assert proxy.bytes_in - bytes_before < 50 * 400
            assert_stored_exactly_once_in_order(live, up, 350)
            up.close()
        journal.close()


def _post(url: str, data: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]
