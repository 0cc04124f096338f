"""The unit's record key as the chair's screen names it: which key, where it is kept, and whether the CEC
enrolled it.

Read once when the composition root builds the appliance (``device/compose.py``), from the data
partition: the key's id and algorithm (from the loaded ``Signer``), its store (``[key] store``), and
``enrollment.json``, the CEC's enrollment certificate for this key. The certificate reaches the unit on
the technician's USB stick: on a unit without a shell the image's ``pollbox-enrollment.service`` takes
it at the next boot (``device.firstboot_key.take_enrollment``); on a unit with one,
``pollbox-provision unit install-package`` does. It counts only when it is signed by this election's CEC
key and names this unit's own key (``provisioning.enrollment.verify_certificate``).

The states (``KeyState.enrollment``):

- ``enrolled``: a valid certificate names this key (``enrolled_at`` says when the CEC enrolled it);
- ``requested``: no certificate yet. The key exists and its enrollment request was written (by the
  first boot onto the stick, or by ``unit enroll-request``); the technician takes the request to the
  CEC and brings the certificate back;
- ``invalid``: ``enrollment.json`` is there but is not the CEC's certificate for this key.

A unit with no key at all does not start (``device.signing.load_signer`` refuses, saying how to make
one), so the screen never shows that case: the console and the system journal do.

A certificate the take step refused (``enrollment-refused.json``, written by ``device.firstboot_key``: not
signed by this election's CEC, or for another unit's key) also makes the state ``invalid`` while the unit
holds no valid one: the technician brought a certificate, and it is not this key's. A take that failed
before it read any certificate (no usable CEC key in the station config, a stick that cannot be read) leaves
its reason there without a certificate: the state is ``invalid`` too (the technician must come back), and
``attempt`` names that failed take for the journal.

``KeyWatch`` is how the appliance follows these files while it runs: its owner thread calls ``changed()``
at each tick (two ``stat`` calls), and reads the state again only when one of the files changed, so a
certificate taken when the stick is plugged in reaches the screen without a restart. ``found`` turns a
state into what the journal is told (``device/core/enrollment.py``): the appliance is the journal's one
writer, and the take step only writes files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.canonical import canonical
from protocol.keys import alg_of, key_id

from .core.enrollment import EnrollmentFound, EnrollmentRefusalFound, EnrollmentStepFailed
from .core.events import DeviceKeyEnrolled
from .signing import Signer

STATES = ("enrolled", "requested", "invalid")
CERTIFICATE = "enrollment.json"
REFUSAL = "enrollment-refused.json"
"""Why the take step stored no certificate from the stick (``device.firstboot_key``); removed once one is taken."""


@dataclass(frozen=True)
class KeyState:
    """What the chair's screen says of the record key."""

    key_id: str
    alg: str
    store: str
    enrollment: str
    enrolled_at: str = ""
    problem: str = ""
    certificate: str = ""
    """The SHA-256 (hex) of the certificate the state rests on (stored, or refused on the stick); "" if none."""
    station: str = ""
    serial: str = ""
    refused_from: str = ""
    """``invalid`` only: ``card`` (the stored certificate does not hold) or ``stick`` (the take step refused)."""
    refused_at: str = ""
    attempt: str = ""
    """``invalid`` only, when the take step failed before it read any certificate: the SHA-256 (hex) of its note
    (``enrollment-refused.json``, written afresh with its time at each failure), naming that attempt."""

    def to_items(self) -> tuple[tuple[str, Any], ...]:
        return (("id", self.key_id), ("alg", self.alg), ("store", self.store), ("enrollment", self.enrollment),
                ("enrolled_at", self.enrolled_at), ("problem", self.problem))


def certificate_hash(raw: bytes) -> str:
    """A certificate's SHA-256 (hex) over its canonical JSON, so the copy stored as ``enrollment.json`` and the
    stick's file name the same certificate; over the raw bytes when it is not JSON."""
    try:
        return hashlib.sha256(canonical(json.loads(raw))).hexdigest()
    except (ValueError, TypeError):
        return hashlib.sha256(raw).hexdigest()


def key_state(data_dir: Path, signer: Signer, store: str, cec_public_b64: str) -> KeyState:
    """The key's state from ``data_dir``: its ``enrollment.json`` (checked against the CEC key and ``signer``),
    else the take step's ``enrollment-refused.json``."""
    public = signer.public_key()
    kid, alg = key_id(public), alg_of(public)
    try:
        raw = (data_dir / CERTIFICATE).read_bytes()
    except FileNotFoundError:
        return _refused(data_dir, KeyState(kid, alg, store, "requested"))
    except OSError as exc:  # no certificate hash: nothing is journaled of a file that could not be read
        return KeyState(kid, alg, store, "invalid", problem=f"{data_dir / CERTIFICATE} cannot be read ({exc})")
    from device.package import PackageError, public_key_from_b64
    from provisioning.enrollment import recorded_enrollment
    from provisioning.errors import ProvisionError
    digest = certificate_hash(raw)
    try:
        entry = recorded_enrollment(data_dir, public_key_from_b64(cec_public_b64))
    except (ProvisionError, PackageError, ValueError) as exc:
        return KeyState(kid, alg, store, "invalid", problem=str(exc), certificate=digest, refused_from="card")
    return KeyState(kid, alg, store, "enrolled", enrolled_at=entry.enrolled_at, certificate=digest,
                    station=entry.station, serial=entry.serial)


def _refused(data_dir: Path, requested: KeyState) -> KeyState:
    """``requested``, or ``invalid`` when the take step left its refusal (a file it wrote; unreadable: ignored,
    the take step writes it whole through a rename)."""
    try:
        raw = (data_dir / REFUSAL).read_bytes()
        doc = json.loads(raw)
        digest, reason, at = str(doc["certificate"]), str(doc["reason"]), str(doc.get("refused_at", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return requested
    if not digest:  # the take step failed before it read any certificate
        return KeyState(requested.key_id, requested.alg, requested.store, "invalid", problem=reason, refused_at=at,
                        attempt=certificate_hash(raw))
    return KeyState(requested.key_id, requested.alg, requested.store, "invalid", problem=reason,
                    certificate=digest, refused_from="stick", refused_at=at)


def found(state: KeyState) -> EnrollmentFound | EnrollmentRefusalFound | EnrollmentStepFailed | None:
    """What the journal is told of ``state`` (``device/core/enrollment.py``); None: nothing to record."""
    if state.enrollment == "enrolled":
        return EnrollmentFound(DeviceKeyEnrolled(state.key_id, state.alg, state.store, state.certificate, state.station,
                                                 state.serial, state.enrolled_at))
    if state.enrollment == "invalid" and state.certificate:
        return EnrollmentRefusalFound(state.key_id, state.certificate, state.refused_from, state.problem,
                                      state.refused_at)
    if state.enrollment == "invalid" and state.attempt:
        return EnrollmentStepFailed(state.key_id, state.attempt, state.problem, state.refused_at)
    return None


class KeyWatch:
    """The key's state, read again when ``enrollment.json`` or ``enrollment-refused.json`` changes (see the
    module). Built by the composition root; used on the appliance's owner thread only."""

    def __init__(self, data_dir: Path, signer: Signer, store: str, cec_public_b64: str) -> None:
        self._args = (data_dir, signer, store, cec_public_b64)
        self._seen = self._signature()
        self.state = key_state(*self._args)

    def _signature(self) -> tuple[tuple[int, int, int, int] | None, ...] | None:
        """Each file's inode, size, and modification and change times (a ``chown`` changes the last)."""
        out: list[tuple[int, int, int, int] | None] = []
        for name in (CERTIFICATE, REFUSAL):
            try:
                st = (self._args[0] / name).stat()
                out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            except OSError:
                out.append(None)
        return tuple(out)

    def changed(self) -> KeyState | None:
        """The new state if a file changed since the last read; None otherwise (and when a file cannot be read
        yet, say between the take step's rename and its ``chown``: read again at the next call)."""
        now = self._signature()
        if now == self._seen:
            return None
        try:
            state = key_state(*self._args)
        except OSError:
            self._seen = None
            return None
        self._seen, self.state = now, state
        return state
