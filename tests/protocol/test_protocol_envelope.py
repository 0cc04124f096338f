"""The signed form and the chain: any text gets a record or an EnvelopeError, never another exception."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from protocol.chain import ZERO_HASH, ChainError, check_chain
from protocol.envelope import MAX_INT, EnvelopeError, SignedRecord, b64u, make_record, parse_line
from protocol.receipts import make_receipt, verify_receipt

KEY = Ed25519PrivateKey.generate()
BODY = {"journal_seq": 1, "journal_hash": "0f" * 32, "topic": "t", "text": "x"}


def chain(n: int) -> list[SignedRecord]:
    records, prev = [], ZERO_HASH
    for seq in range(1, n + 1):
        records.append(make_record(key=KEY, station="KG-0001", seq=seq, prev=prev, at=1.8e9 + seq,
                                   type_="annotation", body=BODY))
        prev = records[-1].hash
    return records


def signed(text: str) -> str:
    return f"{b64u(KEY.sign(text.encode()))} {text}"


@given(st.text(max_size=300))
def test_any_text_is_a_record_or_an_envelope_error(text: str) -> None:
    for line in (text, signed(text)):
        try:
            parse_line(line)
        except EnvelopeError as exc:
            assert exc.code in {"malformed", "oversized"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1.0", "1e3", str(10**30), str(MAX_INT + 1)])
def test_numbers_beyond_plain_safe_integers_are_malformed(number: str) -> None:
    record = chain(1)[0]
    text = record.data.decode().replace('"seq":1', f'"seq":{number}')
    with pytest.raises(EnvelopeError) as caught:
        parse_line(signed(text))
    assert caught.value.code == "malformed"


def test_a_record_with_a_field_too_many_is_malformed() -> None:
    fields = dict(chain(1)[0].fields, extra=1)
    with pytest.raises(EnvelopeError, match="unknown record field"):
        parse_line(signed(json.dumps(fields, sort_keys=True, separators=(",", ":"))))


def test_a_gap_free_chain_checks_and_a_gap_or_a_wrong_prev_is_named() -> None:
    records = chain(4)
    assert check_chain(records) == records[-1].hash
    assert check_chain(records[2:], 2, records[1].hash) == records[-1].hash
    with pytest.raises(ChainError) as gap:
        check_chain([records[0], records[2]])
    assert (gap.value.code, gap.value.seq) == ("gap", 3)
    with pytest.raises(ChainError) as broken:
        check_chain(records[1:], 1, ZERO_HASH)
    assert (broken.value.code, broken.value.seq) == ("chain_broken", 2)


def test_a_receipt_round_trips_and_a_hostile_one_is_refused() -> None:
    line = make_receipt(key=KEY, station="KG-0001", highest_seq=7, at=1.8e9)
    assert verify_receipt(line, KEY.public_key(), "KG-0001") == 7
    for text in ("[1]", '{"type":"receipt","station":"KG-0001","highest_seq":NaN}',
                 '{"type":"receipt","station":"KG-0001","highest_seq":-1}'):
        with pytest.raises(EnvelopeError):
            verify_receipt(signed(text), KEY.public_key(), "KG-0001")
