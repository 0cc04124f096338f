"""Fuzzing the parsers: random and mutated payloads only ever give a result, never an exception.

Every entry point is fuzzed: the dispatch (``parse_payload``), the clerk's
entry, each parser called directly (its ``claims`` and ``parse``), the PIN
check, the rules read from config or a package, and the identity layer; with
any text (lone surrogates and non-ASCII digits included) and any bytes as the
sources decode them; and with the real source loops (serial bytes, keyboard
events, camera reads) around them, which must never fault.

The quick suite runs a few thousand examples; the full suite (``slow``) runs
over 100,000 across the strategies below.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import demo_documents as docs
from device.core.documents import DocumentRules, Identified, RefusalCode, Unreadable, parse_manual, parse_payload
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


# Every entry point, any text or bytes, and the source loops around them ------------------------

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates included: an Alt code can type one
ODD_ALPHABET = ALPHABET + "²³¹٣①𝟚\u0660\ufeff\x00|\x1d\x1c\ud800"
ELECTION = (2026, 11, 29)


def _any_text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(ANY_CHAR, max_size=200), st.text(ODD_ALPHABET, max_size=160))


def _odd_mutation(seeds: list[str], data: st.DataObject) -> str:
    text = _mutate(data.draw(st.sampled_from(seeds)), data)
    at = data.draw(st.integers(0, len(text)))
    return text[:at] + data.draw(st.text(st.sampled_from("²³¹٣①𝟚\u0660\ufeff\ud800|"), max_size=3)) + text[at:]


def _every_entry_point(rules: DocumentRules, text: str) -> None:
    from dataclasses import replace

    from device.core.documents import PARSERS, PIN_RULES
    from device.core.documents.pin import check_pin
    voting = replace(rules, election_date=ELECTION)
    for parser in PARSERS:
        assert isinstance(parser.claims(text), bool)
        _check(parser.parse(text, voting))
    for rule in PIN_RULES.values():
        refusal = check_pin(text, rule, ELECTION)
        assert refusal is None or isinstance(refusal, Unreadable)
    _check(parse_payload(text, voting))
    _check(parse_manual(text, voting))


@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
@given(text=_any_text())
def test_every_parser_entry_point_answers_any_text(rules: DocumentRules, text: str) -> None:
    _every_entry_point(rules, text)


@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_every_parser_entry_point_answers_documents_with_odd_characters(rules: DocumentRules, seeds: list[str],
                                                                        data: st.DataObject) -> None:
    _every_entry_point(rules, _odd_mutation(seeds, data))


@settings(max_examples=QUICK, **_SETTINGS)  # type: ignore[arg-type]
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_the_sources_decode_them(rules: DocumentRules, raw: bytes) -> None:
    from device.identity import Identity
    identity = Identity(list_key=bytes(range(32)), rules=rules)
    for text in (raw.decode("utf-8", "replace"), raw.decode("latin-1"), raw.decode("utf-8", "surrogateescape")):
        _every_entry_point(rules, text)
        resolved = identity.resolve_scan(text)
        assert resolved.voter_hash is not None or resolved.detail.split(":")[0] in {c.value for c in RefusalCode}


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=5), max_leaves=20)
_RULE_KEYS = st.sampled_from(["country", "segments", "check", "earliest_birth_year", "latest_birth_year", "name",
                              "length", "digits", "date", "centuries"])
_RULE_LIKE = st.recursive(_JSON, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_RULE_KEYS, inner,
                                                                                             max_size=6), max_leaves=25)


@settings(max_examples=QUICK // 3, **_SETTINGS)  # type: ignore[arg-type]
@given(data=_RULE_LIKE)
def test_any_personal_number_rule_is_read_or_refused_with_a_value_error(data: object) -> None:
    from device.core.documents import PinRule, pin_rule_from_mapping
    try:
        rule = pin_rule_from_mapping(data)  # type: ignore[arg-type]
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(rule, PinRule)


@settings(max_examples=QUICK // 3, **_SETTINGS)  # type: ignore[arg-type]
@given(documents=_RULE_LIKE, election=_RULE_LIKE | st.fixed_dictionaries(
    {"poll_date": st.text(max_size=12) | st.dates().map(str)}))
def test_any_package_document_section_is_read_or_refused_with_an_identity_error(documents: object,
                                                                                election: object) -> None:
    from device.identity import IdentityError, rules_from_package
    payload = {"station": {"id": "KG-0101"}, "documents": documents, "election": election}
    try:
        rules = rules_from_package(payload)
    except IdentityError as exc:
        assert str(exc).startswith("the package's document rules are unusable: ")
    else:
        assert isinstance(rules, DocumentRules)


@pytest.mark.slow
@settings(max_examples=FULL, **_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_every_parser_entry_point_full(rules: DocumentRules, seeds: list[str], data: st.DataObject) -> None:
    for _ in range(BATCH // 2):
        _every_entry_point(rules, _odd_mutation(seeds, data))
        _every_entry_point(rules, data.draw(_any_text()))


# The source loops around the parsers: any input, the loop never faults ---------------------------

def _loop_desk(rules: DocumentRules) -> tuple[list[object], object]:
    from device.identity import Identity
    identity = Identity(list_key=bytes(range(32)), rules=rules)
    seen: list[object] = []

    def on_read(read: object) -> None:
        text = read.text  # type: ignore[attr-defined]
        _check(parse_payload(text, rules))  # unguarded: a parser fault would become a loop fault
        seen.append(identity.resolve_scan(text))
    return seen, on_read


@settings(max_examples=QUICK // 2, **_SETTINGS)  # type: ignore[arg-type]
@given(chunks=st.lists(st.binary(max_size=40) | st.just(b""), max_size=12))
def test_serial_source_answers_any_bytes(rules: DocumentRules, chunks: list[bytes]) -> None:
    from device.hardware.scanners.serial import SerialScanner

    from .fakes import FakeClock, ScriptedPort, Waits
    clock = FakeClock()
    plan = [ScriptedPort(clock, [*chunks, b"", b"", b""])]
    seen, on_read = _loop_desk(rules)
    source = SerialScanner(port="fake", gap=0.05, monotonic=clock.monotonic, wait=Waits(clock, limit=1),
                           opener=lambda: plan.pop() if plan else None)
    source.attach(on_read, lambda state: None)  # type: ignore[arg-type]
    source.supervise()
    assert source.faults == 0


_KEYS = st.sampled_from([2, 3, 4, 11, 12, 16, 30, 39, 42, 54, 56, 57, 58, 29, 97, 100, 28, 86, 43, 71, 72, 73, 75, 76,
                         77, 79, 80, 81, 82, 96, 98, 55, 74, 78, 83, 0, 255, 511])


@settings(max_examples=QUICK // 2, **_SETTINGS)  # type: ignore[arg-type]
@given(events=st.lists(st.tuples(_KEYS, st.sampled_from([0, 1, 1, 2])), max_size=120),
       layout=st.sampled_from(["us", "de", "fr"]))
def test_keyboard_source_answers_any_key_events(rules: DocumentRules, events: list[tuple[int, int]],
                                                layout: str) -> None:
    from device.hardware.scanners.keyboard import KeyboardScanner

    from .fakes import FakeClock, FakeKeyDevice, Waits
    clock = FakeClock()
    script = [events[i:i + 9] for i in range(0, len(events), 9)] + [[], [], [], []]
    plan = [FakeKeyDevice(clock, script, lambda: None)]
    seen, on_read = _loop_desk(rules)
    source = KeyboardScanner(device="fake", layout=layout, gap=0.05, monotonic=clock.monotonic,
                             wait=Waits(clock, limit=1), opener=lambda: plan.pop() if plan else None)
    source.attach(on_read, lambda state: None)  # type: ignore[arg-type]
    source.supervise()
    assert source.faults == 0


@settings(max_examples=QUICK // 2, **_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_camera_source_answers_any_decoded_text(rules: DocumentRules, seeds: list[str], data: st.DataObject) -> None:
    from device.hardware.scanners.camera import CameraSource

    from .fakes import EveryFrame, FakeCamera, FakeClock, TextDecoder, Waits
    texts = data.draw(st.lists(_any_text() | st.builds(lambda: _odd_mutation(seeds, data)), max_size=6))
    clock = FakeClock()
    plan = [FakeCamera(texts)]
    seen, on_read = _loop_desk(rules)
    source = CameraSource(decoder=TextDecoder(), opener=lambda: plan.pop() if plan else None, skipper=EveryFrame(),
                          wait=Waits(clock, limit=1))
    source.attach(on_read, lambda state: None)  # type: ignore[arg-type]
    source.supervise()
    assert source.faults == 0 and len(seen) == sum(1 for t in texts if t)
