"""Three ``pollbox run`` units of one station uploading their own chains to a real ``pollbox-receiver`` process.

Each unit is enrolled with its own key; desk-2 and the mobile unit sign their unit id into their records.
After a partition, a double admission and a merge, the receiver holds each unit's records exactly once (the
same lines as the unit's outbox, one chain per unit, each verifying from seq 1), the overview shows the
conflict once, and the station's results are the main desk's combined totals.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.chain import check_chains
from protocol.envelope import parse_line
from tests.process_station import child_env, free_port
from tests.units.test_units_process import HOME_PINS, PINS, UNITS, Units, _check_merged

pytestmark = pytest.mark.slow

STATION = "KG-DEMO-0001"
RECEIVER_START_WITHIN = 60.0  # seconds for the receiver process to answer its first request
DELIVERED_WITHIN = 60.0  # seconds for every unit's outbox to be receipted after the last event
DEMO_STOP_WITHIN = 90.0  # seconds for the demo to stop its three units and the receiver after SIGTERM
TAIL = 4000  # characters of a process's stderr a failure quotes (its end)


class Receiver:
    """``pollbox-receiver serve`` on loopback, with the three units' keys enrolled for the demo station."""

    def __init__(self, root: Path, units_dir: Path, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{self.port}"
        first = units_dir / UNITS[0]
        registry = root / "registry.json"
        for uid, role in zip(UNITS, ("main", "desk", "mobile"), strict=True):  # each key for its unit
            subprocess.run([sys.executable, "-m", "receiver.cli", "enroll", "--registry", str(registry),
                            "--cec-key", str(first / "cec.key"), "--station", STATION, "--public-key-file",
                            str(units_dir / uid / "data" / "device.pub"), "--serial", uid, "--software", "demo",
                            "--unit", uid, "--role", role], check=True, env=child_env(), capture_output=True)
        self.stderr_path = root / "receiver.stderr"  # a file: a pipe nobody reads while it runs fills up
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "receiver.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--db", str(root / "receiver.db"), "--registry", str(registry), "--cec-public-key-file",
                 str(first / "cec.pub"), "--key", str(first / "receiver.key"), "--threads", "2"],
                env=child_env(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + RECEIVER_START_WITHIN
        while True:
            assert self.proc.poll() is None, f"the receiver ended with {self.proc.returncode}: {self.said()}"
            try:
                self.get("/api/v1/tree/head")
                return
            except OSError:
                assert time.monotonic() < deadline, f"the receiver did not start: {self.said()}"
                time.sleep(0.1)  # polling pace against a named deadline

    def said(self) -> str:
        """The end of the receiver's stderr."""
        return self.stderr_path.read_text(errors="replace")[-TAIL:]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if path.startswith("/api/") else body.decode("utf-8")

    def lines(self) -> list[str]:
        size = int(self.get("/api/v1/tree/head")["size"])
        out: list[str] = []
        while len(out) < size:
            out += [e["line"] for e in self.get(f"/api/v1/tree/entries?start={len(out)}&end={size}")["entries"]]
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


@pytest.fixture
def receiver_and_units(tmp_path: Path) -> Iterator[tuple[Receiver, Units]]:
    port = free_port()  # the package names the receiver's address, so its port is chosen first
    units = Units(tmp_path / "units", receiver_url=f"http://127.0.0.1:{port}")
    receiver = Receiver(tmp_path, units.root, port)
    yield receiver, units
    units.stop_all()
    receiver.stop()


def wait_delivered(units: Units) -> None:
    """Every running unit's outbox receipted by the receiver (its signed receipt names the unit's chain)."""
    deadline = time.monotonic() + DELIVERED_WITHIN
    while True:
        states = {uid: units.running[uid].ok({"cmd": "status"})["upstream"] for uid in units.running}
        if all(s["waiting"] == 0 and s["last_seq"] > 0 for s in states.values()):
            return
        assert time.monotonic() < deadline, f"not delivered within {DELIVERED_WITHIN} s: {states}"
        time.sleep(0.2)  # polling pace against a named deadline


def outbox_lines(units: Units, uid: str) -> list[str]:
    conn = sqlite3.connect(units.root / uid / "data" / "journal.db")
    try:
        return [str(line) for (line,) in conn.execute("SELECT line FROM outbox ORDER BY seq")]
    finally:
        conn.close()


def test_each_units_chain_reaches_the_receiver_once(receiver_and_units: tuple[Receiver, Units]) -> None:
    receiver, units = receiver_and_units
    for uid in UNITS:
        units.start(uid)
    assert units.manual("desk-1", PINS[0]) == "admitted"
    units.wait_up_to_date(*UNITS)
    units.link("desk-1", "desk-2", False)
    units.link("mobile", "desk-1", False)
    units.link("mobile", "desk-2", False)
    assert units.manual("desk-1", PINS[1]) == "admitted"
    assert units.manual("desk-2", PINS[1]) == "admitted"  # the same voter at two desks, cut off from each other
    assert units.manual("desk-2", PINS[2]) == "admitted"
    assert units.manual("mobile", HOME_PINS[0]) == "admitted"
    for a, b in (("desk-1", "desk-2"), ("mobile", "desk-1"), ("mobile", "desk-2")):
        units.link(a, b, True)
    units.wait_up_to_date(*UNITS)
    units.running["desk-2"].ok({"cmd": "close"})
    units.running["mobile"].ok({"cmd": "close"})
    units.wait_closed("desk-1", "desk-2", "mobile")
    report = units.running["desk-1"].ok({"cmd": "close"})
    total = report["units"]["total"]
    assert total["identified"] == 5
    wait_delivered(units)
    units.stop_all()
    _check_merged(units)

    chains = check_chains(parse_line(line) for line in receiver.lines())  # every chain verifies from seq 1
    assert sorted(chains) == [(STATION, ""), (STATION, "desk-2"), (STATION, "mobile")]
    for uid, unit in (("desk-1", ""), ("desk-2", "desk-2"), ("mobile", "mobile")):
        held = [record.line() for record in chains[(STATION, unit)]]
        assert held == outbox_lines(units, uid), f"{uid}: the receiver does not hold its records exactly once"
        assert len(set(held)) == len(held)

    overview = receiver.get("/")
    row = next(r for r in overview.split("<tbody>")[1].split("</tr>") if STATION in r)
    assert "1 unit conflict(s)" in row
    result = receiver.get(f"/api/v1/results/{STATION}")["station"]
    assert (result["identified"], result["ballots"]) == (total["identified"], total["ballots"])
    assert result["phase"] == "closed"
    page = receiver.get(f"/stations/{STATION}")
    assert "desk-2" in page.split('<table class="units">')[1] and "mobile" in page.split('<table class="units">')[1]
    # every unit raised the conflict's alarm in its own journal: three alarms of the station, one per unit
    raised_by = re.findall(r"<td>(main|desk-2|mobile)</td><td>\d+</td><td>unit_conflict</td>", page)
    assert sorted(raised_by) == ["desk-2", "main", "mobile"], raised_by


def test_the_demo_runs_a_receiver_that_takes_each_units_chain(tmp_path: Path) -> None:
    """``python -m device.sync.demo DIR``: three units and the reference receiver with their keys enrolled;
    once each unit opens the polls, the receiver holds a chain per unit. SIGTERM stops all four."""
    import signal

    from device.control import request
    from device.sync.demo import make_demo_units

    port = free_port()
    root = tmp_path / "demo"
    make_demo_units(root, voters=60, web_ports=(free_port(), free_port(), free_port()),
                    sync_ports=(free_port(), free_port(), free_port()), receiver_url=f"http://127.0.0.1:{port}")
    said = tmp_path / "demo.out", tmp_path / "demo.err"  # files, not pipes: nothing read them while it runs,
    with open(said[0], "wb") as out, open(said[1], "wb") as err:  # and a full pipe would stall all four
        demo = subprocess.Popen([sys.executable, "-m", "device.sync.demo", str(root)], env=child_env(),
                                stdout=out, stderr=err)

    def tail() -> str:
        return "\n--- the demo's stderr, its end:\n" + said[1].read_text(errors="replace")[-TAIL:]
    try:
        deadline = time.monotonic() + RECEIVER_START_WITHIN
        waiting = set(UNITS)
        while waiting:
            assert demo.poll() is None, f"the demo ended with {demo.returncode}" + tail()
            assert time.monotonic() < deadline, f"units not ready: {waiting}" + tail()
            for uid in sorted(waiting):
                try:
                    if request(root / uid / "data" / "control.sock", {"cmd": "open"}, timeout=5.0).get("ok"):
                        waiting.discard(uid)
                except (ConnectionError, OSError, ValueError):
                    pass
            time.sleep(0.2)  # polling pace against a named deadline
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + DELIVERED_WITHIN
        while True:
            try:
                with urllib.request.urlopen(base + "/api/v1/tree/entries?start=0", timeout=5) as answer:
                    lines = [e["line"] for e in json.loads(answer.read())["entries"]]
            except OSError:
                lines = []
            opened = {(r.unit, r.type) for r in map(parse_line, lines)}
            if {("", "polls_opened"), ("desk-2", "polls_opened"), ("mobile", "polls_opened")} <= opened:
                break
            assert time.monotonic() < deadline, f"the receiver got only {sorted(opened)}" + tail()
            time.sleep(0.2)  # polling pace against a named deadline
        assert sorted(check_chains(map(parse_line, lines))) == [(STATION, ""), (STATION, "desk-2"), (STATION, "mobile")]
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(DEMO_STOP_WITHIN)
    assert demo.returncode == 0, tail()
    assert f"the CEC receiver: http://127.0.0.1:{port}/" in said[0].read_text()
    devices = json.loads((root / "registry.json").read_text())["devices"]
    assert sorted((d["unit"], d["role"]) for d in devices) == [("desk-1", "main"), ("desk-2", "desk"),
                                                               ("mobile", "mobile")]


def _held_demo(tmp_path: Path, hold: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the units demo while this test listens on the receiver's port or desk-1's screen port."""
    import socket

    from device.sync.demo import make_demo_units

    receiver, desk_1 = free_port(), free_port()
    make_demo_units(tmp_path / "demo", voters=20, web_ports=(desk_1, free_port(), free_port()),
                    sync_ports=(free_port(), free_port(), free_port()), receiver_url=f"http://127.0.0.1:{receiver}")
    held = receiver if hold == "receiver" else desk_1
    with socket.create_server(("127.0.0.1", held)):
        done = subprocess.run([sys.executable, "-m", "device.sync.demo", str(tmp_path / "demo")], env=child_env(),
                              capture_output=True, text=True, timeout=DEMO_STOP_WITHIN + RECEIVER_START_WITHIN)
    return done, held


def test_the_demo_refuses_a_receiver_port_in_use_at_once(tmp_path: Path) -> None:
    done, held = _held_demo(tmp_path, "receiver")
    assert done.returncode == 2, done.stderr[-TAIL:]
    assert (f"the demo's CEC receiver cannot listen on 127.0.0.1:{held}: the port is already in use"
            in done.stderr), done.stderr[-TAIL:]


def test_the_demo_stops_when_a_unit_cannot_start(tmp_path: Path) -> None:
    done, held = _held_demo(tmp_path, "desk-1")
    assert done.returncode == 1, done.stderr[-TAIL:]
    assert f"the chair's screen cannot listen on 127.0.0.1:{held}" in done.stderr, done.stderr[-TAIL:]
    assert "desk-1 ended (exit code 2; its error is above); stopping the others" in done.stderr, done.stderr[-TAIL:]
