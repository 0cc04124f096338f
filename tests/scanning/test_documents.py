"""The payload parsers: valid documents, every check digit, truncations, slips, privacy."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device import demo_documents as docs
from device.core.documents import (
    PIN_RULES,
    DocumentRules,
    Identified,
    RefusalCode,
    Unreadable,
    parse_manual,
    parse_payload,
    pin_rule_from_mapping,
)
from device.core.documents.mrz import check_digit
from device.core.documents.slip import issue_slip

from .conftest import STATION, VOTER, raw_public

PIN = docs.make_pin()


def refused(result: object, code: RefusalCode) -> bool:
    return isinstance(result, Unreadable) and result.reason is code


def replace_at(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1:]


def wrong_digit(digit: str) -> str:
    return str((int(digit) + 1) % 10)


# Valid documents ---------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["pin", "mrz-td1", "mrz-td3", "aamva"])
def test_each_document_identifies_its_number(scheme: str, rules: DocumentRules, valid_payloads: dict[str, str]) -> None:
    result = parse_payload(valid_payloads[scheme], rules)
    assert isinstance(result, Identified) and result.scheme == scheme
    expected = "636000:D12345678" if scheme == "aamva" else PIN
    assert result.number == expected and result.voter_hash is None


def test_front_mrz_and_back_barcode_name_the_same_number(rules: DocumentRules) -> None:
    front, back = parse_payload(docs.make_td1(PIN), rules), parse_payload(PIN, rules)
    assert isinstance(front, Identified) and isinstance(back, Identified) and front.number == back.number


def test_mrz_without_pin_uses_the_document_number(rules: DocumentRules) -> None:
    td1, td3 = parse_payload(docs.make_td1(""), rules), parse_payload(docs.make_td3(""), rules)
    assert isinstance(td1, Identified) and td1.number == "KGZ:ID1234567"
    assert isinstance(td3, Identified) and td3.number == "KGZ:AC1234567"


def test_foreign_mrz_uses_the_document_number_even_with_a_pin(rules: DocumentRules) -> None:
    result = parse_payload(docs.make_td3(PIN, state="KAZ"), rules)
    assert isinstance(result, Identified) and result.number == "KAZ:AC1234567"


def test_td1_long_document_number_is_checked(rules: DocumentRules) -> None:
    text = docs.make_td1("", document="ID123456789012")
    result = parse_payload(text, rules)
    assert isinstance(result, Identified) and result.number == "KGZ:ID123456789012"
    check_at = text.index("<890") + 6
    assert refused(parse_payload(replace_at(text, check_at, wrong_digit(text[check_at])), rules),
                   RefusalCode.BAD_CHECK_DIGIT)


def test_mrz_on_one_line_and_with_crlf(rules: DocumentRules) -> None:
    td1 = docs.make_td1(PIN)
    for text in (td1.replace("\n", ""), td1.replace("\n", "\r\n") + "\r\n"):
        result = parse_payload(text, rules)
        assert isinstance(result, Identified) and result.number == PIN


# Every MRZ check digit ------------------------------------------------------------------

TD1_CHECKS = {"document": (0, 14), "birth": (1, 6), "expiry": (1, 14), "composite": (1, 29)}
TD3_CHECKS = {"document": (1, 9), "birth": (1, 19), "expiry": (1, 27), "personal": (1, 42), "composite": (1, 43)}


@pytest.mark.parametrize("field", TD1_CHECKS)
def test_td1_each_check_digit_is_verified(field: str, rules: DocumentRules) -> None:
    lines = docs.make_td1(PIN).split("\n")
    line, at = TD1_CHECKS[field]
    lines[line] = replace_at(lines[line], at, wrong_digit(lines[line][at]))
    result = parse_payload("\n".join(lines), rules)
    assert refused(result, RefusalCode.BAD_CHECK_DIGIT)
    assert field.replace("birth", "birth date").replace("expiry", "expiry date") in result.detail  # type: ignore[union-attr]


@pytest.mark.parametrize("field", TD3_CHECKS)
def test_td3_each_check_digit_is_verified(field: str, rules: DocumentRules) -> None:
    lines = docs.make_td3(PIN).split("\n")
    line, at = TD3_CHECKS[field]
    lines[line] = replace_at(lines[line], at, wrong_digit(lines[line][at]))
    assert refused(parse_payload("\n".join(lines), rules), RefusalCode.BAD_CHECK_DIGIT)


def test_a_changed_data_character_breaks_its_check(rules: DocumentRules) -> None:
    td3 = docs.make_td3(PIN)
    at = td3.index("\n") + 1 + 3  # a document-number character
    assert refused(parse_payload(replace_at(td3, at, "9" if td3[at] != "9" else "8"), rules),
                   RefusalCode.BAD_CHECK_DIGIT)


def test_check_digit_matches_icao_example() -> None:
    # ICAO 9303 part 3 worked example: document number L898902C3 has check digit 6.
    assert check_digit("L898902C3") == 6 and check_digit("740812") == 2


def test_mrz_impossible_birth_date(rules: DocumentRules) -> None:
    assert refused(parse_payload(docs.make_td3(PIN, birth="851315"), rules), RefusalCode.IMPLAUSIBLE_DATE)


@pytest.mark.parametrize("cut", [1, 10, 31, 60, 80])
def test_td1_truncations(cut: int, rules: DocumentRules) -> None:
    text = docs.make_td1(PIN).replace("\n", "")[:-cut]
    assert refused(parse_payload(text, rules), RefusalCode.TRUNCATED)


@pytest.mark.parametrize("cut", [1, 44, 80])
def test_td3_truncations(cut: int, rules: DocumentRules) -> None:
    text = docs.make_td3(PIN)[:-cut]
    assert refused(parse_payload(text, rules), RefusalCode.TRUNCATED)


# PIN --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "code"), [
    (PIN[:-1], RefusalCode.TRUNCATED),
    (PIN + "1", RefusalCode.MALFORMED),
    ("3" + PIN[1:], RefusalCode.MALFORMED),
    (docs.make_pin(day=31, month=4), RefusalCode.IMPLAUSIBLE_DATE),
    (docs.make_pin(day=29, month=2, year=1987), RefusalCode.IMPLAUSIBLE_DATE),
    (docs.make_pin(year=1850), RefusalCode.IMPLAUSIBLE_DATE),
])
def test_pin_refusals(text: str, code: RefusalCode, rules: DocumentRules) -> None:
    assert refused(parse_payload(text, rules), code)


def test_pin_leap_day_is_plausible(rules: DocumentRules) -> None:
    assert isinstance(parse_payload(docs.make_pin(day=29, month=2, year=1988), rules), Identified)


def test_kazakh_rule_checks_its_check_digit() -> None:
    rules = DocumentRules(pin=PIN_RULES["KAZ"])
    iin = docs.make_iin()
    assert isinstance(parse_payload(iin, rules), Identified)
    assert refused(parse_payload(iin[:-1] + wrong_digit(iin[-1]), rules), RefusalCode.BAD_CHECK_DIGIT)


def test_rule_from_config_mapping() -> None:
    rule = pin_rule_from_mapping({"country": "xyz", "segments": [
        {"name": "birth_date", "length": 8, "date": "YYYYMMDD"}, {"name": "serial", "length": 3}]})
    rules = DocumentRules(pin=rule)
    assert isinstance(parse_payload("19900101123", rules), Identified)
    assert refused(parse_payload("19901301123", rules), RefusalCode.IMPLAUSIBLE_DATE)
    assert pin_rule_from_mapping({"country": "kgz"}) is PIN_RULES["KGZ"]


@pytest.mark.parametrize(("data", "message"), [
    ({"country": "ABC"}, "no built-in"),
    ({"country": "ABC", "segments": [{"name": "x"}]}, "needs a name and a length"),
    ({"country": "ABC", "segments": [{"name": "d", "length": 4, "date": "DDMMYYYY"}]}, "date layout"),
    ({"country": "ABC", "segments": [{"name": "s", "length": 2}], "check": "luhn9"}, "unknown personal-number check"),
])
def test_rule_config_errors_are_specific(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pin_rule_from_mapping(data)


def test_manual_entry_accepts_spaces_and_dashes(rules: DocumentRules) -> None:
    result = parse_manual(f" {PIN[:1]} {PIN[1:9]}-{PIN[9:]} ", rules)
    assert isinstance(result, Identified) and result.number == PIN and "typed" in result.document
    assert refused(parse_manual("", rules), RefusalCode.EMPTY)
    assert refused(parse_manual("12AB", rules), RefusalCode.MALFORMED)
    assert refused(parse_manual(PIN[:10], rules), RefusalCode.TRUNCATED)


# AAMVA -----------------------------------------------------------------------------

def test_aamva_variants(rules: DocumentRules) -> None:
    for text in (docs.make_aamva(separators=False), docs.make_aamva(version=1), "\r\n" + docs.make_aamva()):
        result = parse_payload(text, rules)
        assert isinstance(result, Identified) and result.number == "636000:D12345678"


@pytest.mark.parametrize("cut", [5, 15, 22, 28])
def test_aamva_truncated_header(cut: int, rules: DocumentRules) -> None:
    assert refused(parse_payload(docs.make_aamva()[:cut], rules), RefusalCode.TRUNCATED)


def test_aamva_without_document_number(rules: DocumentRules) -> None:
    text = docs.make_aamva().replace("DAQ", "DXX")
    assert refused(parse_payload(text, rules), RefusalCode.MALFORMED)


def test_aamva_without_header(rules: DocumentRules) -> None:
    assert refused(parse_payload("@" + "X" * 40, rules), RefusalCode.MALFORMED)


# Slips -----------------------------------------------------------------------------

def test_slip_identifies_the_keyed_voter(rules: DocumentRules, valid_payloads: dict[str, str]) -> None:
    result = parse_payload(valid_payloads["slip"], rules)
    assert isinstance(result, Identified) and result.voter_hash == VOTER and result.number is None


def test_slip_for_another_station(rules: DocumentRules, cec_key: Ed25519PrivateKey) -> None:
    assert refused(parse_payload(issue_slip(cec_key, "KG-0999", VOTER, 1), rules), RefusalCode.WRONG_STATION)


def test_forged_slip(rules: DocumentRules) -> None:
    forged = issue_slip(Ed25519PrivateKey.generate(), STATION, VOTER, 1)
    assert refused(parse_payload(forged, rules), RefusalCode.BAD_SIGNATURE)


def test_altered_slip(rules: DocumentRules, valid_payloads: dict[str, str]) -> None:
    slip = valid_payloads["slip"]
    body_at = len("PBS1.") + 3
    altered = replace_at(slip, body_at, "A" if slip[body_at] != "A" else "B")
    assert refused(parse_payload(altered, rules), RefusalCode.BAD_SIGNATURE)
    assert refused(parse_payload(slip.rsplit(".", 1)[0] + ".", rules), RefusalCode.MALFORMED)


def test_slip_without_station_key(valid_payloads: dict[str, str]) -> None:
    assert refused(parse_payload(valid_payloads["slip"], DocumentRules(station_id=STATION)), RefusalCode.NO_SLIP_KEY)


def test_signed_slip_with_noncanonical_body_is_refused(cec_key: Ed25519PrivateKey) -> None:
    import base64
    body = base64.urlsafe_b64encode(b'{"station":"KG-0101","voter":"' + VOTER.encode() + b'","serial":1}')
    signed = "PBS1." + body.rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(cec_key.sign(signed.encode())).rstrip(b"=").decode()
    rules = DocumentRules(station_id=STATION, slip_key=raw_public(cec_key))
    assert refused(parse_payload(f"{signed}.{sig}", rules), RefusalCode.MALFORMED)


def test_issue_slip_refuses_a_raw_number(cec_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="keyed hash"):
        issue_slip(cec_key, STATION, PIN, 1)


# Registry and privacy -------------------------------------------------------------------

def test_scheme_not_accepted(valid_payloads: dict[str, str]) -> None:
    rules = DocumentRules(accepted=frozenset({"pin"}))
    assert refused(parse_payload(valid_payloads["aamva"], rules), RefusalCode.SCHEME_NOT_ACCEPTED)


@pytest.mark.parametrize(("text", "code"), [
    ("", RefusalCode.EMPTY), ("  \r\n", RefusalCode.EMPTY), ("hello world", RefusalCode.UNKNOWN_FORMAT),
    ("1" * 5000, RefusalCode.TOO_LONG),
])
def test_other_refusals(text: str, code: RefusalCode, rules: DocumentRules) -> None:
    assert refused(parse_payload(text, rules), code)


def test_refusal_details_and_reprs_never_carry_the_number(rules: DocumentRules) -> None:
    spoiled = [PIN[:-1], docs.make_pin(day=31, month=4), replace_at(docs.make_td3(PIN), 130, "0"),
               docs.make_td1(PIN)[:-5], replace_at(docs.make_td1(PIN), 31, "9")]
    for text in spoiled:
        result = parse_payload(text, rules)
        assert isinstance(result, Unreadable)
        assert PIN[1:9] not in result.detail and PIN[-5:] not in result.detail
    assert PIN not in repr(parse_payload(PIN, rules))


def test_unknown_scheme_in_rules_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown document schemes"):
        DocumentRules(accepted=frozenset({"pin", "palm"}))
