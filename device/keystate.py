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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.keys import alg_of, key_id

from .signing import Signer

STATES = ("enrolled", "requested", "invalid")
CERTIFICATE = "enrollment.json"


@dataclass(frozen=True)
class KeyState:
    """What the chair's screen says of the record key."""

    key_id: str
    alg: str
    store: str
    enrollment: str
    enrolled_at: str = ""
    problem: str = ""

    def to_items(self) -> tuple[tuple[str, Any], ...]:
        return (("id", self.key_id), ("alg", self.alg), ("store", self.store), ("enrollment", self.enrollment),
                ("enrolled_at", self.enrolled_at), ("problem", self.problem))


def key_state(data_dir: Path, signer: Signer, store: str, cec_public_b64: str) -> KeyState:
    """The key's state from ``data_dir`` (its ``enrollment.json``, checked against the CEC key and ``signer``)."""
    public = signer.public_key()
    kid, alg = key_id(public), alg_of(public)
    if not (data_dir / CERTIFICATE).exists():
        return KeyState(kid, alg, store, "requested")
    from device.package import PackageError, public_key_from_b64
    from provisioning.enrollment import recorded_enrollment
    from provisioning.errors import ProvisionError
    try:
        entry = recorded_enrollment(data_dir, public_key_from_b64(cec_public_b64))
    except (ProvisionError, PackageError, ValueError) as exc:
        return KeyState(kid, alg, store, "invalid", problem=str(exc))
    return KeyState(kid, alg, store, "enrolled", enrolled_at=entry.enrolled_at)
