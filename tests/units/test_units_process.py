"""Several units as they really run: three ``pollbox run`` processes of one station on loopback.

Links are cut and restored on each unit's sync server (simulation only); a unit is SIGKILLed while it
catches up; a stand-in for the mobile unit serves duplicated, reordered, replayed, foreign and forged
records with a clock an hour ahead. After each: no admission lost, every double admission is a conflict
on every unit, each journal verifies.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core import events as ev
from device.core.units import PeerCheckin
from device.demo import demo_pins
from device.sync import wire
from device.sync.demo import HOME_VOTING, make_demo_units, set_link
from tests.process_station import RunningStation, free_port
from tests.units.stations import journal_of

pytestmark = pytest.mark.slow

PINS = demo_pins(40)
HOME_PINS = [PINS[line - 1] for line in HOME_VOTING]
UNITS = ("desk-1", "desk-2", "mobile")
SYNCED_WITHIN = 60.0
FAST_SYNC = "\n[delays]\nsync_every = 0.2\nsync_timeout = 2\n"


class Units:
    """The three units' directories, sync ports and running processes."""

    def __init__(self, root: Path, receiver_url: str = "http://127.0.0.1:8090") -> None:
        self.root = root
        self.sync_ports = [free_port() for _ in UNITS]
        make_demo_units(root, voters=60, web_ports=(free_port(), free_port(), free_port()),
                        sync_ports=tuple(self.sync_ports), receiver_url=receiver_url)  # type: ignore[arg-type]
        self.running: dict[str, RunningStation] = {}

    def port(self, uid: str) -> int:
        return self.sync_ports[UNITS.index(uid)]

    def start(self, uid: str, *, open_polls: bool = True) -> RunningStation:
        config = (self.root / uid / "station.toml").read_text(encoding="utf-8")
        web = int(next(line for line in config.splitlines() if line.startswith("port = ")).split("=")[1])
        station = RunningStation(self.root / uid, web_port=web,
                                 extra_config="" if "sync_every" in config else FAST_SYNC).start()
        if open_polls and station.ok({"cmd": "status"})["poll"] == "setup":
            station.ok({"cmd": "open"})
        self.running[uid] = station
        return station

    def manual(self, uid: str, pin: str) -> str:
        return str(self.running[uid].ok({"cmd": "manual", "number": pin})["decision"]["outcome"])

    def sync_status(self, uid: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port(uid)}/units/status", timeout=5) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def link(self, a: str, b: str, up: bool) -> None:
        """Cut or restore the link between ``a`` and ``b``, on both sides (as the demo's command does)."""
        if a in self.running and b in self.running:
            set_link(self.root, a, b, up)
            return
        for here, there in ((a, b), (b, a)):
            if here in self.running:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port(here)}/units/link?peer={there}&up="
                                             f"{int(up)}", method="POST")
                urllib.request.urlopen(req, timeout=5).close()

    def wait_closed(self, uid: str, *closed: str) -> None:
        deadline = time.monotonic() + SYNCED_WITHIN
        while set(closed) - set(self.sync_status(uid)["closed"]):
            assert time.monotonic() < deadline, f"{uid} did not get the close of {closed}"
            time.sleep(0.1)  # polling pace against a named deadline

    def wait_up_to_date(self, *uids: str) -> None:
        deadline = time.monotonic() + SYNCED_WITHIN
        while time.monotonic() < deadline:
            states = {u: self.sync_status(u) for u in uids}
            own = {u: states[u]["held"].get(u, 0) for u in uids}
            if all(s["held"].get(q, 0) == own[q] and s["peers"][q]["up_to_date"]
                   for u, s in states.items() for q in uids if q != u):
                return
            time.sleep(0.1)  # polling pace against a named deadline
        raise AssertionError(f"units not up to date within {SYNCED_WITHIN} s: {states}")

    def stop_all(self) -> None:
        for station in self.running.values():
            station.stop()
        self.running.clear()

    def journal(self, uid: str) -> list[ev.Recorded]:
        return journal_of(self.root / uid)


@pytest.fixture
def units(tmp_path: Path) -> Iterator[Units]:
    u = Units(tmp_path / "units")
    yield u
    u.stop_all()


def _check_merged(units: Units) -> dict[str, list[ev.Recorded]]:
    """Stopped units: every journal verifies, every admission reached every unit, every double is a conflict."""
    journals = {uid: units.journal(uid) for uid in UNITS}
    admitted = {uid: [r.event for r in recs if isinstance(r.event, ev.VoterAdmitted)] for uid, recs in journals.items()}
    by_voter: dict[str, set[tuple[str, int]]] = {}
    for uid, events in admitted.items():
        for n, e in enumerate(events, start=1):
            by_voter.setdefault(e.voter, set()).add((uid, n))
    doubles = {v: a for v, a in by_voter.items() if len(a) > 1}
    for uid, recs in journals.items():
        applied = [r.event for r in recs if isinstance(r.event, ev.PeerCheckinApplied)]
        for other in UNITS:
            if other != uid:
                assert sorted(e.unit_seq for e in applied if e.unit == other) == \
                    list(range(1, len(admitted[other]) + 1)), f"{uid} lost an admission of {other}"
        seen: dict[str, set[tuple[str, int]]] = {}
        for r in recs:
            if isinstance(r.event, ev.UnitConflict):
                c = r.event
                seen.setdefault(c.voter, set()).update({(c.first_unit, c.first_seq), (c.second_unit, c.second_seq)})
        assert seen == doubles, f"{uid}: conflicts {seen} for double admissions {doubles}"
    return journals


def test_partitions_of_every_shape_then_a_merge(units: Units) -> None:
    for uid in UNITS:
        units.start(uid)
    assert units.manual("desk-1", PINS[0]) == "admitted"  # outside a partition
    units.wait_up_to_date(*UNITS)
    assert units.manual("desk-2", PINS[0]) == "admitted_elsewhere"
    assert units.manual("desk-1", HOME_PINS[0]) == "home_voting"
    units.link("desk-1", "desk-2", False)  # desk/desk partition; the mobile unit goes out of reach
    units.link("mobile", "desk-1", False)
    units.link("mobile", "desk-2", False)
    assert units.manual("desk-1", PINS[1]) == "admitted"
    assert units.manual("desk-2", PINS[1]) == "admitted"  # the same voter inside the partition
    assert units.manual("desk-2", PINS[2]) == "admitted"
    assert units.manual("mobile", HOME_PINS[0]) == "admitted"
    assert units.manual("mobile", HOME_PINS[1]) == "admitted"
    for a, b in (("desk-1", "desk-2"), ("mobile", "desk-1"), ("mobile", "desk-2")):
        units.link(a, b, True)
    units.wait_up_to_date(*UNITS)
    for uid in UNITS:
        alarms = [a["kind"] for a in units.running[uid].ok({"cmd": "status"})["alarms"]]
        assert alarms.count("unit_conflict") == 1, (uid, alarms)
    refused = units.running["desk-1"].control({"cmd": "close"})
    assert not refused.get("ok") and "desk-2, mobile" in refused["error"]
    units.running["desk-2"].ok({"cmd": "close"})
    units.running["mobile"].ok({"cmd": "close"})
    units.wait_closed("desk-1", "desk-2", "mobile")
    report = units.running["desk-1"].ok({"cmd": "close"})
    assert report["units"]["total"]["identified"] == 6 and report["units"]["mobile"]["identified"] == 2
    assert report["units"]["conflicts"] == 1 and report["units"]["absent"] == []
    units.stop_all()
    journals = _check_merged(units)
    assert sum(isinstance(r.event, ev.UnitConflict) for r in journals["mobile"]) == 1


def test_a_unit_killed_while_it_catches_up_resumes_without_loss(units: Units) -> None:
    for uid in ("desk-1", "desk-2"):
        units.start(uid)
    units.link("desk-1", "desk-2", False)
    for pin in PINS[:30]:
        if pin not in HOME_PINS:
            assert units.manual("desk-1", pin) == "admitted"
    units.link("desk-1", "desk-2", True)
    victim = units.running.pop("desk-2")
    assert victim.proc is not None
    victim.proc.kill()  # SIGKILL, somewhere in its catching up
    victim.proc.wait(10)
    units.start("desk-2")
    units.start("mobile")
    units.wait_up_to_date(*UNITS)
    units.running["desk-2"].ok({"cmd": "close"})
    units.wait_closed("desk-1", "desk-2")
    units.running["desk-1"].ok({"cmd": "close-without", "unit": "mobile", "reason": "the mobile team is still out"})
    report = units.running["desk-1"].ok({"cmd": "close"})
    assert report["units"]["absent"] == ["mobile"]
    units.stop_all()
    _check_merged(units)


class _StandIn:
    """A stand-in at the mobile unit's address serving what a broken or hostile peer might."""

    def __init__(self, port: int, make: Any) -> None:
        def handler(*args: Any) -> BaseHTTPRequestHandler:
            class H(BaseHTTPRequestHandler):
                def log_message(self, format: str, *a: Any) -> None:  # noqa: A002
                    pass

                def do_GET(self) -> None:  # noqa: N802
                    body = make(self.path)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
            return H(*args)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_bad_records_from_a_peer_are_refused_with_reasons_and_nothing_lost(units: Units) -> None:
    units.start("desk-1")
    units.start("desk-2")
    units.link("desk-1", "desk-2", False)  # desk-2 gets desk-1's records only through the stand-in
    for pin in PINS[:3]:
        assert units.manual("desk-1", pin) == "admitted"
    with urllib.request.urlopen(f"http://127.0.0.1:{units.port('desk-1')}/units/records?unit=desk-1&after=0",
                                timeout=5) as answer:
        real = json.loads(answer.read())["records"]
    voter = real[0]["body"]["voter"]
    impostor = Ed25519PrivateKey.generate()
    forged = wire.sign(PeerCheckin("KG-DEMO-0001", "desk-1", 4, voter, 1, 1_800_000_000.0, 9), impostor)
    foreign = wire.sign(PeerCheckin("KG-OTHER-0002", "desk-1", 4, voter, 1, 1_800_000_000.0, 9), impostor)
    served = [0]

    def answer(path: str) -> bytes:
        served[0] += 1
        records = [] if "unit=desk-1" not in path else [real[2], real[0], real[1], real[0], forged, foreign]
        return wire.message("KG-DEMO-0001", "mobile", time.time() + 3600, records, {"mobile": 0})
    stand_in = _StandIn(units.port("mobile"), answer)
    try:
        deadline = time.monotonic() + SYNCED_WITHIN
        while units.sync_status("desk-2")["held"].get("desk-1", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling pace against a named deadline
        status = units.running["desk-2"].ok({"cmd": "status"})
    finally:
        stand_in.close()
    assert "unit_clock_drift" in [a["kind"] for a in status["alarms"]]
    units.stop_all()
    recs = units.journal("desk-2")
    applied = [r.event for r in recs if isinstance(r.event, ev.PeerCheckinApplied)]
    assert [e.unit_seq for e in applied] == [1, 2, 3]  # reordered and duplicated: each applied once, in order
    reasons = [r.event.reason for r in recs if isinstance(r.event, ev.PeerRecordRefused)]
    assert any("replayed" in r for r in reasons)
    assert any("signature does not verify" in r for r in reasons)
    assert any("another station" in r for r in reasons)


def test_the_demo_units_directory_is_rebuilt_only_when_missing(tmp_path: Path) -> None:
    root = tmp_path / "u"
    first = make_demo_units(root, voters=10, web_ports=(1, 2, 3), sync_ports=(4, 5, 6))
    before = first["desk-1"].read_text()
    again = make_demo_units(root, voters=10, web_ports=(7, 8, 9), sync_ports=(10, 11, 12))
    assert again["desk-1"].read_text() == before
    shutil.rmtree(root / "mobile")
    rebuilt = make_demo_units(root, voters=10, web_ports=(1, 2, 3), sync_ports=(4, 5, 6))
    assert 'id = "mobile"' in rebuilt["mobile"].read_text()
