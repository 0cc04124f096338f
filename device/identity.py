"""From a scanned or typed payload to a keyed voter hash, in memory only.

``Identity`` holds the station's list key and document rules. It parses the
payload (``device.core.documents``), hashes the number at once with the list
key, and returns only the hash or the refusal sentence; the payload and the
number go out of scope here and are never logged or stored. The parsers
never raise; should one fail all the same, the document is refused and the
fault logged by its type and place only (an exception's message may quote
the payload).

``load_list_key`` reads the list key and, given the station package, checks
it against the package's key check, so a unit with the wrong ``list.key``
refuses to start instead of refusing every voter as not on the list.
``rules_from_package`` takes the document rules and the election day from
the package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import traceback
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.core.documents import (
    DocumentRules,
    Identified,
    RefusalCode,
    Unreadable,
    parse_manual,
    parse_payload,
    pin_rule_from_mapping,
)
from device.core.documents.rules import SCHEMES, Day
from device.core.voterkey import LIST_KEY_BYTES, voter_hash
from protocol.errors import UserError

if TYPE_CHECKING:
    from device.package import StationPackage

log = logging.getLogger("pollbox.identity")


class IdentityError(UserError):
    """The list key or document rules are unusable."""


@dataclass(frozen=True)
class Resolved:
    """The keyed voter hash, or None with the reason the document was refused.

    ``desk_key`` identifies the read for duplicate detection: the voter hash,
    or for a refused document a keyed hash of its payload (memory only).
    """

    voter_hash: str | None
    detail: str
    desk_key: str
    scheme: str = ""


class Identity:
    """Turns payloads into voter hashes with the station's list key."""

    def __init__(self, *, list_key: bytes, rules: DocumentRules) -> None:
        if len(list_key) < LIST_KEY_BYTES:
            raise IdentityError(f"the list key must be {LIST_KEY_BYTES} bytes")
        self._key, self.rules = list_key, rules

    def resolve_scan(self, text: str) -> Resolved:
        return self._resolve(_guarded(parse_payload, text, self.rules), text)

    def resolve_manual(self, text: str) -> Resolved:
        return self._resolve(_guarded(parse_manual, text, self.rules), text)

    def _resolve(self, result: Identified | Unreadable, text: str) -> Resolved:
        if isinstance(result, Identified):
            if result.voter_hash is not None:
                return Resolved(result.voter_hash, "", result.voter_hash, result.scheme)
            assert result.number is not None
            keyed = voter_hash(self._key, result.number)
            return Resolved(keyed, "", keyed, result.scheme)
        return Resolved(None, f"{result.reason.value}: {result.detail}", self._raw_key(text))

    def _raw_key(self, text: str) -> str:
        """The keyed hash of a refused payload, whatever it holds (even a lone surrogate from an Alt code)."""
        raw = b"raw:" + text.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()


def _guarded(parse: Any, text: str, rules: DocumentRules) -> Identified | Unreadable:
    """``parse(text, rules)``; a parser fault becomes a refusal and a log line without the payload."""
    try:
        result: Identified | Unreadable = parse(text, rules)
    except Exception as exc:  # the parsers must not raise (fuzzed); the desk must survive if one does
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("document parser fault: %s at %s:%s in %s (payload of %d characters refused, not logged)",
                  type(exc).__name__, Path(where.filename).name, where.lineno, where.name, len(text))
        return Unreadable(RefusalCode.MALFORMED, "the document could not be read (a parser fault, logged)")
    return result


def load_list_key(path: Path, package: StationPackage | None = None) -> bytes:
    """The station's list key file (32 raw bytes, mode 0600), checked against ``package`` when given."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"no list key at {path}; install the station package first") from None
    if len(key) != LIST_KEY_BYTES:
        raise IdentityError(f"{path} must hold exactly {LIST_KEY_BYTES} bytes")
    if package is not None:
        check_list_key(key, package, path)
    return key


def check_list_key(key: bytes, package: StationPackage, path: Path) -> None:
    """Raise IdentityError unless ``key`` is the list key ``package``'s voter hashes were made with."""
    if not package.list_key_matches(key):
        raise IdentityError(
            f"the list key {path} does not belong to the station package of {package.station_id} (the package's "
            "voters.key_check does not match it), so every voter would be refused as not on the list; install "
            "this station's package and list key again from its USB stick ('pollbox-provision unit "
            "install-package'), then start the station")


def rules_from_package(payload: dict[str, Any]) -> DocumentRules:
    """Document rules from the package's ``documents`` section, the station id and the election day."""
    docs = payload.get("documents", {})
    try:
        if not isinstance(docs, dict):
            raise ValueError("the documents section must be a table")
        pin = pin_rule_from_mapping(docs.get("pin_rule", {"country": "KGZ"}))
        accepted = docs.get("accepted", SCHEMES)
        if not isinstance(accepted, (list, tuple)) or not all(isinstance(s, str) for s in accepted):
            raise ValueError("documents.accepted must be a list of scheme names")
        slip = docs.get("slip_public_key")
        return DocumentRules(
            pin=pin, accepted=frozenset(accepted), station_id=str(payload["station"]["id"]),
            slip_key=base64.b64decode(str(slip), validate=True) if slip else None,
            election_date=election_day(payload))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IdentityError(f"the package's document rules are unusable: {exc}") from None


def election_day(payload: dict[str, Any]) -> Day | None:
    """The polling day from ``election.poll_date``; without one, the day the package expires (no
    election is held after its package expired); None if the package names neither."""
    election = payload.get("election", {})
    if not isinstance(election, dict):
        raise ValueError("the election section must be a table")
    if election.get("poll_date"):
        try:
            day = date.fromisoformat(str(election["poll_date"]))
        except ValueError:
            raise ValueError(f"election.poll_date {election['poll_date']!r} is not a date YYYY-MM-DD") from None
    elif election.get("expires_at"):
        try:
            day = datetime.fromisoformat(str(election["expires_at"])).date()
        except ValueError:
            raise ValueError("election.expires_at is not an ISO-8601 date and time") from None
    else:
        return None
    return (day.year, day.month, day.day)
