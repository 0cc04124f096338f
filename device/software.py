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
recorded hash yet, and the reports then carry the code hash only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
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


def software_identity(updater: Updater | None) -> dict[str, str]:
    """What this unit signs into its readiness, zero and close reports: ``version`` and ``hash`` (the code),
    and when the updater knows the booted slot, ``system_slot``, ``system_version`` and ``system_hash``."""
    identity = dict(running_software())
    slot = updater.booted() if updater is not None else None
    if slot is None or not (slot.version or slot.root_hash):
        return identity  # no updater, or a slot it did not write: the code pair only
    fields = slot.report_fields()
    bad = [name for name, kind in SYSTEM.items() if not kind.check(fields[name])]
    if bad:  # a record the receiver would refuse must never be signed
        log.warning("the running slot's %s cannot be reported (%s); the reports name the code only",
                    ", ".join(bad), fields)
        return identity
    return {**identity, **fields}
