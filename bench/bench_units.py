"""Units benchmark: two desks of one station syncing check-ins over loopback HTTP.

Two appliances built by the composition root from the multi-unit demo (``device/sync/demo.py``),
each with its sync server on 127.0.0.1; desk-2's sync client is driven round by round
(``run_once``: it posts to the owner, which applies and commits before the next page is pulled).

* **sync**: desk-1 admits 3,000 voters (500 with ``quick``); one round brings them all to desk-2
  (checked signatures, applied, journaled). Seconds, and bytes of the answers plus request lines
  per record. Baselines: merely verifying the same records' Ed25519 signatures in this process
  (the least any signed-record sync must do), and the records' canonical bodies plus raw
  64-byte signatures (the least any transfer carries).
* **reconnect**: the link is cut, desk-1 admits 200 more (50), the link is restored; seconds from
  restore until desk-2 says every unit is up to date. Baseline: a round with nothing new.
* **decision p99**: a check-in decision at desk-2 (``identify_manual``, admitted, committed with
  fsync) with an empty replica, then with the 3,000 records held; value: p99 with the replica,
  baseline: p99 without. Both are dominated by the journal's fsync, so the pure step is measured too:
* **core step p99**: ``session.step`` on an identification (nothing committed) on desk-2's state with
  the records held against the same state with an empty replica, interleaved; half the voters are
  ones the replica holds (refused as admitted elsewhere), half are new. p99 and median.
* **receiver ingest**: records per second that the receiver (in this process, SQLite, through
  ``Ingestor.ingest_body``) stores for stations of three units, each unit its own chain (the main
  desk's without a ``unit``, desk-2's and the mobile unit's with one), batches of 50 interleaved as
  they would arrive. Baseline, in the same run on a fresh database: as many one-unit stations as
  there are chains, the same number of records. Each is run twice, alternated (units, one-unit,
  one-unit, units), and the better rate of each kept: every batch commits with fsync, so the machine's
  load moves single runs a lot.
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import demo_pins
from device.sync import wire
from device.sync.demo import HOME_VOTING, make_demo_units
from protocol.canonical import canonical


def _port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(quick: bool = False) -> list[dict[str, Any]]:
    return _sync(quick) + _receiver_ingest(quick)


def _receiver_ingest(quick: bool) -> list[dict[str, Any]]:
    """Records/s stored for stations of three units against as many one-unit stations (same records count)."""
    import gzip

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.bench_receiver import BATCH, JOURNAL_HASH
    from protocol.batch import encode_batch
    from protocol.chain import ZERO_HASH
    from protocol.envelope import make_record
    from protocol.keys import key_id, public_b64
    from receiver.keys import write_private
    from receiver.registry import DeviceEntry, Registry
    from receiver.service import build_receiver

    stations, per_chain = (10, 100) if quick else (30, 300)

    def chains(units: tuple[str, ...], count: int) -> list[tuple[str, Any, list[Any]]]:
        out = []
        for n in range(count):
            for unit in units:
                key, prev, records = Ed25519PrivateKey.generate(), ZERO_HASH, []
                for seq in range(1, per_chain + 1):
                    record = make_record(key=key, station=f"KG-{n:05d}", seq=seq, prev=prev, at=1.8e9 + seq,
                                         type_="turnout_snapshot", unit=unit,
                                         body={"identified": seq, "ballots": seq, "registered": 900,
                                               "journal_seq": seq * 3, "journal_hash": JOURNAL_HASH})
                    records.append(record)
                    prev = record.hash
                out.append((f"KG-{n:05d}", key, records))
        return out

    def rate(fleet: list[tuple[str, Any, list[Any]]], directory: Path) -> float:
        cec, rx_key, registry = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Registry()
        for station, key, _ in fleet:
            registry.add(DeviceEntry(station=station, serial=key_id(key.public_key()), software="bench",
                                     public_key=public_b64(key.public_key()), key_id=key_id(key.public_key()),
                                     enrolled_at="2026-11-20T00:00:00Z"))
        directory.mkdir()
        registry.sign_and_save(directory / "registry.json", cec)
        write_private(directory / "receiver.key", rx_key)
        receiver = build_receiver({"DATABASE_URL": str(directory / "rx.db"),
                                   "REGISTRY_PATH": str(directory / "registry.json"),
                                   "CEC_PUBLIC_KEY": public_b64(cec.public_key()),
                                   "RECEIVER_KEY_PATH": str(directory / "receiver.key")})
        per_chain_batches = [[gzip.compress(encode_batch(r[i:i + BATCH])) for i in range(0, len(r), BATCH)]
                             for _, _, r in fleet]
        batches = [b[k] for k in range(len(per_chain_batches[0])) for b in per_chain_batches]
        try:
            t0 = time.perf_counter()
            for body in batches:
                outcome = receiver.ingestor.ingest_body(body, "gzip", "bench")
                if outcome.rejection is not None:
                    raise RuntimeError(f"benchmark batch rejected: {outcome.rejection}")
            elapsed = time.perf_counter() - t0
            if receiver.storage.count_records() != len(fleet) * per_chain:
                raise RuntimeError("benchmark records were not all stored")
            return len(fleet) * per_chain / elapsed
        finally:
            receiver.storage.close()

    several, one = chains(("", "desk-2", "mobile"), stations), chains(("",), 3 * stations)
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-units-rx-") as tmp:  # alternated; the best of two each
        units = rate(several, Path(tmp) / "units-1")
        single = rate(one, Path(tmp) / "single-1")
        single = max(single, rate(one, Path(tmp) / "single-2"))
        units = max(units, rate(several, Path(tmp) / "units-2"))
    return [{"name": f"units: receiver ingest, {stations} stations of three units ({per_chain} records a chain), "
                     f"records/s (baseline: {3 * stations} one-unit stations, as many records)",
             "value": units, "unit": "records/s", "baseline": single, "ratio": units / single}]


def _sync(quick: bool) -> list[dict[str, Any]]:
    count, later, decisions = (500, 50, 100) if quick else (3000, 200, 300)
    pins = [p for i, p in enumerate(demo_pins(count + later + 2 * decisions + 20)) if i + 1 not in HOME_VOTING]
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-units-") as tmp:
        configs = make_demo_units(Path(tmp) / "units", voters=len(pins) + 20,
                                  web_ports=(_port(), _port(), _port()), sync_ports=(_port(), _port(), _port()))
        desk1, desk2 = (build_appliance(load_config(configs[u])) for u in ("desk-1", "desk-2"))
        try:
            return _measure(desk1, desk2, pins, count, later, decisions)
        finally:
            for app in (desk1, desk2):
                assert app.unit_sync is not None and app.unit_sync.server is not None
                app.unit_sync.server.close()
                app.stop()


def _measure(desk1: Appliance, desk2: Appliance, pins: list[str], count: int, later: int,
             decisions: int) -> list[dict[str, Any]]:
    for app in (desk1, desk2):
        app.start(background=False)
        assert app.unit_sync is not None and app.unit_sync.server is not None
        app.unit_sync.server.start()
        app.open_polls()
    sync1, sync2 = desk1.unit_sync, desk2.unit_sync
    assert sync1 is not None and sync2 is not None
    sync1.links.set("mobile", False)  # the mobile unit is out all day: nobody waits for it
    sync2.links.set("mobile", False)
    without = _decide(desk2, pins[-decisions:])
    for pin in pins[:count]:
        desk1.identify_manual(pin)
    carried = [0]
    real = sync2.client._fetch

    def counting(url: str, timeout: float, headers: dict[str, str]) -> bytes:
        raw = real(url, timeout, headers)
        carried[0] += len(raw) + len(url)
        return raw
    sync2.client._fetch = counting
    t0 = time.perf_counter()
    sync2.client.run_once()
    seconds = time.perf_counter() - t0
    assert sync2.log.held("desk-1") == count, sync2.log.held_all()
    per_record = carried[0] / count
    records = sync1.log.records_after("desk-1", 0, count)
    verify = _verify_time(records, sync2)
    least = sum(len(canonical(r["body"])) + 64 for r in records) / count

    t0 = time.perf_counter()
    sync2.client.run_once()
    idle = time.perf_counter() - t0
    sync2.links.set("desk-1", False)
    for pin in pins[count:count + later]:
        desk1.identify_manual(pin)
    sync2.client.run_once()  # a round while cut: desk-2 knows it is not up to date
    assert not sync2.status()["peers"]["desk-1"]["up_to_date"]
    sync2.links.set("desk-1", True)
    t0 = time.perf_counter()
    while not sync2.status()["peers"]["desk-1"]["up_to_date"]:
        sync2.client.run_once()
    reconnect = time.perf_counter() - t0
    with_replica = _decide(desk2, pins[-2 * decisions:-decisions])
    (step_with, step_without), (median_with, median_without) = _core_step(desk2, pins[count + later:])
    return [
        {"name": f"units: sync {count} check-ins desk to desk over loopback, s (baseline: verifying their "
                 "signatures)", "value": seconds, "unit": "s", "baseline": verify, "ratio": seconds / verify},
        {"name": "units: bytes per check-in record synced (baseline: canonical body + raw signature)",
         "value": per_record, "unit": "B/record", "baseline": least, "ratio": per_record / least},
        {"name": f"units: reconnect to all units up to date after {later} check-ins, s (baseline: a round with "
                 "nothing new)", "value": reconnect, "unit": "s", "baseline": idle, "ratio": reconnect / idle},
        {"name": f"units: check-in decision p99 with {count} other-unit records held, ms (baseline: empty "
                 "replica)", "value": with_replica, "unit": "ms", "baseline": without,
         "ratio": with_replica / without},
        {"name": f"units: core check-in step p99 with {count} other-unit records held, us (baseline: the same "
                 "state with an empty replica)", "value": step_with, "unit": "us", "baseline": step_without,
         "ratio": step_with / step_without},
        {"name": f"units: core check-in step median with {count} other-unit records held, us (baseline: the same "
                 "state with an empty replica)", "value": median_with, "unit": "us", "baseline": median_without,
         "ratio": median_with / median_without},
    ]


def _core_step(app: Appliance, pins: list[str]) -> tuple[tuple[float, float], tuple[float, float]]:
    """p99 of the pure decision (``session.step`` on an identification, nothing committed), in microseconds,
    on the unit's state as it is and on the same state with an empty replica, interleaved."""
    from dataclasses import replace

    from device.core import session as ss
    from device.core.events import CheckinMethod
    from device.core.units import Replica
    state, empty = app.state, replace(app.state, replica=Replica())
    ctx, now = app._ctx, ss.Now(app.clock.monotonic(), app.clock.wall())
    voters = [app.identity.resolve_manual(p).voter_hash for p in pins]
    held = [v for v in app.state.replica.admissions if v not in app.state.checkins][:len(voters) // 2]
    times: dict[bool, list[float]] = {True: [], False: []}
    for n, voter in enumerate(voters[: len(voters) - len(held)] + held):
        for with_replica in (True, False):
            inp = ss.Identify(voter, f"bench-{n}-{with_replica}", CheckinMethod.MANUAL)
            t0 = time.perf_counter()
            ss.step(state if with_replica else empty, app.session, inp, ctx, now)
            times[with_replica].append((time.perf_counter() - t0) * 1e6)
    p99 = statistics.quantiles(times[True], n=100)[98], statistics.quantiles(times[False], n=100)[98]
    return p99, (statistics.median(times[True]), statistics.median(times[False]))


def _decide(app: Appliance, pins: list[str]) -> float:
    """p99 of ``identify_manual`` in ms, every one admitted."""
    times = []
    for pin in pins:
        t0 = time.perf_counter()
        decision = app.identify_manual(pin)
        times.append((time.perf_counter() - t0) * 1000)
        assert decision.outcome == "admitted", decision
    return statistics.quantiles(times, n=100)[98]


def _verify_time(records: list[dict[str, Any]], sync: Any) -> float:
    key = sync.units.keys["desk-1"]
    t0 = time.perf_counter()
    for r in records:
        key.verify(base64.b64decode(r["signature"]), wire.RECORD_LABEL + canonical(r["body"]))
    return time.perf_counter() - t0
