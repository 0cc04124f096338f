"""Key events to text: what a keyboard-mode scanner typed.

``KeyDecoder.feed(code, value)`` takes one key event (``value`` 1 = down,
0 = up, 2 = auto-repeat, ignored) and returns the characters it produced,
through a ``Keymap``. It tracks Shift, Caps Lock, AltGr, dead keys, Ctrl
combinations (Ctrl+J is LF, Ctrl+M is CR, Ctrl+^ is RS: how scanners send the
separators of an AAMVA licence) and Alt+keypad codes (Alt held, decimal code
on the keypad, Alt released). Enter becomes LF, Tab a tab: a scan is a burst
of keys, ended by a pause (``burst.BurstAssembler``), so multi-line MRZ text
arrives whole. ``key_events(text, keymap)`` is the inverse, used by tests
and the demo to play a scanner. Pure.
"""

from __future__ import annotations

from .keymaps import (
    KEY_102ND,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_KPENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    KEY_RIGHTALT,
    KEY_RIGHTCTRL,
    KEY_RIGHTSHIFT,
    KEY_SPACE,
    KEY_TAB,
    KEYPAD,
    Keymap,
)

DOWN, UP, REPEAT = 1, 0, 2
_CONTROL = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"


class KeyDecoder:
    def __init__(self, keymap: Keymap) -> None:
        self.keymap = keymap
        self.held: set[int] = set()
        self.caps = False
        self._dead: str | None = None
        self._alt_code = ""

    def feed(self, code: int, value: int) -> str:
        """The characters produced by one key event."""
        if value == REPEAT:
            return ""
        if value == UP:
            self.held.discard(code)
            return self._alt_release() if code == KEY_LEFTALT else ""
        self.held.add(code)
        if code == KEY_CAPSLOCK:
            self.caps = not self.caps
            return ""
        return self._pressed(code)

    def _pressed(self, code: int) -> str:
        if code in (KEY_ENTER, KEY_KPENTER):
            return self._with_dead("\n")
        if code == KEY_TAB:
            return self._with_dead("\t")
        if KEY_LEFTALT in self.held and code in KEYPAD and KEYPAD[code].isdigit():
            self._alt_code += KEYPAD[code]
            return ""
        char = self._char(code)
        if char is None:
            return ""
        if self.held & {KEY_LEFTCTRL, KEY_RIGHTCTRL}:
            return chr(_CONTROL.index(char.upper())) if char.upper() in _CONTROL else ""
        if char in self.keymap.dead and self._dead is None:
            self._dead = char
            return ""
        if self._dead is not None and code == KEY_SPACE:
            return self._with_dead("")
        return self._with_dead(char)

    def _char(self, code: int) -> str | None:
        shift = bool(self.held & {KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
        char = self.keymap.char(code, shift, KEY_RIGHTALT in self.held)
        if char is not None and self.caps and char.isalpha():
            char = char.lower() if shift else char.upper()
        return char

    def _with_dead(self, text: str) -> str:
        dead, self._dead = self._dead or "", None
        return dead + text

    def _alt_release(self) -> str:
        digits, self._alt_code = self._alt_code, ""
        if not digits or len(digits) > 7:  # no code point has more than 7 digits (and int() caps its input)
            return ""
        code = int(digits)
        if not 0 < code < 0x110000 or 0xD800 <= code <= 0xDFFF:  # a surrogate is no character
            return ""
        return chr(code)


def key_events(text: str, keymap: Keymap) -> list[tuple[int, int]]:
    """The (code, value) events a scanner set to ``keymap`` sends to type ``text``."""
    out: list[tuple[int, int]] = []
    for char in text:
        out += _events_for(char, keymap)
    return out


def _events_for(char: str, km: Keymap) -> list[tuple[int, int]]:
    if char in "\n\r":
        return _tap(KEY_ENTER if char == "\n" else _code_of("M", km), KEY_LEFTCTRL if char == "\r" else None)
    if char == "\t":
        return _tap(KEY_TAB)
    if ord(char) < 32:
        return _tap(_code_of(_CONTROL[ord(char)].lower(), km),
                    KEY_LEFTCTRL, _shift_for(_CONTROL[ord(char)], km))
    for table, modifier in ((km.plain, None), (km.shift, KEY_LEFTSHIFT), (km.altgr, KEY_RIGHTALT)):
        code = next((c for c, ch in table.items() if ch == char and c not in KEYPAD), None)
        if code is not None:
            events = _tap(code, modifier)
            return events + (_tap(KEY_SPACE) if char in km.dead else [])
    return _alt_code(char)


def _code_of(char: str, km: Keymap) -> int:
    for table in (km.plain, km.shift):
        for code, ch in table.items():
            if ch == char:
                return code
    raise ValueError(f"layout {km.name} cannot type {char!r}")


def _shift_for(char: str, km: Keymap) -> int | None:
    return KEY_LEFTSHIFT if char not in km.plain.values() else None


def _tap(code: int, *modifiers: int | None) -> list[tuple[int, int]]:
    mods = [m for m in modifiers if m is not None]
    return [(m, DOWN) for m in mods] + [(code, DOWN), (code, UP)] + [(m, UP) for m in reversed(mods)]


def _alt_code(char: str) -> list[tuple[int, int]]:
    digit_code = {v: k for k, v in KEYPAD.items() if v.isdigit()}
    presses = [e for d in str(ord(char)) for e in ((digit_code[d], DOWN), (digit_code[d], UP))]
    return [(KEY_LEFTALT, DOWN), *presses, (KEY_LEFTALT, UP)]


__all__ = ["DOWN", "KEY_102ND", "REPEAT", "UP", "KeyDecoder", "key_events"]
