"""Fuzzing the parsers: random and mutated payloads only ever give a result, never an exception.

The quick suite runs a few thousand examples; the full suite (``slow``) runs
over 100,000 across the strategies below.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.core.documents import DocumentRules, Identified, Unreadable, parse_manual, parse_payload
from device.core.documents import samples as docs
from device.core.documents.slip import issue_slip
from device.core.documents.slip import parse as parse_slip

from .conftest import STATION, VOTER

QUICK, FULL, BATCH = 500, 2_500, 20
"""The full suite: 2 x 2,500 examples of 20 payloads each, 100,000 payloads."""
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<@\n\r\x1e .-_=+/abcxyzÄ€"


def _mutate(text: str, data: st.DataObject) -> str:
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate", "repeat"]))
        at = data.draw(st.integers(0, max(0, len(text) - 1)))
        if op == "replace" and text:
            text = text[:at] + data.draw(st.sampled_from(ALPHABET)) + text[at + 1:]
        elif op == "insert":
            text = text[:at] + data.draw(st.text(ALPHABET, max_size=3)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        elif op == "truncate":
            text = text[:at]
        else:
            text = text + text[at:]
    return text


def _check(result: object) -> None:
    assert isinstance(result, (Identified, Unreadable))
    if isinstance(result, Identified):
        assert (result.number is None) != (result.voter_hash is None)


@pytest.fixture(scope="module")
def seeds(cec_key: object) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    assert isinstance(cec_key, Ed25519PrivateKey)
    pin = docs.make_pin()
    return [pin, docs.make_td1(pin), docs.make_td3(pin), docs.make_td1("", document="ID123456789012"),
            docs.make_aamva(), docs.make_aamva(separators=False), docs.make_aamva(version=1),
            issue_slip(cec_key, STATION, VOTER, 9)]


def _mutated(rules: DocumentRules, seeds: list[str], data: st.DataObject) -> None:
    text = _mutate(data.draw(st.sampled_from(seeds)), data)
    _check(parse_payload(text, rules))
    _check(parse_manual(text, rules))


def _random(rules: DocumentRules, text: str) -> None:
    _check(parse_payload(text, rules))
    _check(parse_manual(text, rules))
    _check(parse_slip(text, rules))


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
_RANDOM_TEXT = st.one_of(st.text(max_size=200), st.text(ALPHABET, max_size=120),
                         st.from_regex(r"PBS1\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,90}", fullmatch=True),
                         st.from_regex(r"[IACP][A-Z<]{4}[A-Z0-9<\n]{0,100}", fullmatch=True))


@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_mutated_payloads_quick(rules: DocumentRules, seeds: list[str], data: st.DataObject) -> None:
    _mutated(rules, seeds, data)


@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
@given(text=_RANDOM_TEXT)
def test_random_payloads_quick(rules: DocumentRules, text: str) -> None:
    _random(rules, text)


@pytest.mark.slow
@settings(max_examples=FULL, **_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_mutated_payloads_full(rules: DocumentRules, seeds: list[str], data: st.DataObject) -> None:
    for _ in range(BATCH):
        _mutated(rules, seeds, data)


@pytest.mark.slow
@settings(max_examples=FULL, **_SETTINGS)  # type: ignore[arg-type]
@given(texts=st.lists(_RANDOM_TEXT, min_size=BATCH, max_size=BATCH))
def test_random_payloads_full(rules: DocumentRules, texts: list[str]) -> None:
    for text in texts:
        _random(rules, text)
