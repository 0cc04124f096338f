"""Which software this unit runs: the pollbox version and a SHA-256 over its installed code.

``running_software()`` is what the unit signs into its readiness report and its
zero and close reports (``device/upstream/outbox.py``), and what its enrollment
request names (``provisioning/enrollment.py``): ``{"version", "hash"}``, where
the hash covers every file of the appliance's packages (``device`` and
``web_ui``: each file's path and SHA-256, in path order). The CEC publishes the
versions and hashes it certified (``receiver/software_list.py``); the receiver's
overview flags a station that reports anything else.

On a unit with A/B root slots the reports also name the **system** it runs
(``software_identity``): the root slot it booted (``system_slot``), the version
of the bundle written there (``system_version``) and the SHA-256 of that root
file system image (``system_hash``), as the updater recorded them
(``device/updates``: ``Updater.booted``). That hash covers the whole system,
not only pollbox's own files; the code hash stays beside it, naming pollbox's
code within it. A slot the updater did not write (the image as flashed) has no
recorded hash until the image's first boot has hashed it (``pollbox-slot-status``,
which runs beside the appliance, not before it): until then the reports carry the
code hash only, the debug log says the system is not yet hashed, and a
``SystemIdentity`` asks the updater again every ``SYSTEM_HASH_POLL`` seconds in
its own thread, so the report after the entry appears names the system.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import device
from protocol.schema import SYSTEM

if TYPE_CHECKING:
    from device.updates import Updater

log = logging.getLogger("pollbox.software")

PACKAGES = ("device", "web_ui")


def code_hash(packages: Iterable[str] = PACKAGES) -> str:
    """SHA-256 over the installed appliance code: every file's path and bytes, in order."""
    digest = hashlib.sha256()
    root = Path(device.__file__).resolve().parent.parent
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@cache
def running_software() -> dict[str, str]:
    """This process's software: ``{"version": pollbox version, "hash": code_hash()}``, computed once."""
    return {"version": device.__version__, "hash": code_hash()}


SYSTEM_HASH_POLL = 30.0
"""Seconds between two questions to the updater while the booted slot is not yet hashed (the first boot's
hashing of the slot as flashed: about a minute on an SD card, several under emulation)."""
SYSTEM_HASH_WAIT = 3 * 3600.0
"""Seconds after the start to stop asking: a slot still without an entry then has a fault the system
journal names (``pollbox-slot-status.service``)."""


def software_identity(updater: Updater | None) -> dict[str, str]:
    """What this unit signs into its readiness, zero and close reports: ``version`` and ``hash`` (the code),
    and when the updater knows the booted slot, ``system_slot``, ``system_version`` and ``system_hash``."""
    return _identity(updater)[0]


def _identity(updater: Updater | None) -> tuple[dict[str, str], bool]:
    """The identity now, and whether it is final (False: the booted slot is not yet hashed; asking later may
    name the system)."""
    identity = dict(running_software())
    slot = updater.booted() if updater is not None else None
    if slot is None:
        return identity, True  # no updater, or it cannot say which slot runs: the code pair only
    if not (slot.version or slot.root_hash):
        return identity, False  # the slot as flashed, not yet hashed: the code pair until it is
    fields = slot.report_fields()
    bad = [name for name, kind in SYSTEM.items() if not kind.check(fields[name])]
    if bad:  # a record the receiver would refuse must never be signed
        log.warning("the running slot's %s cannot be reported (%s); the reports name the code only",
                    ", ".join(bad), fields)
        return identity, True
    return {**identity, **fields}, True


class SystemIdentity(Mapping[str, str]):
    """``software_identity(updater)`` as a mapping that may still learn the system: while the booted slot is
    not yet hashed it holds the code pair, and a daemon thread asks the updater every ``poll`` seconds (for
    at most ``wait``) until the slot has its entry, then holds the whole identity from then on. Reading it
    never runs the updater (the outbox reads it inside the journal's transaction); ``refresh`` asks once.
    Wired in ``device/compose.py`` as the upstream's ``software``."""

    def __init__(self, updater: Updater | None, *, poll: float | None = SYSTEM_HASH_POLL,
                 wait: float = SYSTEM_HASH_WAIT) -> None:
        self._updater = updater
        self._stopped = threading.Event()
        self._current, self.final = _identity(updater)
        self.thread: threading.Thread | None = None  # the asking thread, while the slot is not yet hashed
        if not self.final:
            log.info("the running system is not yet hashed (the first boot hashes the slot as flashed); the "
                     "reports name the code only until it is")
            if poll is not None:
                rounds = max(1, int(wait // poll))
                self.thread = threading.Thread(target=self._ask, args=(poll, rounds), name="system-identity",
                                               daemon=True)
                self.thread.start()

    def refresh(self) -> bool:
        """Ask the updater once if the identity is not final yet; whether it is final now."""
        if not self.final:
            current, final = _identity(self._updater)
            self._current, self.final = current, final  # one reference each: a reader sees the old or the new
            if final and "system_hash" in current:
                log.info("the running system is hashed now: slot %s, version %s, sha256 %s; the reports name it",
                         current["system_slot"], current["system_version"], current["system_hash"])
        return self.final

    def stop(self) -> None:
        """Stop asking (the thread ends at its next wake-up)."""
        self._stopped.set()

    def _ask(self, poll: float, rounds: int) -> None:
        for _ in range(rounds):
            if self._stopped.wait(poll) or self.refresh():
                return
        log.warning("the running system still has no hash after %.0f s; the reports name the code only",
                    poll * rounds)

    def __getitem__(self, key: str) -> str:
        return self._current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._current))

    def __len__(self) -> int:
        return len(self._current)
