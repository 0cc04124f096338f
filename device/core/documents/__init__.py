"""Identity documents: turning a scanned or typed payload into a voter number or a refusal.

``parse_payload(text, rules)`` is the one entry point for scans. It walks the
``PARSERS`` registry in order; the first parser whose ``claims`` recognizes
the payload's shape decides, and a scheme the station does not accept is
refused before it is parsed. A byte-order mark in front (sent by some
serial and keyboard-mode readers) is dropped first. It never raises, for any
text: every problem is an ``Unreadable`` with a ``RefusalCode`` (fuzzed in
``tests/scanning/test_fuzz.py``, with the source loops around it). ``parse_manual`` takes what the clerk
typed (the PIN rule only).

The appliance hashes ``Identified.number`` with the station's list key at
once (``device.core.voterkey.voter_hash``); ``Identified.voter_hash`` is
already keyed (CEC slips). Neither the payload nor the number is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import aamva, mrz, pin, slip
from .pin import parse_manual
from .result import Identified, ParseResult, RefusalCode, Unreadable
from .rules import PIN_RULES, SCHEMES, DocumentRules, PinRule, Segment, pin_rule_from_mapping

__all__ = [
    "PARSERS", "PIN_RULES", "SCHEMES", "DocumentRules", "Identified", "ParseResult", "Parser", "PinRule",
    "RefusalCode", "Segment", "Unreadable", "parse_manual", "parse_payload", "pin_rule_from_mapping",
]


@dataclass(frozen=True)
class Parser:
    """One payload format: ``claims`` is a cheap shape test, ``parse`` the full check."""

    scheme: str
    claims: Callable[[str], bool]
    parse: Callable[[str, DocumentRules], ParseResult]


BYTE_ORDER_MARK = "\ufeff"

PARSERS: tuple[Parser, ...] = (
    Parser(slip.SCHEME, slip.claims, slip.parse),
    Parser(aamva.SCHEME, aamva.claims, aamva.parse),
    Parser("mrz-td1", mrz.claims_td1, mrz.parse_td1),
    Parser("mrz-td3", mrz.claims_td3, mrz.parse_td3),
    Parser(pin.SCHEME, pin.claims, pin.parse),
)


def parse_payload(text: str, rules: DocumentRules) -> ParseResult:
    """The voter a scanned payload names, or why it does not name one. Never raises."""
    text = text.removeprefix(BYTE_ORDER_MARK)
    if not text.strip():
        return Unreadable(RefusalCode.EMPTY, "the scan was empty")
    if len(text) > rules.max_length:
        return Unreadable(RefusalCode.TOO_LONG, f"the scan is longer than {rules.max_length} characters")
    for parser in PARSERS:
        if parser.claims(text):
            if parser.scheme not in rules.accepted:
                detail = f"this station does not accept {parser.scheme} documents"
                return Unreadable(RefusalCode.SCHEME_NOT_ACCEPTED, detail)
            return parser.parse(text, rules)
    return Unreadable(RefusalCode.UNKNOWN_FORMAT, "the code is not a document this station knows")
