"""The chair PIN: set by the chair at the station, stored hashed, locked out after five wrong tries.

The file ``chair_pin.json`` (in the web instance folder) holds the scrypt hash
and salt of the PIN, never the PIN, and the lockout state (``lockout.py``), so
a restart does not give an attacker fresh tries. It is rewritten atomically
(temporary file, fsync, rename) with mode 0600. When it cannot be rewritten
(a full disk, a read-only file system) the lockout state is kept in memory and
wins over the stale file until a write succeeds: the lock holds either way.

The station package carries no PIN. At the first start the screen asks the
chair to choose one (``actions.setup``), twice, in the commission's presence;
``pin_rule_broken`` says which rule a chosen PIN breaks. A forgotten PIN is
reset by the technician, logged in to the unit with their own credential:
``python -m web_ui.pin reset DATA_DIR/web`` deletes the file, and the screen
asks for a new PIN again (the new one is journaled as set after a reset).

Wiring: ``create_app`` builds one ``ChairPin``; the ``actions`` blueprint
calls ``set`` and ``check``; the demo set-up calls ``set_pin(path, pin)``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.files import write_private
from protocol.errors import UserError

from . import lockout

log = logging.getLogger("pollbox.web.pin")

FORMAT = "pollbox-chair-pin/1"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_DIGITS, MAX_DIGITS = 6, 12


class PinError(UserError):
    """The PIN file is missing or unusable, or a new PIN is malformed; the message says what to do
    (in English, for logs and the command line); ``missing`` tells the screen which sentence to show."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    LOCKED = "locked"


@dataclass(frozen=True)
class PinCheck:
    """The answer to one PIN attempt: ``locked_for`` seconds; ``tries_left`` before a lock."""

    outcome: Outcome
    tries_left: int = 0
    locked_for: float = 0.0
    just_locked: bool = False


def validate_pin(pin: str) -> None:
    """Raise PinError unless ``pin`` is 6 to 12 ASCII digits."""
    if not (pin.isascii() and pin.isdigit() and MIN_DIGITS <= len(pin) <= MAX_DIGITS):
        raise PinError(f"a chair PIN is {MIN_DIGITS} to {MAX_DIGITS} digits")


WEAK_PINS_NOTE = "the same digit repeated, or digits counting up or down"


class PinRule(enum.StrEnum):
    """Why a PIN the chair chose at the station is refused (the screen has a sentence for each)."""

    LENGTH = "length"
    WEAK = "weak"
    MISMATCH = "mismatch"


def _is_weak(pin: str) -> bool:
    """One digit repeated (111111) or a run counting up or down by one (123456, 987654)."""
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:], strict=False)}
    return len(steps) == 1 and steps <= {0, 1, 9}


def pin_rule_broken(pin: str, again: str) -> PinRule | None:
    """The rule a PIN chosen at the station breaks, or None when it may be set."""
    if not (pin.isascii() and pin.isdigit() and MIN_DIGITS <= len(pin) <= MAX_DIGITS):
        return PinRule.LENGTH
    if _is_weak(pin):
        return PinRule.WEAK
    if not hmac.compare_digest(pin.encode(), again.encode()):
        return PinRule.MISMATCH
    return None


def _hash(pin: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=params["n"], r=params["r"], p=params["p"],
                          maxmem=64 * 1024 * 1024, dklen=32)


def set_pin(path: Path, pin: str) -> None:
    """Store a new chair PIN (hashed) at ``path``, clearing any lockout."""
    validate_pin(pin)
    salt = secrets.token_bytes(16)
    doc = {"format": FORMAT, "kdf": "scrypt", **SCRYPT, "salt": salt.hex(),
           "hash": _hash(pin, salt, SCRYPT).hex(), "failures": 0, "locked_until": 0.0}
    _write(path, doc)


def _write(path: Path, doc: dict[str, Any]) -> None:
    write_private(path, json.dumps(doc, sort_keys=True).encode())


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinError("no chair PIN has been set on this unit; the chair sets it on the screen at the opening",
                       missing=True) from None
    except (ValueError, UnicodeDecodeError):
        raise PinError(f"the chair PIN file {path.name} is damaged; the technician must set the PIN again") from None
    except OSError as exc:
        raise PinError(f"the chair PIN file {path.name} cannot be read ({exc.strerror}); call the technician") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("kdf") != "scrypt":
        raise PinError(f"the chair PIN file {path.name} is not in format {FORMAT}")
    return doc


class ChairPin:
    """Checks chair PINs against the stored hash, with persistent lockout. Thread-safe.

    ``_unsaved`` is the lockout state the file could not take (keyed by the PIN's
    salt, so a PIN set anew starts from its own file); while it is there it is
    the truth, and every check tries to write it again.
    """

    def __init__(self, path: Path, *, lockout_base: float) -> None:
        self.path = path
        self.lockout_base = lockout_base
        self._lock = threading.Lock()
        self._unsaved: tuple[str, lockout.Attempts] | None = None

    def is_set(self) -> bool:
        return self.path.exists()

    def set_first(self, pin: str) -> bool:
        """Set ``pin`` unless a PIN is already set (then False: a PIN is never replaced from the screen)."""
        with self._lock:
            if self.path.exists():
                return False
            set_pin(self.path, pin)
            self._unsaved = None
            return True

    def attempts(self) -> lockout.Attempts:
        with self._lock:
            return self._state(_read(self.path))

    def check(self, pin: str, now: float) -> PinCheck:
        """Try ``pin`` at wall time ``now``; while locked, the PIN is not even compared."""
        with self._lock:
            doc = _read(self.path)
            state = self._state(doc)
            if state.locked_for(now) > 0:
                self._store(doc, state)  # a lock only memory holds is saved as soon as the file takes it
                return PinCheck(Outcome.LOCKED, 0, state.locked_for(now))
            if self._matches(doc, pin):
                self._store(doc, lockout.after_success())
                return PinCheck(Outcome.ACCEPTED)
            new = lockout.after_failure(state, now, self.lockout_base)
            self._store(doc, new)
            if new.locked_for(now) > 0:
                return PinCheck(Outcome.LOCKED, 0, new.locked_for(now), just_locked=True)
            return PinCheck(Outcome.WRONG, new.tries_left)

    def _state(self, doc: dict[str, Any]) -> lockout.Attempts:
        """The lockout state: the one kept in memory if the file could not take it, else the file's."""
        if self._unsaved is not None and self._unsaved[0] == doc["salt"]:
            return self._unsaved[1]
        return lockout.Attempts(int(doc["failures"]), float(doc["locked_until"]))

    def _matches(self, doc: dict[str, Any], pin: str) -> bool:
        if not (pin.isascii() and pin.isdigit() and len(pin) <= MAX_DIGITS):
            return False
        params = {"n": int(doc["n"]), "r": int(doc["r"]), "p": int(doc["p"])}
        return hmac.compare_digest(_hash(pin, bytes.fromhex(doc["salt"]), params), bytes.fromhex(doc["hash"]))

    def _store(self, doc: dict[str, Any], state: lockout.Attempts) -> None:
        """Write ``state`` to the file; if that fails, keep it in memory (the lock must hold regardless)."""
        if self._unsaved is None and (doc["failures"], doc["locked_until"]) == (state.failures, state.locked_until):
            return
        try:
            _write(self.path, {**doc, "failures": state.failures, "locked_until": state.locked_until})
        except OSError as exc:
            self._unsaved = (str(doc["salt"]), state)
            log.warning("the chair PIN lockout cannot be saved to %s (%s); it is kept in memory until it can be",
                        self.path.name, exc.strerror or exc)
            return
        self._unsaved = None


def reset(instance: Path) -> bool:
    """Delete the chair PIN in the web instance folder ``instance``; True if there was one."""
    try:
        (instance / "chair_pin.json").unlink()
    except FileNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m web_ui.pin reset DATA_DIR/web``: the technician's reset of a forgotten chair PIN."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m web_ui.pin", description="reset the chair PIN")
    parser.add_argument("action", choices=["reset"])
    parser.add_argument("instance", type=Path, help="the chair screen's instance folder (DATA_DIR/web)")
    args = parser.parse_args(argv)
    try:
        had = reset(args.instance)
    except OSError as exc:
        print(f"the chair PIN cannot be reset: {exc.strerror} (log in as the technician)")
        return 1
    print("chair PIN deleted; the screen asks the chair for a new one" if had else "no chair PIN was set")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
