"""Keyboard layouts of handheld scanners in keyboard mode, as Linux key codes.

A scanner in keyboard mode turns each character into the key presses that
would type it on a keyboard of the layout it is set to (``us``, ``de``, ...).
Because pollbox reads raw key codes from the grabbed device (evdev), the
kiosk's own layout (Russian, Kyrgyz) plays no part: only the layout the
scanner is set to matters, and it must match ``keyboard_layout`` in config.

Each ``Keymap`` maps a key code to its character plain, with Shift and with
AltGr; ``dead`` lists dead keys (typed, then Space, for the bare character).
Key codes are the kernel's (``linux/input-event-codes.h``); a test checks
them against evdev. Pure tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KEY_ENTER, KEY_TAB, KEY_SPACE, KEY_KPENTER = 28, 15, 57, 96
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_LEFTCTRL, KEY_RIGHTCTRL, KEY_LEFTALT, KEY_RIGHTALT = 29, 97, 56, 100
KEY_102ND = 86

_ROWS = (2, 16, 30, 44)
"""First key code of the number row and the three letter rows."""

KEYPAD: dict[int, str] = {
    82: "0", 79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7", 72: "8", 73: "9",
    55: "*", 74: "-", 78: "+", 83: ".", 98: "/",
}


def _rows(*rows: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for start, row in zip(_ROWS, rows, strict=True):
        out.update({start + i: c for i, c in enumerate(row)})
    return out


@dataclass(frozen=True)
class Keymap:
    name: str
    plain: dict[int, str]
    shift: dict[int, str]
    altgr: dict[int, str] = field(default_factory=dict)
    dead: frozenset[str] = frozenset()

    def char(self, code: int, shift: bool, altgr: bool) -> str | None:
        if altgr:
            return self.altgr.get(code)
        table = self.shift if shift else self.plain
        return table.get(code, KEYPAD.get(code))


US = Keymap(
    "us",
    plain={**_rows("1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "zxcvbnm,./"), 43: "\\", KEY_102ND: "\\",
           KEY_SPACE: " "},
    shift={**_rows("!@#$%^&*()_+", "QWERTYUIOP{}", 'ASDFGHJKL:"~', "ZXCVBNM<>?"), 43: "|", KEY_102ND: "|",
           KEY_SPACE: " "},
)

DE = Keymap(
    "de",
    plain={**_rows("1234567890ß´", "qwertzuiopü+", "asdfghjklöä^", "yxcvbnm,.-"), 43: "#", KEY_102ND: "<",
           KEY_SPACE: " "},
    shift={**_rows('!"§$%&/()=?`', "QWERTZUIOPÜ*", "ASDFGHJKLÖÄ°", "YXCVBNM;:_"), 43: "'", KEY_102ND: ">",
           KEY_SPACE: " "},
    altgr={3: "²", 4: "³", 8: "{", 9: "[", 10: "]", 11: "}", 12: "\\", 16: "@", 18: "€", 27: "~",
           KEY_102ND: "|", 50: "µ"},
    dead=frozenset("^´`"),
)

FR = Keymap(
    "fr",
    plain={**_rows("&é\"'(-è_çà)=", "azertyuiop^$", "qsdfghjklmù²", "wxcvbn,;:!"), 43: "*", KEY_102ND: "<",
           KEY_SPACE: " "},
    shift={**_rows("1234567890°+", "AZERTYUIOP¨£", "QSDFGHJKLM%", "WXCVBN?./§"), 43: "µ", KEY_102ND: ">",
           KEY_SPACE: " "},
    altgr={3: "~", 4: "#", 5: "{", 6: "[", 7: "|", 8: "`", 9: "\\", 10: "^", 11: "@", 12: "]", 13: "}",
           18: "€", 27: "¤"},
    dead=frozenset("^¨~`"),
)
"""French AZERTY: the digits are on the number row with Shift, which a scanner set to ``fr`` types
as Shift+key; read with the US table those reads would be ``&é"'(-è_çà``."""

LAYOUTS: dict[str, Keymap] = {"us": US, "de": DE, "fr": FR}


def keymap(name: str) -> Keymap:
    if name not in LAYOUTS:
        raise ValueError(f"unknown keyboard layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]
