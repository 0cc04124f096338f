"""The CEC's published list of certified unit software, and which stations run something else.

A software list file is JSON::

    {"format": "pollbox-software-list/1",
     "software": [{"version": "0.1.0", "hash": "<64 hex>", "note": "certified 2026-11-01"}, ...],
     "signature": "<base64 Ed25519 signature by the CEC over canonical JSON of software>"}

``version`` and ``hash`` are what a unit signs into its zero and close reports:
the running root file system (``system_version``, ``system_hash``) on a unit
with A/B slots that names it, else the code (``software_version``,
``software_hash``): ``device/software.py``. It is a file
of its own, not a field of the device registry, because it changes with a
release rather than with an enrollment, one list serves every station, and the
registry's signature covers its ``devices`` list only, so a new field there
would change what every registry file's signature means. The same CEC key signs
it; observers can check it like the registry.

The receiver reads it from ``SOFTWARE_LIST_PATH`` (optional; without it nothing
is flagged), again whenever the file changes; a file that does not verify is
refused and logged, and the overview says so. The overview flags a station
whose latest zero or close report names software not on the list
(``Storage.reported_software``). Made with ``pollbox-provision cec
software-list``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.canonical import canonical
from protocol.errors import UserError
from protocol.schema import MAX_VERSION

FORMAT = "pollbox-software-list/1"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_NOTE = 200

log = logging.getLogger("pollbox.receiver.software")


class SoftwareListError(UserError):
    """A software list that cannot be used; the message says why."""


@dataclass(frozen=True)
class Certified:
    """The software the CEC certified: (version, code hash) pairs."""

    pairs: frozenset[tuple[str, str]]

    def allows(self, version: str, code_hash: str) -> bool:
        return (version, code_hash) in self.pairs


def _entries(software: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(software, list):
        raise SoftwareListError(f"{name}: software must be a list")
    for n, item in enumerate(software, start=1):
        if not isinstance(item, dict) or set(item) != {"version", "hash", "note"} \
                or not all(isinstance(v, str) for v in item.values()):
            raise SoftwareListError(f"{name}: software entry {n} must have exactly version, hash and note (strings)")
        if not 0 < len(item["version"]) <= MAX_VERSION or not item["version"].isprintable():
            raise SoftwareListError(f"{name}: software entry {n}: version must be 1 to {MAX_VERSION} printable "
                                    "characters")
        if not HASH_RE.match(item["hash"]):
            raise SoftwareListError(f"{name}: software entry {n}: hash must be 64 lowercase hex digits")
        if len(item["note"]) > MAX_NOTE:
            raise SoftwareListError(f"{name}: software entry {n}: note is longer than {MAX_NOTE} characters")
    return software


def read_software_list(data: bytes, cec_public: Ed25519PublicKey, name: str = "software list") -> list[dict[str, str]]:
    """The entries of a software list after checking its form and the CEC's signature; raises SoftwareListError."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SoftwareListError(f"{name}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or set(doc) != {"format", "software", "signature"}:
        raise SoftwareListError(f"{name}: not a software list ({FORMAT} with software and signature)")
    software = _entries(doc["software"], name)
    try:
        cec_public.verify(base64.b64decode(str(doc["signature"]), validate=True), canonical(software))
    except (ValueError, binascii.Error, InvalidSignature):
        raise SoftwareListError(f"{name}: the CEC signature does not verify (altered, or signed by another key)") \
            from None
    return software


def write_software_list(path: Path, software: list[dict[str, str]], cec_key: Ed25519PrivateKey) -> None:
    """Sign ``software`` with the CEC key and write the list atomically."""
    _entries(software, str(path))
    signature = base64.b64encode(cec_key.sign(canonical(software))).decode("ascii")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(canonical({"format": FORMAT, "software": software, "signature": signature}) + b"\n")
    os.replace(tmp, path)


class SoftwareListFile:
    """The list at ``path``, verified, read again when the file changes; ``problem`` says why none is in force."""

    def __init__(self, path: Path, cec_public: Ed25519PublicKey) -> None:
        self.path, self._cec = path, cec_public
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self.certified: Certified | None = None
        self.problem: str | None = None

    def current(self) -> Certified | None:
        """The list in force (None, with ``problem`` set, when no valid list was ever read)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError as exc:
            stamp = None
            with self._lock:
                if self.certified is None:
                    self.problem = f"cannot read the software list {self.path}: {exc.strerror}"
            return self.certified
        with self._lock:
            if stamp == self._stamp:
                return self.certified
            self._stamp = stamp
            try:
                entries = read_software_list(self.path.read_bytes(), self._cec, str(self.path))
            except (SoftwareListError, OSError) as exc:
                log.error("software list refused, the previous one stays in force: %s", exc)
                self.problem = str(exc)
                return self.certified
            self.certified = Certified(frozenset((e["version"], e["hash"]) for e in entries))
            self.problem = None
            return self.certified


def unlisted(reported: dict[str, tuple[str, str]], certified: Certified | None) -> dict[str, tuple[str, str]]:
    """The stations whose reported (version, hash) is not on the certified list (none when there is no list)."""
    if certified is None:
        return {}
    return {station: pair for station, pair in reported.items() if not certified.allows(*pair)}


def software_flags(app: Any, storage: Any, stations: list[str]) -> tuple[dict[str, tuple[str, str]], str | None]:
    """For the overview: the listed stations running uncertified software, and why no list is in force (if so).

    ``app`` is the Flask app (its ``SOFTWARE_LIST_PATH`` and ``CEC_PUBLIC_KEY``
    config; the list file is kept in ``app.extensions``), ``storage`` the
    receiver's storage (``reported_software``).
    """
    path = app.config.get("SOFTWARE_LIST_PATH")
    if not path:
        return {}, None
    listed = app.extensions.get("pollbox_software_list")
    if listed is None:
        from receiver.registry import decode_public_key
        listed = SoftwareListFile(Path(path), decode_public_key(str(app.config["CEC_PUBLIC_KEY"])))
        app.extensions["pollbox_software_list"] = listed
    certified = listed.current()
    if certified is None:
        return {}, listed.problem
    reported = {}  # per station, the first of its units' reports that is not on the list (else the main unit's)
    for station, pairs in storage.reported_software_of_units(stations).items():
        reported[station] = next((pair for pair in pairs if not certified.allows(*pair)), pairs[0])
    return unlisted(reported, certified), listed.problem
