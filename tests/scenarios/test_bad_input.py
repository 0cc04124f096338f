"""Fault family: bad input at the desk — an odd byte in a document, an impossible personal number,
licence data as keyboard-mode scanners really send it, and a list key that is not the package's.

The camera scenarios put a camera source (its real reading loop and thread,
fed scripted frames) in place of the demo's simulated scanner, so the
appliance's own callbacks see what a camera delivers. One scenario runs
``pollbox run`` as a real process and acts on it through the control socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device import demo_documents as docs
from device.appliance import Appliance
from device.core import events as ev
from device.core.voterkey import voter_hash
from device.demo import AAMVA_KEY
from device.hardware.clock import FakeClock
from device.hardware.decoders.frames import FrameSkipper
from device.hardware.interfaces import ScanRead
from device.hardware.scanners.camera import CameraSource
from device.package import list_key_check, sign_package, voters_digest

POLL_DATE = "2026-11-29"
FUTURE = docs.make_pin(sex=1, day=1, month=1, year=2099, serial=4242)
"""A personal number of someone born in 2099, put on the voter list: the list must not make it valid."""
WAIT = 60.0
"""How long a test waits for the scanner thread before it calls it stuck (never reached when it works)."""


def odd_licence() -> str:
    """The demo driver's licence with ``²³`` where the header's number of entries is."""
    text = docs.make_aamva()
    at = text.index("ANSI ") + len("ANSI ") + 10
    return text[:at] + "²³" + text[at + 2:]


def keyboard_mode_licence() -> str:
    """The demo licence as a keyboard-mode scanner types it: a byte-order mark, a noise line, ``|`` separators."""
    piped = docs.make_aamva().replace("\n", "|").replace("\x1e", "|").replace("\r", "|")
    return "\ufeffSCANNER 2D\n" + piped


def resign(station_dir: Path, *, voters: tuple[str, ...] = (FUTURE,), key_check: bool = True) -> None:
    """Give the demo package a polling day, extra voters and the list key's check, signed again by its CEC key."""
    path = station_dir / "station-package.json"
    payload: dict[str, Any] = json.loads(path.read_bytes())["payload"]
    list_key = (station_dir / "data" / "list.key").read_bytes()
    payload["election"]["poll_date"] = POLL_DATE
    entries = payload["voters"]["entries"]
    for pin in voters:
        entries.append([voter_hash(list_key, pin), len(entries) + 1, "Born Later"])
    payload["voters"].update(entries=entries, digest=voters_digest(entries), count=len(entries))
    if key_check:
        payload["voters"]["key_check"] = list_key_check(list_key)
    cec = Ed25519PrivateKey.from_private_bytes((station_dir / "cec.key").read_bytes())  # the demo's raw key
    path.write_bytes(sign_package(payload, cec))


# A camera in front of the appliance ---------------------------------------------------------------

class Decoder:
    """The frames are the decoded text; a frame ``CRASH`` makes the decoder fail (a damaged frame)."""

    name = "fake"

    def decode(self, gray: Any) -> list[ScanRead]:
        if gray == "CRASH":
            raise RuntimeError("the decoder failed on this frame")
        return [ScanRead(str(gray), "pdf417", self.name)] if gray else []


class EveryFrame(FrameSkipper):
    """These frames are payloads, not images: none is skipped."""

    def wants(self, gray: Any) -> bool:
        return True


class Camera:
    """Waits for the polls to open and shows its frames; the last camera then says so, waits to be
    released and is unplugged (the test is over)."""

    def __init__(self, frames: list[str], script: Script) -> None:
        self.frames, self.script = list(frames), script

    def grab(self) -> str:
        assert self.script.polls_open.wait(WAIT)
        if self.frames:
            return self.frames.pop(0)
        if not self.script.cameras:
            self.script.shown.set()
            self.script.release.wait(WAIT)
            raise OSError(19, "No such device")
        return ""

    def close(self) -> None:
        pass


class Script:
    """One camera per opening; the last one signals when all its frames were shown."""

    def __init__(self, *cameras: list[str]) -> None:
        self.cameras = list(cameras)
        self.polls_open, self.shown, self.release = threading.Event(), threading.Event(), threading.Event()

    def opener(self) -> Camera | None:
        return Camera(self.cameras.pop(0), self) if self.cameras else None


@pytest.fixture
def camera_app(make_app: Callable[..., Appliance]) -> Iterator[Callable[[Script], tuple[Appliance, CameraSource]]]:
    """An appliance whose scanner is a camera playing ``script``, started and with the polls open."""
    played: list[tuple[Script, CameraSource]] = []

    def make(script: Script) -> tuple[Appliance, CameraSource]:
        app = make_app(start=False)
        source = CameraSource(decoder=Decoder(), opener=script.opener, skipper=EveryFrame(),
                              wait=lambda seconds: script.release.is_set())  # no real waiting until released
        app.scanner = source
        played.append((script, source))
        app.start(background=False)
        app.open_polls()
        script.polls_open.set()
        assert script.shown.wait(WAIT), "the camera thread stopped reading"
        app.settle()
        return app, source

    yield make
    for script, source in played:
        script.release.set()  # the camera is unplugged, the source's thread ends on its own
        source.stop()


def alarm_kinds(app: Appliance) -> list[str]:
    return [a["kind"] for a in app.status()["alarms"]]


def test_odd_byte_in_a_licence_on_the_camera_is_refused_and_the_next_voter_admitted(
        camera_app: Callable[[Script], tuple[Appliance, CameraSource]], pins: list[str]) -> None:
    app, source = camera_app(Script([odd_licence(), pins[0]]))
    status = app.status()
    assert status["counters"]["refusals"] == {"invalid_document": 1}
    assert status["counters"]["identified"] == 1 and status["last_decision"]["outcome"] == "admitted"
    assert status["scanner"]["state"] == "connected" and source.faults == 0
    assert "scanner_lost" not in alarm_kinds(app)


def test_camera_reading_loop_that_fails_raises_the_scanner_alarm_and_reads_again(
        camera_app: Callable[[Script], tuple[Appliance, CameraSource]], pins: list[str]) -> None:
    app, source = camera_app(Script(["CRASH"], [pins[0]]))
    assert source.faults == 1
    assert alarm_kinds(app) == ["scanner_lost"]  # reported while the loop was down
    assert app.status()["scanner"]["state"] == "connected"  # and connected again once restarted
    assert app.status()["last_decision"]["outcome"] == "admitted"
    changes = [e.status for e in (r.event for r in app.journal.recorded())
               if isinstance(e, ev.DeviceStatusChanged) and e.part == "scanner"]
    assert changes[-2:] == ["disconnected", "connected"]


# Impossible personal numbers ---------------------------------------------------------------------

def test_a_voter_born_after_the_election_is_refused_scanned_or_typed(station_dir: Path, clock: FakeClock,
                                                                       make_app: Callable[..., Appliance]) -> None:
    resign(station_dir)
    app = make_app()
    app.open_polls()
    typed = app.identify_manual(FUTURE)
    clock.advance(app.delays.duplicate_read_window + 1)
    scanned = app.identify(ScanRead(FUTURE, "code128", "test"))
    for decision in (typed, scanned):
        assert decision.outcome == "invalid_document"
        assert decision.reason.startswith(f"born_after_election: the birth date in the personal number is after "
                                          f"the election day ({POLL_DATE})")
    assert app.status()["counters"]["identified"] == 0


# Licence data from keyboard-mode scanners -----------------------------------------------------------

KEYBOARD_MODE = {
    "mark, noise line and pipes": keyboard_mode_licence(),
    "version 1 header with a jurisdiction version": docs.make_aamva(version=1, jurisdiction=True, separators=False),
}


@pytest.mark.parametrize("name", KEYBOARD_MODE)
def test_keyboard_mode_licence_data_admits_its_holder(name: str, app: Appliance) -> None:
    assert AAMVA_KEY == "636000:D12345678"  # the licence holder on the demo list
    app.open_polls()
    assert app.sim is not None
    app.sim.type_keys(KEYBOARD_MODE[name], "us")
    app.settle()
    assert app.status()["last_decision"]["outcome"] == "admitted"


# A list key that is not the package's --------------------------------------------------------------

def test_a_wrong_list_key_stops_the_station_at_start_with_the_reason(station_dir: Path,
                                                                     make_app: Callable[..., Appliance]) -> None:
    from device.identity import IdentityError
    resign(station_dir, voters=())
    (station_dir / "data" / "list.key").write_bytes(bytes(range(32)))
    with pytest.raises(IdentityError, match="does not belong to the station package of .*install-package"):
        make_app(start=False)


# The real process ------------------------------------------------------------------------------------

def test_a_running_station_answers_bad_input_and_keeps_reading(station_dir: Path) -> None:
    from tests.process_station import RunningStation
    resign(station_dir)
    station = RunningStation(station_dir).start()
    try:
        station.ok({"cmd": "open"})
        odd = station.ok({"cmd": "scan", "text": odd_licence()})["decision"]
        future = station.ok({"cmd": "manual", "number": FUTURE})["decision"]
        licence = station.ok({"cmd": "type", "text": keyboard_mode_licence(), "layout": "us"})["decision"]
        status = station.status()
    finally:
        code = station.stop()
    assert (odd["outcome"], odd["reason"].split(":")[0]) == ("invalid_document", "malformed")
    assert (future["outcome"], future["reason"].split(":")[0]) == ("invalid_document", "born_after_election")
    assert licence["outcome"] == "admitted"
    assert status["scanner"]["state"] == "connected" and status["counters"]["identified"] == 1
    assert code == 0 and "Traceback" not in station.stderr()
    assert FUTURE not in station.stderr() and FUTURE not in (station_dir / "data" / "pollbox.log").read_text()
