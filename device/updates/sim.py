"""A simulated updater for demonstration stations: two slot files in a folder, bundles as small JSON files.

A simulated bundle is a JSON object ``{"format": "pollbox-sim-bundle", "compatible",
"version", "signed_by"}``; it counts as signed when ``signed_by`` is
``SIM_UPDATE_KEY``. Nothing here checks a real signature: it is chosen by name
(``[update] backend = "sim"``) and refused in production mode. ``install`` writes
the bundle into the slot file the simulated unit is not "running" from and
records that slot as the one to boot next (``state.json``).

``booted`` says which simulated slot "runs": slot A holds the simulated factory
software (``SIM_FACTORY_VERSION``, a fixed hash), a slot written by an install
the bundle's version and the SHA-256 of the bundle file written there. A
simulated unit "restarts into" the slot an install made primary when the
updater is built again (the next ``pollbox run``), as a real unit boots it.

A bundle with ``"boots": false`` fails that trial: the
unit stays on the slot it ran (a rollback, journaled at the start).

A bundle with ``"hold": true`` keeps its install open until a file named
``release`` appears in the folder (or ``HOLD_DEADLINE`` passes, and the install
fails): a demonstration, or a test, can then show what the station does while an
update is being written (the polls are held: ``device/core/update.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from device.core.update import UpdateRefusal
from device.updates import MAX_BUNDLE_BYTES, Bundle, BundleRefused, RunningSlot, UpdateError, check_size

SIM_COMPATIBLE = "pollbox-sim"
SIM_UPDATE_KEY = "sim-cec-update-key"
FORMAT = "pollbox-sim-bundle"
SIM_FACTORY_VERSION = "0.0.0+sim-factory"
SIM_FACTORY_HASH = hashlib.sha256(b"pollbox simulated root file system, slot A as flashed").hexdigest()
"""What the simulated slot A "runs" before any install: fixed, so a demonstration's reports are the same."""
HOLD_DEADLINE = 600.0
"""Seconds a held install (``"hold": true``) waits for its ``release`` file before it fails."""
HOLD_POLL = 0.05
"""Seconds between two looks for the ``release`` file."""


def sim_bundle(compatible: str = SIM_COMPATIBLE, version: str = "0.0.0+sim", signed_by: str = SIM_UPDATE_KEY,
               *, hold: bool = False, boots: bool = True) -> str:
    """The text of a simulated bundle (for demonstrations and tests); ``hold`` keeps its install open,
    ``boots`` False makes its trial boot fail (the simulated unit rolls back at the next start)."""
    doc: dict[str, Any] = {"format": FORMAT, "compatible": compatible, "version": version, "signed_by": signed_by}
    if hold:
        doc["hold"] = True
    if not boots:
        doc["boots"] = False
    return json.dumps(doc)


class SimUpdater:
    """Slots ``A`` and ``B`` as files in ``folder``; the unit "runs" from A until an install."""

    def __init__(self, folder: Path, *, budget: int = MAX_BUNDLE_BYTES) -> None:
        self.folder, self.budget = folder, budget
        self._restart()

    def _state(self) -> dict[str, Any]:
        path = self.folder / "state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return {"booted": "A"}
        return state if isinstance(state, dict) and state.get("booted") in ("A", "B") else {"booted": "A"}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def _restart(self) -> None:
        """A (simulated) start boots the slot the last install made primary, once; a bundle written with
        ``"boots": false`` fails its trial and the unit comes back on the slot it ran before."""
        state = self._state()
        primary = state.get("primary")
        if primary not in ("A", "B") or primary == state["booted"]:
            return
        try:
            boots = json.loads((self.folder / f"slot-{primary}.bundle").read_bytes()).get("boots", True) is not False
        except (OSError, ValueError, AttributeError):
            boots = False
        self._write_state({"booted": primary if boots else state["booted"]})

    def booted(self) -> RunningSlot | None:
        slot = str(self._state()["booted"])
        written = self.folder / f"slot-{slot}.bundle"
        try:
            data = written.read_bytes()
        except OSError:
            return RunningSlot(slot, SIM_FACTORY_VERSION, SIM_FACTORY_HASH) if slot == "A" else None
        try:
            version = str(json.loads(data).get("version") or "")
        except (ValueError, AttributeError):
            return None
        return RunningSlot(slot, version, hashlib.sha256(data).hexdigest()) if version else None

    @property
    def compatible(self) -> str:
        return SIM_COMPATIBLE

    def inspect(self, path: Path) -> Bundle:
        size = check_size(path, self.budget)
        try:
            doc: Any = json.loads(path.read_bytes())
        except (OSError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BundleRefused(UpdateRefusal.TRUNCATED, "the file is cut short or is not a (simulated) bundle",
                                size=size)
        version = str(doc.get("version", ""))
        if doc.get("signed_by") != SIM_UPDATE_KEY:
            raise BundleRefused(UpdateRefusal.BAD_SIGNATURE, "the bundle is not signed by the (simulated) CEC "
                                "update key", version, size)
        if doc.get("compatible") != self.compatible:
            raise BundleRefused(UpdateRefusal.WRONG_COMPATIBLE, f"the bundle is for {doc.get('compatible')!r}, "
                                f"this unit is {self.compatible!r}", version, size)
        return Bundle(path, version, self.compatible, size, "simulated CEC update key")

    def install(self, path: Path) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        if json.loads(path.read_bytes()).get("hold") is True:
            self._wait_for_release()
        state = self._state()
        slot = "B" if state["booted"] == "A" else "A"
        (self.folder / f"slot-{slot}.bundle").write_bytes(path.read_bytes())
        self._write_state({**state, "primary": slot})
        return slot

    def _wait_for_release(self) -> None:
        """Keep the install open until ``release`` exists in the folder (it is removed), or fail at the deadline."""
        release, pause = self.folder / "release", threading.Event()
        deadline = time.monotonic() + HOLD_DEADLINE
        while not release.exists():
            if time.monotonic() > deadline:
                raise UpdateError(f"the simulated install was held open for {HOLD_DEADLINE:.0f} s and nobody "
                                  f"released it ({release})")
            pause.wait(HOLD_POLL)
        release.unlink()
