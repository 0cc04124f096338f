"""Keyboard-mode scanners: key events to text (US and German), bursts, unplug and replug."""

from __future__ import annotations

import evdev
import pytest

from device import demo_documents as docs
from device.core.documents import DocumentRules, Identified, parse_payload
from device.hardware.interfaces import ScannerState, ScanRead
from device.hardware.scanners import keymaps
from device.hardware.scanners.keyboard import KeyboardScanner
from device.hardware.scanners.keymaps import DE, FR, US, keymap
from device.hardware.scanners.keys import KeyDecoder, key_events

from .fakes import FakeClock, FakeKeyDevice, Waits

E = evdev.ecodes

# Recorded from a scanner set to US layout typing "Ab-1<" then Enter: shift held for A and <.
RECORDED_US = [
    (E.KEY_LEFTSHIFT, 1), (E.KEY_A, 1), (E.KEY_A, 0), (E.KEY_LEFTSHIFT, 0),
    (E.KEY_B, 1), (E.KEY_B, 0), (E.KEY_MINUS, 1), (E.KEY_MINUS, 0), (E.KEY_1, 1), (E.KEY_1, 0),
    (E.KEY_RIGHTSHIFT, 1), (E.KEY_COMMA, 1), (E.KEY_COMMA, 0), (E.KEY_RIGHTSHIFT, 0),
    (E.KEY_ENTER, 1), (E.KEY_ENTER, 0),
]

# The same scanner set to German (QWERTZ) typing "Zy-@<>" : Z and Y swap, '-' is the slash key,
# '@' is AltGr+Q, '<' and '>' are the extra ISO key (102nd) without and with shift.
RECORDED_DE = [
    (E.KEY_LEFTSHIFT, 1), (E.KEY_Y, 1), (E.KEY_Y, 0), (E.KEY_LEFTSHIFT, 0),
    (E.KEY_Z, 1), (E.KEY_Z, 0), (E.KEY_SLASH, 1), (E.KEY_SLASH, 0),
    (E.KEY_RIGHTALT, 1), (E.KEY_Q, 1), (E.KEY_Q, 0), (E.KEY_RIGHTALT, 0),
    (E.KEY_102ND, 1), (E.KEY_102ND, 0), (E.KEY_LEFTSHIFT, 1), (E.KEY_102ND, 1), (E.KEY_102ND, 0),
    (E.KEY_LEFTSHIFT, 0),
]


def decode(events: list[tuple[int, int]], layout: keymaps.Keymap) -> str:
    decoder = KeyDecoder(layout)
    return "".join(decoder.feed(code, value) for code, value in events)


def test_key_codes_match_the_kernel() -> None:
    named = {"KEY_ENTER": keymaps.KEY_ENTER, "KEY_TAB": keymaps.KEY_TAB, "KEY_SPACE": keymaps.KEY_SPACE,
             "KEY_KPENTER": keymaps.KEY_KPENTER, "KEY_LEFTSHIFT": keymaps.KEY_LEFTSHIFT,
             "KEY_RIGHTSHIFT": keymaps.KEY_RIGHTSHIFT, "KEY_CAPSLOCK": keymaps.KEY_CAPSLOCK,
             "KEY_LEFTCTRL": keymaps.KEY_LEFTCTRL, "KEY_RIGHTCTRL": keymaps.KEY_RIGHTCTRL,
             "KEY_LEFTALT": keymaps.KEY_LEFTALT, "KEY_RIGHTALT": keymaps.KEY_RIGHTALT, "KEY_102ND": keymaps.KEY_102ND,
             "KEY_KP0": 82, "KEY_KP7": 71, "KEY_KPSLASH": 98, "KEY_KPASTERISK": 55}
    assert {n: getattr(E, n) for n in named} == named
    for letter in "QWERTYUIOPASDFGHJKLZXCVBNM":
        assert US.plain[getattr(E, f"KEY_{letter}")] == letter.lower()
    for digit in "1234567890":
        assert US.plain[getattr(E, f"KEY_{digit}")] == digit


def test_recorded_us_scan_with_shifted_characters() -> None:
    assert decode(RECORDED_US, US) == "Ab-1<\n"


def test_recorded_german_scan() -> None:
    assert decode(RECORDED_DE, DE) == "Zy-@<>"


def test_the_same_keys_mean_other_text_in_another_layout() -> None:
    assert decode(RECORDED_DE, US) != "Zy-@<>"


def test_caps_lock_and_autorepeat() -> None:
    events = [(E.KEY_CAPSLOCK, 1), (E.KEY_CAPSLOCK, 0), (E.KEY_A, 1), (E.KEY_A, 2), (E.KEY_A, 0),
              (E.KEY_LEFTSHIFT, 1), (E.KEY_B, 1), (E.KEY_B, 0), (E.KEY_LEFTSHIFT, 0)]
    assert decode(events, US) == "Ab"


def test_control_characters_and_alt_codes() -> None:
    ctrl_j = [(E.KEY_LEFTCTRL, 1), (E.KEY_J, 1), (E.KEY_J, 0), (E.KEY_LEFTCTRL, 0)]
    alt_64 = [(E.KEY_LEFTALT, 1), (E.KEY_KP6, 1), (E.KEY_KP6, 0), (E.KEY_KP4, 1), (E.KEY_KP4, 0), (E.KEY_LEFTALT, 0)]
    assert decode(ctrl_j + alt_64, US) == "\n@"


def test_german_dead_key_followed_by_space() -> None:
    assert decode([(E.KEY_GRAVE, 1), (E.KEY_GRAVE, 0), (E.KEY_SPACE, 1), (E.KEY_SPACE, 0)], DE) == "^"


def test_french_digits_need_shift() -> None:
    one_two = [(E.KEY_LEFTSHIFT, 1), (E.KEY_1, 1), (E.KEY_1, 0), (E.KEY_2, 1), (E.KEY_2, 0), (E.KEY_LEFTSHIFT, 0)]
    assert decode(one_two, FR) == "12"
    assert decode([(E.KEY_1, 1), (E.KEY_1, 0), (E.KEY_2, 1), (E.KEY_2, 0)], FR) == "&é"
    assert decode([(E.KEY_102ND, 1), (E.KEY_102ND, 0), (E.KEY_Q, 1), (E.KEY_Q, 0)], FR) == "<a"  # Q key: a
    assert decode(key_events("P<KGZ0123", FR), FR) == "P<KGZ0123"
    assert decode(key_events("1234567890", FR), US) == "!@#$%^&*()"  # a layout mismatch never reads digits


@pytest.mark.parametrize("layout", ["us", "de", "fr"])
def test_every_document_survives_keyboard_mode(layout: str, rules: DocumentRules,
                                               valid_payloads: dict[str, str]) -> None:
    for scheme, text in valid_payloads.items():
        typed = decode(key_events(text, keymap(layout)), keymap(layout))
        result = parse_payload(typed, rules)
        assert isinstance(result, Identified) and result.scheme == scheme


def test_unknown_layout_is_named() -> None:
    with pytest.raises(ValueError, match="unknown keyboard layout 'dvorak'; known: us, de, fr"):
        keymap("dvorak")


# The source: bursts, unplug, replug ----------------------------------------------------

Run = tuple[list[ScanRead], list[ScannerState], list[FakeKeyDevice], Waits]


def run_scanner(script_by_plug: list[list[list[tuple[int, int]]]], absent_between: int, layout: str = "us") -> Run:
    """Plug in one fake device per script; between plugs the scanner is absent for some retries."""
    clock = FakeClock()
    reads: list[ScanRead] = []
    states: list[ScannerState] = []
    plugs = list(script_by_plug)
    absent = {"left": 0}
    devices: list[FakeKeyDevice] = []

    def unplugged() -> None:
        absent["left"] = absent_between

    def opener() -> FakeKeyDevice | None:
        if absent["left"] > 0 or not plugs:
            absent["left"] -= 1
            return None
        devices.append(FakeKeyDevice(clock, plugs.pop(0), unplugged))
        return devices[-1]

    waits = Waits(clock, limit=absent_between + 2)
    scanner = KeyboardScanner(device="fake", layout=layout, gap=0.05, monotonic=clock.monotonic, wait=waits,
                              opener=opener)
    scanner.attach(reads.append, states.append)
    scanner.run()
    return reads, states, devices, waits


def burst(text: str, layout: str = "us") -> list[list[tuple[int, int]]]:
    """A scan as the device delivers it: a few events per read, then quiet reads (the gap)."""
    events = key_events(text + "\n", keymap(layout))
    return [events[i:i + 7] for i in range(0, len(events), 7)] + [[], [], [], []]


def test_scans_arrive_whole_including_multiline_mrz() -> None:
    td1 = docs.make_td1(docs.make_pin())
    reads, _, _, _ = run_scanner([burst(td1) + burst("21503198512345")], absent_between=1)
    assert [r.text for r in reads] == [td1, "21503198512345"]
    assert all(r.symbology == "keyboard" and r.source == "keyboard" for r in reads)


def test_unplug_and_replug_recover_without_restart() -> None:
    reads, states, devices, waits = run_scanner([burst("21503198512345"), burst("11501199054321")], absent_between=2)
    assert [r.text for r in reads] == ["21503198512345", "11501199054321"]
    assert len(devices) == 2 and all(d.closed for d in devices)
    assert states.count(ScannerState.CONNECTED) >= 2 and ScannerState.READING in states
    lost = states.index(ScannerState.DISCONNECTED, states.index(ScannerState.READING))
    assert ScannerState.CONNECTED in states[lost:]
    assert waits.calls and all(w == 2.0 for w in waits.calls)


def test_scanner_absent_at_start_is_disconnected() -> None:
    reads, states, devices, _ = run_scanner([], absent_between=0)
    assert reads == [] and devices == [] and states == [ScannerState.DISCONNECTED]


class _KernelDevice:
    """Stands in for an evdev ``InputDevice``: a readable pipe for ``select`` and the events it holds."""

    path = "/dev/input/event7"

    def __init__(self, events: list[evdev.InputEvent]) -> None:
        import os
        self._read_end, self._write_end = os.pipe()
        os.write(self._write_end, b"x")
        self.fd, self.events, self.grabbed = self._read_end, events, False

    def grab(self) -> None:
        self.grabbed = True

    def read(self) -> list[evdev.InputEvent]:
        return self.events


@pytest.mark.parametrize("dropped", [False, True])
def test_key_events_the_kernel_dropped_are_logged_and_the_keys_read_are_still_delivered(
        dropped: bool, caplog: pytest.LogCaptureFixture) -> None:
    from device.hardware.scanners.keyboard import EvdevKeyDevice
    events = [evdev.InputEvent(0, 0, E.EV_KEY, E.KEY_A, 1), evdev.InputEvent(0, 0, E.EV_SYN, E.SYN_REPORT, 0)]
    if dropped:
        events.append(evdev.InputEvent(0, 0, E.EV_SYN, E.SYN_DROPPED, 0))
    events.append(evdev.InputEvent(0, 0, E.EV_KEY, E.KEY_A, 0))
    device = EvdevKeyDevice(_KernelDevice(events))
    with caplog.at_level("WARNING", logger="pollbox.scanner"):
        assert device.read_keys(0.0) == [(E.KEY_A, 1), (E.KEY_A, 0)]
    said = [r.getMessage() for r in caplog.records if r.name == "pollbox.scanner"]
    assert said == (["keyboard scanner /dev/input/event7: the kernel dropped key events (SYN_DROPPED); the scan "
                     "being typed is incomplete and will be refused: scan the document again"] if dropped else [])
