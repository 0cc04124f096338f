"""mDNS discovery of the station's other units (``[unit] discovery = "mdns"``, ``device/sync/discovery.py``).

The pure parts (which announcements count, the order of addresses tried) are checked in process. The real
thing runs two ``pollbox run`` units in two network namespaces joined by a veth pair, because this host's
loopback carries no multicast: their package gives each other only loopback addresses, which do not reach
across namespaces, so every record they exchange travelled to an address found by mDNS. A third process
announces itself as the mobile unit (with its real, public key id) and serves forged records: they are
refused against the enrolled key and nothing of them is applied. Skipped, with the reason, where network
namespaces cannot be made (not root, no ``ip``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.control import request
from device.core import events as ev
from device.demo import demo_pins
from device.sync.client import SyncClient
from device.sync.demo import make_demo_units
from device.sync.discovery import SERVICE_TYPE, instance_name, peer_from_txt
from protocol.keys import decode_public_key, key_id
from tests.process_station import child_env, free_port
from tests.units.stations import journal_of

PINS = demo_pins(40)
ENROLLED = {"desk-1": "k1", "desk-2": "k2", "mobile": "k3"}


def txt(**fields: str) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"v": "1", "station": "KG-1", "unit": "desk-2", "key": "k2"}, "desk-2"),
    ({"v": "1", "station": "KG-2", "unit": "desk-2", "key": "k2"}, None),  # another station
    ({"v": "1", "station": "KG-1", "unit": "desk-9", "key": "k2"}, None),  # a unit the package does not list
    ({"v": "1", "station": "KG-1", "unit": "desk-1", "key": "k1"}, None),  # this unit itself
    ({"v": "1", "station": "KG-1", "unit": "desk-2", "key": "k9"}, None),  # not the key enrolled for desk-2
    ({"v": "2", "station": "KG-1", "unit": "desk-2", "key": "k2"}, None),  # another TXT version
    ({"station": "KG-1", "unit": "desk-2"}, None),
])
def test_only_another_unit_of_this_station_with_its_enrolled_key_counts(fields: dict[str, str],
                                                                        expected: str | None) -> None:
    assert peer_from_txt(txt(**fields), "KG-1", "desk-1", ENROLLED) == expected


def test_an_instance_name_is_one_dns_label() -> None:
    name = instance_name("KG-" + "9" * 70, "desk-2")
    assert name.endswith("." + SERVICE_TYPE) and len(name.removesuffix("." + SERVICE_TYPE).encode()) <= 63


def test_the_packages_address_is_tried_before_the_one_mdns_found() -> None:
    found = {"desk-2": "10.0.0.99:8471", "mobile": "10.0.0.13:8471"}
    client: Any = SyncClient.__new__(SyncClient)
    client._discovered = found.get
    assert client.candidates("desk-2", "10.0.0.12:8471") == [("10.0.0.12:8471", "package"),
                                                             ("10.0.0.99:8471", "mdns")]
    assert client.candidates("mobile", "") == [("10.0.0.13:8471", "mdns")]
    assert client.candidates("mobile", "10.0.0.13:8471") == [("10.0.0.13:8471", "package")]
    assert client.candidates("desk-3", "") == []


# Two units in two network namespaces -------------------------------------------------------------------

A, B = "10.231.0.1", "10.231.0.2"
SYNCED_WITHIN = 60.0
READY_WITHIN = 60.0


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair (A in the first, B in the second), with multicast."""
    if shutil.which("ip") is None:
        pytest.skip("network namespaces unavailable: no 'ip' command (iproute2)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces unavailable: making them needs root")
    tag = f"pbx{os.getpid() % 100000}"
    ns = (f"{tag}a", f"{tag}b")
    made = _ip("netns", "add", ns[0])
    if made.returncode != 0:
        pytest.skip(f"network namespaces unavailable here: ip netns add said {made.stderr.strip()!r}")
    try:
        steps = [("netns", "add", ns[1]), ("link", "add", f"{tag}x", "type", "veth", "peer", "name", f"{tag}y"),
                 ("link", "set", f"{tag}x", "netns", ns[0]), ("link", "set", f"{tag}y", "netns", ns[1]),
                 ("-n", ns[0], "addr", "add", f"{A}/24", "dev", f"{tag}x"),
                 ("-n", ns[1], "addr", "add", f"{B}/24", "dev", f"{tag}y")]
        for n, dev in ((ns[0], f"{tag}x"), (ns[1], f"{tag}y")):
            steps += [("-n", n, "link", "set", "lo", "up"), ("-n", n, "link", "set", dev, "multicast", "on"),
                      ("-n", n, "link", "set", dev, "up")]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"network namespaces unavailable here: ip {' '.join(step)} said {done.stderr.strip()!r}")
        yield ns
    finally:
        for n in ns:
            _ip("netns", "delete", n)  # takes the veth pair with it


class NsUnit:
    """``pollbox run`` of one demo unit inside a network namespace, driven through its control socket."""

    def __init__(self, directory: Path, ns: str) -> None:
        self.dir, self.ns = directory, ns
        self.socket = directory / "data" / "control.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NsUnit:
        self.socket.unlink(missing_ok=True)
        with open(self.dir / "process.stderr", "wb") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "device.cli",
                                          "--config", str(self.dir / "station.toml"), "run"],
                                         stdout=subprocess.DEVNULL, stderr=err, cwd=self.dir, env=child_env())
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"pollbox run exited:\n{self.stderr()}"
            try:
                if request(self.socket, {"cmd": "status"}, timeout=2.0).get("ok"):
                    return self
            except (ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.1)  # polling pace against a named deadline
        raise AssertionError(f"pollbox run not ready within {READY_WITHIN:g} s:\n{self.stderr()}")

    def ok(self, payload: dict[str, Any]) -> Any:
        answer = request(self.socket, payload, timeout=10.0)
        assert answer.get("ok"), f"{payload.get('cmd')}: {answer.get('error')}"
        return answer.get("result")

    def units(self) -> dict[str, Any]:
        return self.ok({"cmd": "status"})["units"]  # type: ignore[no-any-return]

    def stderr(self) -> str:
        path = self.dir / "process.stderr"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_for(what: str, check: Any, *units: NsUnit) -> None:
    deadline = time.monotonic() + SYNCED_WITHIN
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {SYNCED_WITHIN:g} s:\n" + "\n".join(
            u.stderr()[-3000:] for u in units)
        time.sleep(0.2)  # polling pace against a named deadline


@pytest.mark.slow
def test_two_units_find_each_other_by_mdns_and_forged_records_are_refused(lan: tuple[str, str],
                                                                          tmp_path: Path) -> None:
    root = tmp_path / "units"
    sync = (free_port(), free_port(), free_port())
    # The package's addresses are 127.0.0.1:<port>: inside a namespace they lead nowhere, so only mDNS helps.
    make_demo_units(root, voters=60, web_ports=(free_port(), free_port(), free_port()), sync_ports=sync,
                    receiver_url="http://127.0.0.1:9")
    for uid, host, port in (("desk-1", A, sync[0]), ("desk-2", B, sync[1])):
        config = root / uid / "station.toml"
        config.write_text(config.read_text(encoding="utf-8") + f'listen = "{host}:{port}"\ndiscovery = "mdns"\n'
                          "\n[delays]\nsync_every = 0.2\nsync_timeout = 2\n", encoding="utf-8")
    mobile_key = key_id(decode_public_key((root / "mobile" / "data" / "device.pub").read_text().strip()))
    desk1, desk2 = NsUnit(root / "desk-1", lan[0]), NsUnit(root / "desk-2", lan[1])
    impostor: subprocess.Popen[str] | None = None
    try:
        for unit in (desk1, desk2):
            unit.start().ok({"cmd": "open"})
        assert desk1.ok({"cmd": "manual", "number": PINS[0]})["decision"]["outcome"] == "admitted"
        wait_for("desk-2 holding desk-1's admission", lambda: desk2.units()["held"].get("desk-1", 0) >= 1,
                 desk1, desk2)
        refused = desk2.ok({"cmd": "manual", "number": PINS[0]})["decision"]
        assert refused["outcome"] != "admitted"  # admitted at desk-1: refused here
        assert desk2.ok({"cmd": "manual", "number": PINS[1]})["decision"]["outcome"] == "admitted"
        wait_for("desk-1 holding desk-2's admission", lambda: desk1.units()["held"].get("desk-2", 0) >= 1,
                 desk1, desk2)
        for unit, peer, host in ((desk1, "desk-2", B), (desk2, "desk-1", A)):
            seen = unit.units()["peers"][peer]
            assert seen["found_by"] == "mdns" and seen["address"].startswith(f"{host}:"), seen
        # An impostor announces itself as the mobile unit (its key id is public) and serves a forged record.
        voter = "ab" * 32  # never looked at: the signature is checked first
        impostor = subprocess.Popen(["ip", "netns", "exec", lan[1], sys.executable, "-m", "tests.units.mdns_impostor",
                                     "KG-DEMO-0001", "mobile", mobile_key, B, str(free_port()), voter],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                                    cwd=Path(__file__).resolve().parents[2])
        wait_for("desk-1 pulling from the impostor", lambda: desk1.units()["peers"]["mobile"]["found_by"] == "mdns",
                 desk1, desk2)
    finally:
        said = ""
        if impostor is not None:
            impostor.terminate()
            said = "".join(impostor.communicate(timeout=30))
        for unit in (desk1, desk2):
            unit.stop()
    records = journal_of(root / "desk-1")
    applied = [r.event for r in records if isinstance(r.event, ev.PeerCheckinApplied)]
    assert [(e.unit, e.unit_seq) for e in applied] == [("desk-2", 1)]  # nothing of the impostor's
    assert "SERVED" in said, said  # the impostor was asked, and answered
    reasons = [r.event.reason for r in records if isinstance(r.event, ev.PeerRecordRefused)]
    assert any("record 1 of unit mobile: the signature does not verify against the unit's enrolled key" in r
               for r in reasons), reasons
    assert [(e.unit, e.unit_seq) for e in (r.event for r in journal_of(root / "desk-2"))
            if isinstance(e, ev.PeerCheckinApplied)] == [("desk-1", 1)]



def test_mdns_without_the_library_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from device.sync.discovery import Discovery, DiscoveryError

    monkeypatch.setitem(sys.modules, "zeroconf", None)  # import zeroconf now fails, as where it is not installed
    discovery = Discovery(station="KG-1", own="desk-1", own_key_id="k1", enrolled=ENROLLED, listen="")
    with pytest.raises(DiscoveryError, match='needs the zeroconf library .* or set discovery = "static"'):
        discovery.start()
