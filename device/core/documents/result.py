"""What a payload parser returns: an identification or a typed refusal.

``Identified`` carries either the normalized personal (or document) number,
which the appliance turns into a keyed hash at once, or a voter hash that
arrived already keyed (the CEC voter slip). ``Unreadable`` carries a
``RefusalCode`` and a sentence for the clerk; the sentence never quotes the
payload or any number read from it, so it may be journalled and logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RefusalCode(str, enum.Enum):
    """Why a scanned or typed payload did not identify anyone."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNKNOWN_FORMAT = "unknown_format"
    SCHEME_NOT_ACCEPTED = "scheme_not_accepted"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    BAD_CHECK_DIGIT = "bad_check_digit"
    IMPLAUSIBLE_DATE = "implausible_date"
    BORN_AFTER_ELECTION = "born_after_election"
    BAD_SIGNATURE = "bad_signature"
    WRONG_STATION = "wrong_station"
    NO_SLIP_KEY = "no_slip_key"


@dataclass(frozen=True)
class Identified:
    """A document that names a voter. Exactly one of ``number`` / ``voter_hash`` is set.

    ``scheme`` is the parser's name (``pin``, ``mrz-td1``, ``mrz-td3``,
    ``aamva``, ``slip``); ``document`` is a short, non-identifying label for
    the screen ("ID card (TD1), KGZ").
    """

    scheme: str
    number: str | None
    voter_hash: str | None
    document: str

    def __post_init__(self) -> None:
        if (self.number is None) == (self.voter_hash is None):
            raise ValueError("exactly one of number and voter_hash must be set")

    def __repr__(self) -> str:  # the number never reaches a log through repr
        keyed = "voter_hash" if self.voter_hash is not None else "number"
        return f"Identified(scheme={self.scheme!r}, document={self.document!r}, carries={keyed})"


@dataclass(frozen=True)
class Unreadable:
    """A refusal: the code is for records and counters, ``detail`` for the clerk."""

    reason: RefusalCode
    detail: str


ParseResult = Identified | Unreadable


def refuse(reason: RefusalCode, detail: str) -> Unreadable:
    return Unreadable(reason, detail)
