"""The national personal number (PIN), checked against the station's ``PinRule``.

A scanned PIN (the 1D barcode on the back of an ID card, a typed number) must
be exactly the rule's digits: each segment's allowed digits, a real birth date
within the rule's years, the check digit if the rule has one, and a birth
date no later than the election day (``DocumentRules.election_date``): no
voter can be born after the day they vote. The normalized number is the
digits alone. ``check_pin`` is shared with the MRZ parser, which finds the
PIN in a document's optional data.
"""

from __future__ import annotations

from .result import Identified, RefusalCode, Unreadable
from .rules import Day, DocumentRules, PinRule, Segment, is_digits, is_real_date

SCHEME = "pin"

__all__ = ["SCHEME", "check_pin", "claims", "is_real_date", "kz_iin_check_digit", "parse", "parse_manual"]


def claims(text: str) -> bool:
    """A PIN payload is digits only (surrounding blanks allowed)."""
    return is_digits(text.strip())


def parse(text: str, rules: DocumentRules) -> Identified | Unreadable:
    digits = text.strip()
    refusal = check_pin(digits, rules.pin, rules.election_date)
    if refusal is not None:
        return refusal
    return Identified(SCHEME, digits, None, f"personal number, {rules.pin.country}")


def parse_manual(text: str, rules: DocumentRules) -> Identified | Unreadable:
    """A number the clerk typed: the PIN rule only; spaces and dashes are ignored."""
    digits = "".join(c for c in text if c not in " -\t")
    if not digits:
        return Unreadable(RefusalCode.EMPTY, "no number was typed")
    if not is_digits(digits):
        return Unreadable(RefusalCode.MALFORMED, "a personal number has digits only")
    refusal = check_pin(digits, rules.pin, rules.election_date)
    if refusal is not None:
        return refusal
    return Identified(SCHEME, digits, None, f"personal number typed by the clerk, {rules.pin.country}")


def check_pin(digits: str, rule: PinRule, election_date: Day | None = None) -> Unreadable | None:
    """None if ``digits`` is a valid number under ``rule`` for a voter on ``election_date``, else the refusal."""
    if not is_digits(digits):
        return Unreadable(RefusalCode.MALFORMED, "a personal number has digits only")
    if len(digits) != rule.length:
        code = RefusalCode.TRUNCATED if len(digits) < rule.length else RefusalCode.MALFORMED
        return Unreadable(code, f"a {rule.country} personal number has {rule.length} digits, this has {len(digits)}")
    parts = _split(digits, rule)
    for seg, part in parts:
        if any(c not in seg.digits for c in part):
            what = seg.name.replace("_", " ")
            return Unreadable(RefusalCode.MALFORMED, f"the {what} digits of the personal number are out of range")
    births = _birth_dates(parts, rule)
    if not all(b is not None and rule.earliest_birth_year <= b[0] <= rule.latest_birth_year for b in births):
        return Unreadable(RefusalCode.IMPLAUSIBLE_DATE, "the birth date in the personal number is not a plausible date")
    if not _check_ok(digits, rule.check):
        return Unreadable(RefusalCode.BAD_CHECK_DIGIT, "the personal number's check digit is wrong")
    if election_date is not None and any(b is not None and b > election_date for b in births):
        y, m, d = election_date
        return Unreadable(RefusalCode.BORN_AFTER_ELECTION,
                          f"the birth date in the personal number is after the election day ({y:04d}-{m:02d}-{d:02d}):"
                          " no voter can hold this number; it was misread or mistyped")
    return None


def _split(digits: str, rule: PinRule) -> list[tuple[Segment, str]]:
    out, at = [], 0
    for seg in rule.segments:
        out.append((seg, digits[at:at + seg.length]))
        at += seg.length
    return out


def _birth_dates(parts: list[tuple[Segment, str]], rule: PinRule) -> list[Day | None]:
    """The birth date of each date segment, None where it is not a calendar date."""
    century = next((dict(s.centuries).get(p[0]) for s, p in parts if s.centuries), None)
    return [_date_of(seg.date, part, century) for seg, part in parts if seg.date]


def _date_of(layout: str, part: str, century: int | None) -> Day | None:
    day = int(part[layout.index("DD"):layout.index("DD") + 2])
    month = int(part[layout.index("MM"):layout.index("MM") + 2])
    if "YYYY" in layout:
        year = int(part[layout.index("YYYY"):layout.index("YYYY") + 4])
    else:
        year = (century if century is not None else 1900) + int(part[layout.index("YY"):layout.index("YY") + 2])
    return (year, month, day) if is_real_date(year, month, day) else None


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
