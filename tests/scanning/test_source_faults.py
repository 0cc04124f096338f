"""Scan sources that meet a fault: the reading loop is restarted, reported and logged, never left dead.

A camera, keyboard or serial source runs its reading loop on its own thread.
Anything but a lost device (``OSError``) used to end that thread while the
state still said CONNECTED, so no later document was read. Here a read
callback or a listener raises, and the source must: log the fault without the
payload, report DISCONNECTED (the appliance's scanner-lost alarm), wait a
bounded backoff, reopen the device and report CONNECTED again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from device import demo_documents as docs
from device.core.delays import DEFAULT_DELAYS
from device.core.documents import DocumentRules
from device.hardware.interfaces import ScannerState, ScanRead
from device.hardware.scanners.camera import CameraSource
from device.hardware.scanners.keyboard import KeyboardScanner
from device.hardware.scanners.keymaps import keymap
from device.hardware.scanners.keys import key_events
from device.hardware.scanners.loop import DeviceLoop
from device.hardware.scanners.serial import SerialScanner
from device.identity import Identity

from .fakes import EveryFrame, FakeCamera, FakeClock, FakeKeyDevice, ScriptedPort, TextDecoder, Waits

C, D = ScannerState.CONNECTED, ScannerState.DISCONNECTED
PIN = docs.make_pin()
SECRET = "FAIL 21503198512345"
"""A payload whose read callback raises; its digits must never reach the log."""

Plan = list[list[str] | None]
"""One entry per attempt to open the device: the payloads it delivers, or None while it is absent."""


def _pop(plan: Plan) -> list[str] | None:
    return plan.pop(0) if plan else None


def camera(plan: Plan, clock: FakeClock, waits: Waits, **kw: Any) -> DeviceLoop:
    def opener() -> FakeCamera | None:
        payloads = _pop(plan)
        return None if payloads is None else FakeCamera(list(payloads))
    return CameraSource(decoder=TextDecoder(), opener=opener, skipper=EveryFrame(), wait=waits, **kw)


def keyboard(plan: Plan, clock: FakeClock, waits: Waits, **kw: Any) -> DeviceLoop:
    def opener() -> FakeKeyDevice | None:
        payloads = _pop(plan)
        if payloads is None:
            return None
        script = [events for p in payloads for events in _typed(p)]
        return FakeKeyDevice(clock, script, lambda: None)
    return KeyboardScanner(device="fake", gap=0.05, monotonic=clock.monotonic, wait=waits, opener=opener, **kw)


def serial_port(plan: Plan, clock: FakeClock, waits: Waits, **kw: Any) -> DeviceLoop:
    def opener() -> ScriptedPort | None:
        payloads = _pop(plan)
        if payloads is None:
            return None
        return ScriptedPort(clock, [c for p in payloads for c in (p.encode() + b"\r\n", b"", b"", b"")])
    return SerialScanner(port="fake", gap=0.05, monotonic=clock.monotonic, wait=waits, opener=opener, **kw)


def _typed(text: str) -> list[list[tuple[int, int]]]:
    events = key_events(text + "\n", keymap("us"))
    return [events[i:i + 7] for i in range(0, len(events), 7)] + [[], [], [], []]


SOURCES: dict[str, Callable[..., DeviceLoop]] = {"camera": camera, "keyboard": keyboard, "serial": serial_port}


class Desk:
    """What the appliance does with a read: resolve it; a read starting with FAIL makes the callback raise."""

    def __init__(self, rules: DocumentRules) -> None:
        self.identity = Identity(list_key=bytes(range(32)), rules=rules)
        self.texts: list[str] = []
        self.states: list[ScannerState] = []

    def on_read(self, read: ScanRead) -> None:
        if read.text.startswith("FAIL"):
            raise RuntimeError(f"cannot record {read.text}")
        self.identity.resolve_scan(read.text)
        self.texts.append(read.text)

    def on_state(self, state: ScannerState) -> None:
        self.states = changes([*self.states, state])


def changes(states: list[ScannerState]) -> list[ScannerState]:
    """Connected and disconnected as the appliance records them: READING dropped, repeats collapsed."""
    out: list[ScannerState] = []
    for state in states:
        if state is not ScannerState.READING and (not out or out[-1] is not state):
            out.append(state)
    return out


def run_source(kind: str, plan: Plan, rules: DocumentRules, waits_limit: int,
               **kw: Any) -> tuple[DeviceLoop, Desk, Waits]:
    clock = FakeClock()
    waits = Waits(clock, limit=waits_limit)
    source = SOURCES[kind](plan, clock, waits, retry_every=1.0, **kw)
    desk = Desk(rules)
    source.attach(desk.on_read, desk.on_state)
    source.supervise()
    return source, desk, waits


# The fault that started it: one odd character in a licence ---------------------------------

@pytest.mark.parametrize("kind", SOURCES)
def test_an_odd_licence_is_refused_and_the_next_document_is_read(kind: str, rules: DocumentRules) -> None:
    text = docs.make_aamva(separators=kind == "camera")  # keyboard and serial scanners send CR for LF and RS
    entries = text.index("ANSI ") + 15
    odd = text[:entries] + "²³" + text[entries + 2:]
    identity = Identity(list_key=bytes(range(32)), rules=rules)
    refusals: list[str] = []
    states: list[ScannerState] = []
    clock = FakeClock()
    source = SOURCES[kind]([[odd, PIN]], clock, Waits(clock, limit=1))
    source.attach(lambda read: refusals.append(identity.resolve_scan(read.text).detail), states.append)
    source.run()  # the loop itself: before the fix the parser's ValueError escaped it here
    assert [r.split(":")[0] for r in refusals] == ["malformed", ""]
    assert changes(states) == [C, D]


# Restart, report, log ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SOURCES)
def test_a_fault_in_the_reading_loop_is_reported_logged_and_restarted(kind: str, rules: DocumentRules,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pollbox.scanner")
    source, desk, waits = run_source(kind, [[SECRET, "lost with the failed device"], [PIN]], rules, waits_limit=2)
    assert desk.states == [C, D, C, D]  # the fault reported, then connected again once restarted
    assert desk.texts == [PIN]  # the document after the fault is read
    assert source.faults == 1 and waits.calls == [1.0, 1.0]
    faults = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(faults) == 1
    assert f"{source.name}: the reading loop failed (RuntimeError at test_source_faults.py:" in faults[0].getMessage()
    assert "restarting it in 1 s" in faults[0].getMessage()
    assert "21503198512345" not in caplog.text


def test_restarts_back_off_up_to_the_named_cap_and_a_good_read_ends_the_row(rules: DocumentRules) -> None:
    plan: Plan = [[SECRET], [SECRET], [SECRET], [SECRET], [PIN, SECRET]]
    source, desk, waits = run_source("camera", plan, rules, waits_limit=6, restart_cap=4.0)
    assert waits.calls == [1.0, 2.0, 4.0, 4.0, 1.0, 1.0]  # doubling, capped; after the good read it starts over
    assert source.faults == 5 and desk.texts == [PIN]
    assert desk.states == [C, D] * 5


def test_the_restart_cap_is_a_named_delay() -> None:
    names = [name for name, _, _ in DEFAULT_DELAYS.documented()]
    assert "scanner_restart_cap" in names
    source = CameraSource(decoder=TextDecoder(), opener=lambda: None)
    assert source.restart_cap == DEFAULT_DELAYS.scanner_restart_cap


def test_a_listener_that_fails_too_does_not_stop_the_restart(rules: DocumentRules,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    waits = Waits(clock, limit=2)
    source = camera([[SECRET], [PIN]], clock, waits, retry_every=1.0)
    desk = Desk(rules)
    failed: list[ScannerState] = []

    def on_state(state: ScannerState) -> None:
        if state is D and not failed:
            failed.append(state)
            raise OSError(28, "No space left on device")
        desk.on_state(state)

    source.attach(desk.on_read, on_state)
    source.supervise()
    assert failed == [D] and desk.texts == [PIN] and source.faults == 1
    assert "reporting the failure failed too (OSError" in caplog.text


def test_on_its_own_thread_the_source_survives_the_fault(rules: DocumentRules) -> None:
    clock = FakeClock()
    waits, finished = Waits(clock, limit=2), threading.Event()

    def wait(seconds: float) -> bool:
        stop = waits(seconds)
        if stop:
            finished.set()
        return stop

    source = keyboard([[SECRET], [PIN]], clock, wait, retry_every=1.0)  # type: ignore[arg-type]
    desk = Desk(rules)
    source.start(desk.on_read, desk.on_state)
    assert finished.wait(timeout=60), "the source thread did not get through its script"
    source.stop()
    assert desk.texts == [PIN] and source.faults == 1
    assert desk.states == [C, D, C, D] and source.state() is D


# What a keyboard-mode scanner can type that is no character ----------------------------------

@pytest.mark.parametrize("digits", ["55296", "57343", "1114112", "9" * 5000])
def test_an_alt_code_for_no_character_types_nothing(digits: str) -> None:
    from device.hardware.scanners.keymaps import KEY_LEFTALT, KEYPAD
    from device.hardware.scanners.keys import KeyDecoder
    decoder = KeyDecoder(keymap("us"))
    code_of = {v: k for k, v in KEYPAD.items() if v.isdigit()}
    events = [(KEY_LEFTALT, 1)] + [(code_of[d], value) for d in digits for value in (1, 0)] + [(KEY_LEFTALT, 0)]
    assert "".join(decoder.feed(code, value) for code, value in events) == ""
    assert decoder.feed(code_of["6"], 1) == "6"  # the decoder still works: the keypad without Alt
