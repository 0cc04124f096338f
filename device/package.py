"""The CEC-signed station package: what a unit needs to know about its station.

A package file is JSON ``{"format", "payload", "signature"}``. ``signature`` is
the base64 Ed25519 signature, by the CEC's package key, over the canonical JSON
bytes of ``payload`` (sorted keys, no spaces, UTF-8). The payload holds the
election, the station, the receiver, document rules and the voter list as keyed
hashes (``voters.entries``: ``[hash, line, name]``) with its SHA-256 digest.

The payload sections (``docs/provisioning.md`` has the full table):
``election`` {id, name, poll_date, opens, closes, timezone, expires_at},
``station`` {id, name, region, languages}, ``receiver`` {url, ca_pem,
public_key}, ``cec`` {public_key}, ``documents`` {pin_rule, accepted,
slip_public_key}, ``hardware`` (decoder and pin settings), ``voters``
{entries, digest, count, key_check}, ``issued_at`` and, in a training
package only, ``training: true`` (its station id is then ``TRAINING-<id>``,
``device/training.py``). ``voters.key_check``
identifies the station's list key without revealing it (``list_key_check``),
so a unit given the wrong ``list.key`` refuses it at installation.

A unit refuses a package that is unsigned, altered, signed by another key, for
another election, or expired; ``PackageError`` says which.

Built by ``provisioning`` (``sign_package``), loaded by the appliance
(``load_package``) with the CEC key from the unit's config as the trust anchor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.core.station import VoterEntry
from device.training import package_is_training, training_problem
from protocol.canonical import canonical
from protocol.errors import UserError

FORMAT = "pollbox-station-package/1"
_KEY_CHECK_LABEL = b"pollbox list key check v1"


class PackageError(UserError):
    """The package cannot be used; the message names the reason."""


@dataclass(frozen=True)
class StationPackage:
    payload: dict[str, Any]
    voters: dict[str, VoterEntry]

    @property
    def station_id(self) -> str:
        return str(self.payload["station"]["id"])

    @property
    def election_id(self) -> str:
        return str(self.payload["election"]["id"])

    @property
    def registered(self) -> int:
        return len(self.voters)

    @property
    def digest(self) -> str:
        return str(self.payload["voters"]["digest"])

    @property
    def station_name(self) -> str:
        return str(self.payload["station"].get("name", ""))

    @property
    def receiver(self) -> dict[str, str]:
        """``{"url", "ca_pem", "public_key"}`` of the CEC receiver (empty strings if absent)."""
        section = self.payload.get("receiver", {})
        return {k: str(section.get(k, "")) for k in ("url", "ca_pem", "public_key")}

    @property
    def languages(self) -> list[str]:
        return [str(x) for x in self.payload["station"].get("languages", [])]

    @property
    def hardware(self) -> dict[str, Any]:
        return dict(self.payload.get("hardware", {}))

    @property
    def training(self) -> bool:
        """Whether this is a training package (``device/training.py``): its own journal, flagged records, a banner."""
        return package_is_training(self.payload)

    def list_key_matches(self, list_key: bytes) -> bool:
        """True if ``list_key`` is the key this package's voter hashes were made with."""
        expected = self.payload["voters"].get("key_check")
        return expected is None or hmac.compare_digest(str(expected), list_key_check(list_key))


def list_key_check(list_key: bytes) -> str:
    """A short value that identifies a list key without revealing it (``voters.key_check``)."""
    return hmac.new(list_key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:32]


def voters_digest(entries: list[list[Any]]) -> str:
    """SHA-256 hex over the canonical JSON of the voter entries."""
    return hashlib.sha256(canonical(entries)).hexdigest()


def sign_package(payload: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The package file bytes for ``payload``, signed by the CEC key."""
    signature = base64.b64encode(key.sign(canonical(payload))).decode()
    return canonical({"format": FORMAT, "payload": payload, "signature": signature})


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise PackageError(f"the CEC public key is not 32 base64-encoded bytes ({exc})") from None


def load_package(path: Path, cec_key: Ed25519PublicKey, election_id: str, now: float) -> StationPackage:
    """Read, verify and return the package at ``path``; raises PackageError."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise PackageError(f"no station package at {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{path}: not a JSON station package ({exc})") from None
    payload = _verified_payload(doc, cec_key)
    _check_election(payload, election_id, now)
    problem = training_problem(payload)
    if problem is not None:
        raise PackageError(problem)
    return StationPackage(payload, _voters(payload))


def _verified_payload(doc: Any, cec_key: Ed25519PublicKey) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PackageError(f"not a station package (format must be {FORMAT!r})")
    signature, payload = doc.get("signature"), doc.get("payload")
    if not signature:
        raise PackageError("the package is unsigned")
    if not isinstance(payload, dict):
        raise PackageError("the package has no payload")
    try:
        cec_key.verify(base64.b64decode(signature, validate=True), canonical(payload))
    except (InvalidSignature, ValueError):
        raise PackageError("the package signature does not verify: it was altered or signed by another key") from None
    return payload


def _check_election(payload: dict[str, Any], election_id: str, now: float) -> None:
    election = payload.get("election", {})
    if election.get("id") != election_id:
        raise PackageError(
            f"the package is for election {election.get('id')!r}; this unit is set up for {election_id!r}")
    try:
        expires = datetime.fromisoformat(str(election["expires_at"]))
    except (KeyError, ValueError):
        raise PackageError("the package has no valid election.expires_at") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if now >= expires.timestamp():
        raise PackageError(f"the package expired at {expires.isoformat()}")


def _voters(payload: dict[str, Any]) -> dict[str, VoterEntry]:
    section = payload.get("voters", {})
    entries = section.get("entries", []) if isinstance(section, dict) else None
    if not isinstance(entries, list):
        raise PackageError("the package's voters.entries is not a list of voters")
    if voters_digest(entries) != section.get("digest"):
        raise PackageError("the voter list does not match its digest")
    out: dict[str, VoterEntry] = {}
    for number, entry in enumerate(entries, start=1):
        h, line, name = _entry(number, entry)
        if h in out:
            raise PackageError(f"voter list line {line} repeats the hash of line {out[h].line}")
        out[h] = VoterEntry(line, name)
    return out


def _entry(number: int, entry: Any) -> tuple[str, int, str]:
    """One ``[hash, line, name]`` entry of the voter list, checked: a signed package can still be malformed."""
    if not isinstance(entry, list) or len(entry) != 3:
        raise PackageError(f"voter list entry {number} is not [hash, line, name]")
    h, line, name = entry
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise PackageError(f"voter list entry {number} has the line {line!r}; a line is a whole number from 1")
    if not isinstance(h, str) or not isinstance(name, str):
        raise PackageError(f"voter list line {line}: the hash and the name must be text")
    return h, line, name
