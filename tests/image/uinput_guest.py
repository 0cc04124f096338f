"""A keyboard-mode scanner made of the kernel's ``uinput``, run *inside* a test copy of the image.

Copied into the guest by ``test_kernel_scanners`` and run with the guest's own ``python3`` (Debian's
``python3-evdev`` is in the image for the appliance). A scanner in keyboard mode is a USB keyboard: it
turns every character of a document into the key presses of the layout it is set to, ~1-3 ms apart,
and ends each line with Enter. The key tables here are written for the test from the layouts' key
caps, on purpose apart from the appliance's ``keymaps``, so an error there shows.

    python3 uinput_guest.py plug NAME SOCKET     the scanner plugged in (until the process ends:
                                                 killing it unplugs the device)
    python3 uinput_guest.py type SOCKET LAYOUT MS TEXT-BASE64
                                                 type TEXT on the plugged scanner, MS per key; prints
                                                 {"keys", "first", "last"}: the count and the wall
                                                 times of the first and the last key
    python3 uinput_guest.py spy NAME SECONDS      a second reader of the device: tries to grab it and
                                                 counts the key events it reads within SECONDS, or
                                                 until SIGTERM; then prints {"grab", "keys"}
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import sys
import time

import evdev
from evdev import ecodes as e

SPY_LOOKS = 0.5
"""How often (seconds) the second reader looks whether it was told to stop."""
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGIT_KEYS = [e.KEY_0, e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9]
SWAPS = {
    "us": {},
    "de": {"Y": "Z", "Z": "Y"},  # QWERTZ
    "fr": {"A": "Q", "Q": "A", "Z": "W", "W": "Z", "M": ";"},  # AZERTY: M is on the US semicolon key
}
"""Which key cap's position each letter is on, per layout (as named on a US keyboard)."""


def key_of(char: str, layout: str) -> tuple[int, bool]:
    """(key code, with Shift) that a scanner set to ``layout`` presses for ``char``."""
    if char == "\n":
        return e.KEY_ENTER, False
    if char.isdigit():
        return DIGIT_KEYS[int(char)], layout == "fr"  # AZERTY: digits are the number row's shifted level
    if char == "<":
        if layout == "us":
            return e.KEY_COMMA, True
        return e.KEY_102ND, False  # ISO keyboards: the extra key left of Y/W
    if char in LETTERS:
        cap = SWAPS[layout].get(char, char)
        return (e.KEY_SEMICOLON if cap == ";" else getattr(e, f"KEY_{cap}")), True
    raise SystemExit(f"the test keyboard has no key for {char!r}")


def press(device: evdev.UInput, code: int, shift: bool) -> None:
    if shift:
        device.write(e.EV_KEY, e.KEY_LEFTSHIFT, 1)
    device.write(e.EV_KEY, code, 1)
    device.syn()
    device.write(e.EV_KEY, code, 0)
    if shift:
        device.write(e.EV_KEY, e.KEY_LEFTSHIFT, 0)
    device.syn()


def type_text(device: evdev.UInput, layout: str, per_key: float, text: str) -> dict[str, float]:
    keys = [key_of(c, layout) for c in text]
    first = time.time()
    for i, (code, shift) in enumerate(keys):
        press(device, code, shift)
        if i + 1 < len(keys):
            time.sleep(per_key)
    return {"keys": len(keys), "first": first, "last": time.time()}


def plug(name: str, path: str) -> None:
    """Create the device and type what ``type`` requests ask for, until killed."""
    keys = [*DIGIT_KEYS, *(getattr(e, f"KEY_{c}") for c in LETTERS), e.KEY_ENTER, e.KEY_LEFTSHIFT, e.KEY_COMMA,
            e.KEY_102ND, e.KEY_SEMICOLON, e.KEY_SPACE]
    device = evdev.UInput({e.EV_KEY: keys}, name=name, vendor=0x0C2E, product=0x0B61)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    print(json.dumps({"plugged": device.device.path if device.device else ""}), flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("rb").readline())
            answer = type_text(device, request["layout"], request["ms"] / 1000.0,
                               base64.b64decode(request["text"]).decode())
            conn.sendall(json.dumps(answer).encode() + b"\n")


def type_on(path: str, layout: str, ms: float, text_b64: str) -> None:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(120)
        conn.connect(path)
        conn.sendall(json.dumps({"layout": layout, "ms": ms, "text": text_b64}).encode() + b"\n")
        print(conn.makefile("rb").readline().decode().strip())


def spy(name: str, seconds: float) -> None:
    """Open the device a second time, as the kiosk's browser or a console would, and report."""
    path = next((p for p in evdev.list_devices() if evdev.InputDevice(p).name == name), None)
    if path is None:
        raise SystemExit(f"no input device named {name!r}")
    device = evdev.InputDevice(path)
    try:
        device.grab()
        grab = "granted"
        device.ungrab()
    except OSError as exc:
        grab = os.strerror(exc.errno or 0)
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: stopped.append(number))
    print(json.dumps({"ready": True}), flush=True)
    keys, end = 0, time.monotonic() + seconds
    while not stopped and (left := end - time.monotonic()) > 0:
        try:
            ready, _, _ = select.select([device.fd], [], [], min(left, SPY_LOOKS))
        except InterruptedError:
            continue
        if ready:
            keys += sum(1 for event in device.read() if event.type == e.EV_KEY)
    print(json.dumps({"grab": grab, "keys": keys}), flush=True)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "plug":
        plug(args[0], args[1])
    elif command == "type":
        type_on(args[0], args[1], float(args[2]), args[3])
    elif command == "spy":
        spy(args[0], float(args[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
