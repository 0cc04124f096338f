"""Documents as they really arrive: odd characters, impossible birth dates, keyboard-mode licence data.

Each test here names the fault it guards: a parser that raised on one odd
character (``²`` in a licence header), a personal number of someone born
after the election, and the licence data of keyboard-mode scanners (a
byte-order mark, a noise line, ``|`` for separators, a version 1 header with
a jurisdiction version) that was refused.
"""

from __future__ import annotations

import pytest

from device import demo_documents as docs
from device.core.documents import (
    PARSERS,
    DocumentRules,
    Identified,
    RefusalCode,
    Unreadable,
    parse_manual,
    parse_payload,
)
from device.core.documents.pin import check_pin
from device.core.documents.rules import KGZ

ELECTION = (2026, 11, 29)
LICENCE = "636000:D12345678"


def refused(result: object, code: RefusalCode) -> bool:
    return isinstance(result, Unreadable) and result.reason is code


def number(result: object) -> str | None:
    return result.number if isinstance(result, Identified) else None


def _entries_at(text: str) -> int:
    """Where the number of entries starts in a version 10 header made by ``make_aamva``."""
    return text.index("ANSI ") + len("ANSI ") + 6 + 2 + 2


# Item: one odd character in a licence must be a refusal, never an exception -----------------

ODD = ["²", "³", "¹", "٣", "①", "𝟚", "\u0660", "\ufeff", "\x00", "\ud800"]


@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("where", ["entries", "iin", "version", "jurisdiction", "offset", "length"])
def test_an_odd_character_anywhere_in_a_licence_header_is_refused(odd: str, where: str,
                                                                   rules: DocumentRules) -> None:
    text = docs.make_aamva()
    entries = _entries_at(text)
    at = {"iin": entries - 10, "version": entries - 4, "jurisdiction": entries - 2, "entries": entries,
          "offset": entries + 4, "length": entries + 8}[where]
    changed = text[:at] + odd * 2 + text[at + 2:]
    result = parse_payload(changed, rules)
    assert isinstance(result, Unreadable), where
    assert result.reason in (RefusalCode.MALFORMED, RefusalCode.TRUNCATED)


@pytest.mark.parametrize("odd", ["²", "٣"])
def test_non_ascii_digits_never_pass_as_digits(odd: str, rules: DocumentRules) -> None:
    pin = docs.make_pin()
    td3 = docs.make_td3(pin)
    assert not isinstance(parse_payload(pin[:-1] + odd, rules), Identified)
    assert refused(parse_manual(pin[:-1] + odd, rules), RefusalCode.MALFORMED)
    assert not isinstance(parse_payload(td3[:-1] + odd, rules), Identified)
    assert check_pin(pin[:-1] + odd, KGZ) is not None


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.scheme)
def test_each_parser_called_directly_refuses_odd_text(parser: object, rules: DocumentRules) -> None:
    from device.core.documents import Parser
    assert isinstance(parser, Parser)
    for text in ("²" * 90, "P<" + "²" * 86, "\n".join(["I" + "³" * 29] * 3), "@\n\x1e\rANSI ²²²²²²", "PBS1.²."):
        assert isinstance(parser.parse(text, rules), Unreadable)


# Item: birth dates after the election day --------------------------------------------------

@pytest.fixture
def on_election_day(rules: DocumentRules) -> DocumentRules:
    from dataclasses import replace
    return replace(rules, election_date=ELECTION)


def test_a_personal_number_born_in_2099_is_refused_scanned_or_typed(on_election_day: DocumentRules) -> None:
    future = docs.make_pin(day=1, month=1, year=2099)
    scanned, typed = parse_payload(future, on_election_day), parse_manual(future, on_election_day)
    for result in (scanned, typed):
        assert refused(result, RefusalCode.BORN_AFTER_ELECTION)
        assert isinstance(result, Unreadable)
        assert "after the election day (2026-11-29)" in result.detail and future not in result.detail


def test_born_the_day_after_the_election_is_refused_born_that_day_is_read(on_election_day: DocumentRules) -> None:
    assert refused(parse_payload(docs.make_pin(day=30, month=11, year=2026), on_election_day),
                   RefusalCode.BORN_AFTER_ELECTION)
    that_day = docs.make_pin(day=29, month=11, year=2026)
    assert number(parse_payload(that_day, on_election_day)) == that_day


def test_a_passport_carrying_a_pin_born_after_the_election_is_refused(on_election_day: DocumentRules) -> None:
    future = docs.make_pin(day=1, month=1, year=2099)
    for mrz in (docs.make_td1(future), docs.make_td3(future)):
        assert refused(parse_payload(mrz, on_election_day), RefusalCode.BORN_AFTER_ELECTION)


def test_the_kazakh_rule_checks_the_birth_date_too() -> None:
    from device.core.documents import PIN_RULES
    rules = DocumentRules(pin=PIN_RULES["KAZ"], election_date=ELECTION)
    born_2027 = docs.make_iin(yymmdd="270101", century_sex=5)
    assert refused(parse_payload(born_2027, rules), RefusalCode.BORN_AFTER_ELECTION)
    assert isinstance(parse_payload(docs.make_iin(), rules), Identified)


def test_an_impossible_election_day_is_refused() -> None:
    with pytest.raises(ValueError, match="not a calendar date"):
        DocumentRules(election_date=(2026, 2, 30))


# Item: licence data as keyboard-mode scanners send it ---------------------------------------

def _piped(text: str) -> str:
    """A scanner that cannot type control characters sends ``|`` for each of them."""
    return text.replace("\n", "|").replace("\x1e", "|").replace("\r", "|")


KEYBOARD_MODE = {
    "byte-order mark": "\ufeff" + docs.make_aamva(),
    "noise line": "PDF417 READ OK\r\n" + docs.make_aamva(),
    "symbology prefix": "]L2" + docs.make_aamva(),
    "pipe separators": _piped(docs.make_aamva()),
    "pipes, mark and noise": "\ufeff\x02\r\n" + _piped(docs.make_aamva(separators=False)),
    "a noise line starting with @": "@scanner\r\n" + docs.make_aamva(),
    "version 1 with a jurisdiction version": docs.make_aamva(version=1, jurisdiction=True),
    "version 1 with it, keyboard mode": docs.make_aamva(version=1, jurisdiction=True, separators=False),
    "version 8 without one": docs.make_aamva(version=8, jurisdiction=False),
}


@pytest.mark.parametrize("name", KEYBOARD_MODE)
def test_keyboard_mode_licence_data_is_read(name: str, rules: DocumentRules) -> None:
    assert number(parse_payload(KEYBOARD_MODE[name], rules)) == LICENCE


def test_the_licence_header_must_still_be_found_near_the_start(rules: DocumentRules) -> None:
    far = "x" * 200 + "\n" + docs.make_aamva()
    assert refused(parse_payload(far, rules), RefusalCode.UNKNOWN_FORMAT)
    assert refused(parse_payload(_piped(docs.make_aamva()).replace("DAQ", "DXX"), rules), RefusalCode.MALFORMED)


@pytest.mark.parametrize("scheme", ["pin", "mrz-td1", "mrz-td3", "slip"])
def test_a_byte_order_mark_before_any_document_is_dropped(scheme: str, rules: DocumentRules,
                                                          valid_payloads: dict[str, str]) -> None:
    plain, marked = parse_payload(valid_payloads[scheme], rules), parse_payload("\ufeff" + valid_payloads[scheme], rules)
    assert isinstance(marked, Identified) and marked == plain
