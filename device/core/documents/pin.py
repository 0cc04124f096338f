"""The national personal number (PIN), checked against the station's ``PinRule``.

A scanned PIN (the 1D barcode on the back of an ID card, a typed number) must
be exactly the rule's digits: each segment's allowed digits, a real birth date
within the rule's years, and the check digit if the rule has one. The
normalized number is the digits alone. ``check_pin`` is shared with the MRZ
parser, which finds the PIN in a document's optional data.
"""

from __future__ import annotations

from .result import Identified, RefusalCode, Unreadable
from .rules import DocumentRules, PinRule, Segment

SCHEME = "pin"


def claims(text: str) -> bool:
    """A PIN payload is digits only (surrounding blanks allowed)."""
    stripped = text.strip()
    return bool(stripped) and stripped.isascii() and stripped.isdigit()


def parse(text: str, rules: DocumentRules) -> Identified | Unreadable:
    digits = text.strip()
    refusal = check_pin(digits, rules.pin)
    if refusal is not None:
        return refusal
    return Identified(SCHEME, digits, None, f"personal number, {rules.pin.country}")


def parse_manual(text: str, rules: DocumentRules) -> Identified | Unreadable:
    """A number the clerk typed: the PIN rule only; spaces and dashes are ignored."""
    digits = "".join(c for c in text if c not in " -\t")
    if not digits:
        return Unreadable(RefusalCode.EMPTY, "no number was typed")
    if not (digits.isascii() and digits.isdigit()):
        return Unreadable(RefusalCode.MALFORMED, "a personal number has digits only")
    refusal = check_pin(digits, rules.pin)
    if refusal is not None:
        return refusal
    return Identified(SCHEME, digits, None, f"personal number typed by the clerk, {rules.pin.country}")


def check_pin(digits: str, rule: PinRule) -> Unreadable | None:
    """None if ``digits`` is a valid number under ``rule``, else the refusal."""
    if not (digits.isascii() and digits.isdigit()):
        return Unreadable(RefusalCode.MALFORMED, "a personal number has digits only")
    if len(digits) != rule.length:
        code = RefusalCode.TRUNCATED if len(digits) < rule.length else RefusalCode.MALFORMED
        return Unreadable(code, f"a {rule.country} personal number has {rule.length} digits, this has {len(digits)}")
    parts = _split(digits, rule)
    for seg, part in parts:
        if any(c not in seg.digits for c in part):
            what = seg.name.replace("_", " ")
            return Unreadable(RefusalCode.MALFORMED, f"the {what} digits of the personal number are out of range")
    if not _date_ok(parts, rule):
        return Unreadable(RefusalCode.IMPLAUSIBLE_DATE, "the birth date in the personal number is not a plausible date")
    if not _check_ok(digits, rule.check):
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the personal number's check digit is wrong")
    return None


def _split(digits: str, rule: PinRule) -> list[tuple[Segment, str]]:
    out, at = [], 0
    for seg in rule.segments:
        out.append((seg, digits[at:at + seg.length]))
        at += seg.length
    return out


def _date_ok(parts: list[tuple[Segment, str]], rule: PinRule) -> bool:
    century = next((dict(s.centuries).get(p[0]) for s, p in parts if s.centuries), None)
    return all(_plausible(seg.date, part, century, rule) for seg, part in parts if seg.date)


def _plausible(layout: str, part: str, century: int | None, rule: PinRule) -> bool:
    day = int(part[layout.index("DD"):layout.index("DD") + 2])
    month = int(part[layout.index("MM"):layout.index("MM") + 2])
    if "YYYY" in layout:
        year = int(part[layout.index("YYYY"):layout.index("YYYY") + 4])
    else:
        year = (century if century is not None else 1900) + int(part[layout.index("YY"):layout.index("YY") + 2])
    return rule.earliest_birth_year <= year <= rule.latest_birth_year and is_real_date(year, month, day)


def is_real_date(year: int, month: int, day: int) -> bool:
    """True if the day exists in the proleptic Gregorian calendar."""
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    return day <= days


def _check_ok(digits: str, check: str) -> bool:
    if check == "kz-iin":
        return kz_iin_check_digit(digits[:11]) == int(digits[11])
    return True


def kz_iin_check_digit(first11: str) -> int | None:
    """The Kazakh IIN check digit of the first 11 digits, or None if no such number is issued."""
    values = [int(c) for c in first11]
    total = sum(w * v for w, v in zip(range(1, 12), values, strict=True)) % 11
    if total == 10:
        total = sum(w * v for w, v in zip((3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2), values, strict=True)) % 11
    return None if total == 10 else total
