"""ICAO 9303 machine-readable zones: TD1 (ID card, 3 x 30) and TD3 (passport, 2 x 44).

Document readers in keyboard or serial mode send the MRZ as text, its lines
separated by CR and/or LF, or run together. Every check digit is verified
(weights 7-3-1, ``<`` counts 0): document number (including the TD1 long
number carried into the optional data), birth date, expiry date, the TD3
personal number, and the composite. Dates must be real calendar dates.

The voter number: when the issuing state is the PIN rule's country and the
optional data (TD1 line 1) or the personal-number field (TD3) holds a valid
PIN, that PIN; otherwise ``<issuing state>:<document number>``. A PIN there
whose birth date is after the election day is refused, not passed over. Expiry is
checked for its digit only: whether an expired document may be used is a
matter for the electoral law, decided at the desk, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .pin import check_pin
from .result import Identified, RefusalCode, Unreadable
from .rules import DocumentRules, is_digits, is_real_date

_START = re.compile(r"[IACP][A-Z<][A-Z<]{3}[A-Z0-9<]*\Z")
_ALPHABET = re.compile(r"[A-Z0-9<]*\Z")
WEIGHTS = (7, 3, 1)
TD1_TYPES = "IAC"
TD3_TYPES = "P"


@dataclass(frozen=True)
class Fields:
    """The MRZ fields a decision needs (no names)."""

    layout: str
    state: str
    document: str
    optional: str


def char_value(c: str) -> int:
    if is_digits(c):
        return int(c)
    return 0 if c == "<" else ord(c) - ord("A") + 10


def check_digit(field: str) -> int:
    """The ICAO 9303 check digit of ``field``."""
    return sum(char_value(c) * WEIGHTS[i % 3] for i, c in enumerate(field)) % 10


def lines_of(text: str) -> list[str]:
    """The MRZ lines, blank lines and surrounding blanks dropped."""
    return [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]


def claims(text: str) -> bool:
    """MRZ text: a document code and issuing state, then capitals, digits and ``<`` only."""
    return _START.match("".join(lines_of(text))) is not None


def claims_td1(text: str) -> bool:
    return claims(text) and text.strip()[0] in TD1_TYPES


def claims_td3(text: str) -> bool:
    return claims(text) and text.strip()[0] in TD3_TYPES


def parse_td1(text: str, rules: DocumentRules) -> Identified | Unreadable:
    return _parse(text, rules, "mrz-td1", "ID card (TD1)", "an ID card (TD1)", (3, 30), _td1_fields)


def parse_td3(text: str, rules: DocumentRules) -> Identified | Unreadable:
    return _parse(text, rules, "mrz-td3", "passport (TD3)", "a passport (TD3)", (2, 44), _td3_fields)


def _parse(text: str, rules: DocumentRules, scheme: str, label: str, what: str, shape: tuple[int, int],
           read_fields: Callable[[list[str]], Fields | Unreadable]) -> Identified | Unreadable:
    """Lay the text out as ``shape`` (lines, width), read its fields, then name the voter."""
    lines = _layout(text, shape[0], shape[1], what)
    if isinstance(lines, Unreadable):
        return lines
    if not all(_ALPHABET.match(ln) for ln in lines):
        return Unreadable(RefusalCode.MALFORMED, f"the MRZ of {what} has characters other than A-Z, 0-9 and <")
    fields = read_fields(lines)
    if isinstance(fields, Unreadable):
        return fields
    return _identified(scheme, label, fields, rules)


def _layout(text: str, count: int, width: int, what: str) -> list[str] | Unreadable:
    lines = lines_of(text)
    if len(lines) == 1 and len(lines[0]) == count * width:
        lines = [lines[0][i * width:(i + 1) * width] for i in range(count)]
    if len(lines) == count and all(len(ln) == width for ln in lines):
        return lines
    total, want = sum(len(ln) for ln in lines), count * width
    if total < want:
        return Unreadable(RefusalCode.TRUNCATED, f"the MRZ of {what} is incomplete ({total} of {want} characters)")
    return Unreadable(RefusalCode.MALFORMED, f"the MRZ of {what} must be {count} lines of {width} characters")


def _td1_fields(lines: list[str]) -> Fields | Unreadable:
    l1, l2 = lines[0], lines[1]
    document, optional = _td1_document(l1)
    if document is None:
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the MRZ check digit of the document number is wrong")
    problem = _dates(l2[0:7], l2[8:15]) or _composite(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29])
    if problem is not None:
        return problem
    return Fields("TD1", l1[2:5], document, optional)


def _td1_document(l1: str) -> tuple[str | None, str]:
    """(document number or None if its check fails, remaining optional data)."""
    if l1[14] != "<":
        ok = _digit_ok(l1[5:14], l1[14])
        return (l1[5:14].rstrip("<") if ok else None), l1[15:30]
    extension = l1[15:30].split("<")[0]
    if len(extension) < 2 or not _digit_ok(l1[5:14] + extension[:-1], extension[-1]):
        return None, ""
    return l1[5:14] + extension[:-1], l1[15 + len(extension):30]


def _td3_fields(lines: list[str]) -> Fields | Unreadable:
    l2 = lines[1]
    if not _digit_ok(l2[0:9], l2[9]):
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the MRZ check digit of the document number is wrong")
    problem = _dates(l2[13:20], l2[21:28]) or _personal(l2[28:42], l2[42])
    problem = problem or _composite(l2[0:10] + l2[13:20] + l2[21:43], l2[43])
    if problem is not None:
        return problem
    return Fields("TD3", lines[0][2:5], l2[0:9].rstrip("<"), l2[28:42])


def _dates(birth: str, expiry: str) -> Unreadable | None:
    for name, field in (("birth date", birth), ("expiry date", expiry)):
        if not _digit_ok(field[:6], field[6]):
            return Unreadable(RefusalCode.BAD_CHECK_DIGIT, f"the MRZ check digit of the {name} is wrong")
        if is_digits(field[:6]) and not _yymmdd_real(field[:6]):
            return Unreadable(RefusalCode.IMPLAUSIBLE_DATE, f"the MRZ {name} is not a calendar date")
    return None


def _personal(number: str, digit: str) -> Unreadable | None:
    if digit == "<" and set(number) == {"<"}:
        return None
    if not _digit_ok(number, digit):
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the MRZ check digit of the personal number is wrong")
    return None


def _composite(data: str, digit: str) -> Unreadable | None:
    if not _digit_ok(data, digit):
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the MRZ composite check digit is wrong")
    return None


def _digit_ok(field: str, digit: str) -> bool:
    return is_digits(digit) and check_digit(field) == int(digit)


def _yymmdd_real(text: str) -> bool:
    yy, mm, dd = int(text[0:2]), int(text[2:4]), int(text[4:6])
    return is_real_date(2000 + yy, mm, dd) or is_real_date(1900 + yy, mm, dd)


def _identified(scheme: str, label: str, f: Fields, rules: DocumentRules) -> Identified | Unreadable:
    state = f.state.replace("<", "")
    if not f.document or not state:
        return Unreadable(RefusalCode.MALFORMED, "the MRZ has no document number or issuing state")
    pin = f.optional.strip("<")
    if state == rules.pin.country and pin:
        refusal = check_pin(pin, rules.pin, rules.election_date)
        if refusal is None:
            return Identified(scheme, pin, None, f"{label}, {state}")
        if refusal.reason is RefusalCode.BORN_AFTER_ELECTION:
            return refusal
    return Identified(scheme, f"{state}:{f.document}", None, f"{label}, {state}")
