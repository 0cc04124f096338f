"""The document rules of a station: which schemes it accepts and how a personal number looks.

A ``PinRule`` is data, not code: a sequence of ``Segment`` values (a sex or
century digit, a birth date in a named layout, a serial) plus an optional
check-digit algorithm. ``PIN_RULES`` holds the built-in countries (Kyrgyzstan
is the default); ``pin_rule_from_mapping`` builds one from the station config
or package, so another country needs no code change, and refuses anything
malformed with a ValueError naming the problem. ``DocumentRules`` is what
``parse_payload`` is given: the PIN rule, the accepted schemes, the station
id, the CEC slip key (raw 32-byte Ed25519 public key, or None) and the
election day (a birth date after it is impossible for a voter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMES: tuple[str, ...] = ("pin", "mrz-td1", "mrz-td3", "aamva", "slip")
DATE_LAYOUTS: tuple[str, ...] = ("DDMMYYYY", "YYYYMMDD", "YYMMDD", "DDMMYY")
CHECKS: tuple[str, ...] = ("none", "kz-iin")
DIGITS = "0123456789"

Day = tuple[int, int, int]
"""A calendar day as (year, month, day); tuples compare in calendar order."""


def is_digits(text: str) -> bool:
    """True if ``text`` is one or more ASCII digits (``str.isdigit`` also takes ``²`` and ``٣``)."""
    return bool(text) and all(c in DIGITS for c in text)


def is_real_date(year: int, month: int, day: int) -> bool:
    """True if the day exists in the proleptic Gregorian calendar."""
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    return day <= days


@dataclass(frozen=True)
class Segment:
    """A run of digits in a personal number.

    ``digits`` limits every position of the segment (a sex digit: ``"12"``);
    ``date`` names a birth-date layout; ``centuries`` maps this segment's
    digit to the century of a two-digit birth year elsewhere in the number.
    """

    name: str
    length: int
    digits: str = DIGITS
    date: str = ""
    centuries: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PinRule:
    """How a country's personal number is built; see ``PIN_RULES``."""

    country: str
    segments: tuple[Segment, ...]
    check: str = "none"
    earliest_birth_year: int = 1900
    latest_birth_year: int = 2100

    @property
    def length(self) -> int:
        return sum(s.length for s in self.segments)


KGZ = PinRule(
    country="KGZ",
    segments=(
        Segment("sex", 1, digits="12"),
        Segment("birth_date", 8, date="DDMMYYYY"),
        Segment("serial", 5),
    ),
)

KAZ = PinRule(
    country="KAZ",
    segments=(
        Segment("birth_date", 6, date="YYMMDD"),
        Segment("century_sex", 1, digits="123456",
                centuries=(("1", 1800), ("2", 1800), ("3", 1900), ("4", 1900), ("5", 2000), ("6", 2000))),
        Segment("serial", 4),
        Segment("check", 1),
    ),
    check="kz-iin",
    earliest_birth_year=1800,
)

PIN_RULES: dict[str, PinRule] = {"KGZ": KGZ, "KAZ": KAZ}


@dataclass(frozen=True)
class DocumentRules:
    """Everything the payload parsers need to know about this station."""

    pin: PinRule = KGZ
    accepted: frozenset[str] = field(default_factory=lambda: frozenset(SCHEMES))
    station_id: str = ""
    slip_key: bytes | None = None
    max_length: int = 4096
    election_date: Day | None = None

    def __post_init__(self) -> None:
        unknown = sorted(str(s) for s in set(self.accepted) - set(SCHEMES))
        if unknown:
            raise ValueError(f"unknown document schemes {unknown}; known: {', '.join(SCHEMES)}")
        if self.slip_key is not None and len(self.slip_key) != 32:
            raise ValueError("the CEC slip key must be 32 raw bytes (an Ed25519 public key)")
        if self.election_date is not None and not is_real_date(*self.election_date):
            raise ValueError(f"the election day {self.election_date} is not a calendar date")


def pin_rule_from_mapping(data: Mapping[str, Any]) -> PinRule:
    """A PIN rule from config: ``{"country": "KGZ"}`` for a built-in one, or a full definition.

    A full definition is ``{"country", "segments": [{"name", "length",
    "digits"?, "date"?, "centuries"?}], "check"?, "earliest_birth_year"?,
    "latest_birth_year"?}``. Raises ValueError naming the first problem,
    whatever the shape of ``data``.
    """
    if not isinstance(data, Mapping):
        raise ValueError("the personal-number rule must be a table such as {\"country\": \"KGZ\"}")
    country = str(data.get("country", "")).upper()
    if "segments" not in data:
        if country not in PIN_RULES:
            raise ValueError(f"no built-in personal-number rule for {country!r}; known: {', '.join(PIN_RULES)}")
        return PIN_RULES[country]
    raw_segments = data["segments"]
    if not isinstance(raw_segments, (list, tuple)):
        raise ValueError("the personal-number rule's segments must be a list of tables")
    segments = tuple(_segment(i, s) for i, s in enumerate(raw_segments))
    rule = PinRule(
        country=country,
        segments=segments,
        check=str(data.get("check", "none")),
        earliest_birth_year=_whole(data.get("earliest_birth_year", 1900), "earliest_birth_year"),
        latest_birth_year=_whole(data.get("latest_birth_year", 2100), "latest_birth_year"),
    )
    _validate(rule)
    return rule


def _whole(value: Any, what: str) -> int:
    """``value`` as an int (an int, or a string of ASCII digits); ValueError naming ``what`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return int(value)
    if isinstance(value, str) and is_digits(value.strip().lstrip("-")) and len(value) <= 9:
        return int(value)
    raise ValueError(f"{what} must be a whole number, got {type(value).__name__}")


def _segment(index: int, raw: Any) -> Segment:
    if not isinstance(raw, Mapping) or "name" not in raw or "length" not in raw:
        raise ValueError(f"personal-number segment {index + 1} needs a name and a length")
    centuries = raw.get("centuries", {})
    if not isinstance(centuries, Mapping):
        raise ValueError(f"personal-number segment {index + 1}: centuries must map a digit to a year")
    what = f"personal-number segment {index + 1}"
    return Segment(str(raw["name"]), _whole(raw["length"], f"{what} length"), str(raw.get("digits", DIGITS)),
                   str(raw.get("date", "")),
                   tuple((str(k), _whole(v, f"{what} century")) for k, v in centuries.items()))


def _validate(rule: PinRule) -> None:
    if not rule.segments or rule.length > 32:
        raise ValueError("a personal number needs 1 to 32 digits in its segments")
    if rule.check not in CHECKS:
        raise ValueError(f"unknown personal-number check {rule.check!r}; known: {', '.join(CHECKS)}")
    if not rule.earliest_birth_year <= rule.latest_birth_year:
        raise ValueError("earliest_birth_year must not be after latest_birth_year")
    for s in rule.segments:
        if s.length < 1 or not s.digits or set(s.digits) - set(DIGITS):
            raise ValueError(f"segment {s.name!r}: length must be positive and digits only 0-9")
        if s.date and (s.date not in DATE_LAYOUTS or len(s.date) != s.length):
            raise ValueError(f"segment {s.name!r}: date layout must be one of {DATE_LAYOUTS} and match its length")
    if rule.check == "kz-iin" and rule.length != 12:
        raise ValueError("the kz-iin check needs a 12-digit number")
