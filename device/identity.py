"""From a scanned or typed payload to a keyed voter hash, in memory only.

``Identity`` holds the station's list key and document rules. It parses the
payload (``device.core.documents``), hashes the number at once with the list
key, and returns only the hash or the refusal sentence; the payload and the
number go out of scope here and are never logged or stored.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.core.documents import (
    DocumentRules,
    Identified,
    Unreadable,
    parse_manual,
    parse_payload,
    pin_rule_from_mapping,
)
from device.core.documents.rules import SCHEMES
from device.core.voterkey import LIST_KEY_BYTES, voter_hash


class IdentityError(Exception):
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
        return self._resolve(parse_payload(text, self.rules), text)

    def resolve_manual(self, text: str) -> Resolved:
        return self._resolve(parse_manual(text, self.rules), text)

    def _resolve(self, result: Identified | Unreadable, text: str) -> Resolved:
        if isinstance(result, Identified):
            if result.voter_hash is not None:
                return Resolved(result.voter_hash, "", result.voter_hash, result.scheme)
            assert result.number is not None
            keyed = voter_hash(self._key, result.number)
            return Resolved(keyed, "", keyed, result.scheme)
        return Resolved(None, f"{result.reason.value}: {result.detail}", voter_hash(self._key, "raw:" + text))


def load_list_key(path: Path) -> bytes:
    """The station's list key file (32 raw bytes, mode 0600)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"no list key at {path}; install the station package first") from None
    if len(key) != LIST_KEY_BYTES:
        raise IdentityError(f"{path} must hold exactly {LIST_KEY_BYTES} bytes")
    return key


def rules_from_package(payload: dict[str, Any]) -> DocumentRules:
    """Document rules from the package's ``documents`` section and the station id."""
    docs = payload.get("documents", {})
    try:
        pin = pin_rule_from_mapping(docs.get("pin_rule", {"country": "KGZ"}))
        slip = docs.get("slip_public_key")
        return DocumentRules(
            pin=pin, accepted=frozenset(docs.get("accepted", SCHEMES)), station_id=str(payload["station"]["id"]),
            slip_key=base64.b64decode(slip) if slip else None)
    except (ValueError, KeyError) as exc:
        raise IdentityError(f"the package's document rules are unusable: {exc}") from None
