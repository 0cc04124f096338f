"""Which software this unit runs: the pollbox version and a SHA-256 over its installed code.

``running_software()`` is what the unit signs into its readiness report and its
zero and close reports (``device/upstream/outbox.py``), and what its enrollment
request names (``provisioning/enrollment.py``): ``{"version", "hash"}``, where
the hash covers every file of the appliance's packages (``device`` and
``web_ui``: each file's path and SHA-256, in path order). The CEC publishes the
versions and hashes it certified (``receiver/software_list.py``); the receiver's
overview flags a station that reports anything else.

Once the image has signed A/B updates, the root file system's hash (dm-verity
root hash of the running slot) replaces this code hash: it covers the whole
system, not only pollbox's own files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import device

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
