"""The identity layer: the list key checked against the package, the election day, faults that must not escape."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from device import demo_documents as docs
from device.core import documents
from device.core.documents import DocumentRules
from device.identity import Identity, IdentityError, load_list_key, rules_from_package
from device.package import StationPackage, list_key_check

RIGHT, WRONG = bytes(range(32)), bytes(range(1, 33))


def package(key_check: str | None, election: dict[str, Any] | None = None) -> StationPackage:
    voters: dict[str, Any] = {"entries": [], "digest": "", "count": 0}
    if key_check is not None:
        voters["key_check"] = key_check
    payload = {"station": {"id": "KG-0101"}, "voters": voters,
               "election": election or {"id": "e", "poll_date": "2026-11-29", "expires_at": "2026-12-31T00:00:00Z"}}
    return StationPackage(payload, {})


def key_file(tmp_path: Path, key: bytes) -> Path:
    path = tmp_path / "list.key"
    path.write_bytes(key)
    return path


# A wrong list key ------------------------------------------------------------------------------

def test_a_list_key_that_does_not_match_the_package_is_refused_with_cause_and_fix(tmp_path: Path) -> None:
    path = key_file(tmp_path, WRONG)
    with pytest.raises(IdentityError) as refused:
        load_list_key(path, package(list_key_check(RIGHT)))
    message = str(refused.value)
    assert f"the list key {path} does not belong to the station package of KG-0101" in message
    assert "voters.key_check does not match" in message and "refused as not on the list" in message
    assert "pollbox-provision unit install-package" in message


def test_the_right_list_key_loads_and_a_package_without_a_key_check_cannot_check(tmp_path: Path) -> None:
    assert load_list_key(key_file(tmp_path, RIGHT), package(list_key_check(RIGHT))) == RIGHT
    assert load_list_key(key_file(tmp_path, WRONG), package(None)) == WRONG
    assert load_list_key(key_file(tmp_path, WRONG)) == WRONG  # no package given: the file's shape only


# The election day from the package -------------------------------------------------------------

@pytest.mark.parametrize(("election", "day"), [
    ({"poll_date": "2026-11-29", "expires_at": "2026-12-31T00:00:00Z"}, (2026, 11, 29)),
    ({"expires_at": "2099-12-31T23:59:59Z"}, (2099, 12, 31)),
    ({}, None),
])
def test_rules_from_package_carry_the_election_day(election: dict[str, str], day: tuple[int, int, int] | None) -> None:
    rules = rules_from_package({"station": {"id": "KG-0101"}, "election": election})
    assert rules.election_date == day


@pytest.mark.parametrize("election", [{"poll_date": "29.11.2026"}, {"expires_at": "soon"}, ["2026-11-29"]])
def test_a_package_with_an_unreadable_election_day_is_refused(election: object) -> None:
    with pytest.raises(IdentityError, match="the package's document rules are unusable: .*election"):
        rules_from_package({"station": {"id": "KG-0101"}, "election": election})


def test_a_pin_born_after_the_packages_election_day_is_refused_at_the_desk() -> None:
    rules = rules_from_package(package(None).payload)
    identity = Identity(list_key=RIGHT, rules=rules)
    future = docs.make_pin(day=1, month=1, year=2099)
    for resolved in (identity.resolve_scan(future), identity.resolve_manual(future)):
        assert resolved.voter_hash is None
        assert resolved.detail.startswith("born_after_election: the birth date in the personal number is after")
        assert future not in resolved.detail
    assert identity.resolve_scan(docs.make_pin()).voter_hash is not None


# Faults that must not escape the desk ----------------------------------------------------------

def test_a_scan_with_a_lone_surrogate_is_refused_not_raised(rules: DocumentRules) -> None:
    identity = Identity(list_key=RIGHT, rules=rules)
    resolved = identity.resolve_scan("2150319\ud80085")  # an Alt code typed half a character
    assert resolved.voter_hash is None and resolved.detail.startswith("unknown_format:")
    assert resolved.desk_key != identity.resolve_scan("2150319\ud80185").desk_key


def test_a_parser_that_raises_all_the_same_is_a_refusal_and_a_log_line_without_the_payload(
        rules: DocumentRules, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str, rules: DocumentRules) -> documents.ParseResult:
        raise ValueError(f"invalid literal for int() with base 10: {text!r}")

    monkeypatch.setattr(documents, "PARSERS", tuple(
        documents.Parser(p.scheme, p.claims, broken if p.scheme == "pin" else p.parse) for p in documents.PARSERS))
    pin = docs.make_pin()
    with caplog.at_level(logging.ERROR, logger="pollbox.identity"):
        resolved = Identity(list_key=RIGHT, rules=rules).resolve_scan(pin)
    assert resolved.voter_hash is None
    assert resolved.detail == "malformed: the document could not be read (a parser fault, logged)"
    assert "document parser fault: ValueError at test_identity.py:" in caplog.text
    assert pin not in caplog.text
