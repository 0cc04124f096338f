"""The signed form, receipts and the pollbox-export/1 file: round trips and every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from protocol.batch import decode_batch, encode_batch
from protocol.envelope import EnvelopeError, SignedRecord, make_record, parse_line
from protocol.export import ExportError, read_export, render_export
from protocol.receipts import make_receipt, verify_receipt

KEY = Ed25519PrivateKey.generate()
STATION = "KG-0001"


def chain(count: int, station: str = STATION) -> list[SignedRecord]:
    out, prev = [], "0" * 64
    for seq in range(1, count + 1):
        record = make_record(key=KEY, station=station, seq=seq, prev=prev, at=1.8e9 + seq, type_="annotation",
                             body={"topic": "t", "text": f"n{seq}"})
        out.append(record)
        prev = record.hash
    return out


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4))
def test_any_body_survives_the_signed_form(body: dict[str, Any]) -> None:
    record = make_record(key=KEY, station=STATION, seq=3, prev="a" * 64, at=1.8e9, type_="annotation", body=body)
    again = parse_line(record.line())
    assert again == record
    again.verify(KEY.public_key())


def test_a_changed_byte_fails_verification_or_parsing() -> None:
    line = chain(1)[0].line()
    altered = line.replace('"n1"', '"n2"')
    with pytest.raises(EnvelopeError, match="does not verify") as caught:
        parse_line(altered).verify(KEY.public_key())
    assert caught.value.code == "bad_signature"
    with pytest.raises(EnvelopeError) as caught:
        parse_line(line.replace('","', '", "', 1))
    assert caught.value.code == "malformed"


def test_batches_round_trip() -> None:
    records = chain(5)
    assert decode_batch(encode_batch(records)) == records


def test_receipts_verify_only_with_the_receiver_key_and_station() -> None:
    receiver = Ed25519PrivateKey.generate()
    line = make_receipt(key=receiver, station=STATION, highest_seq=7, at=1.8e9)
    assert verify_receipt(line, receiver.public_key(), STATION) == 7
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_receipt(line, KEY.public_key(), STATION)
    with pytest.raises(EnvelopeError, match="not for station"):
        verify_receipt(line, receiver.public_key(), "KG-0002")


def test_export_round_trips() -> None:
    records = chain(4)[1:]
    data = render_export(records, station=STATION, key="k" * 16, created_at=1.8e9)
    header, back = read_export(data)
    assert (header.from_seq, header.to_seq, header.station, header.key) == (2, 4, STATION, "k" * 16)
    assert back == records
    assert data.endswith(b"\n") and data.count(b"\n") == 4


def _export(records: list[SignedRecord]) -> bytes:
    return render_export(records, station=STATION, key="k" * 16, created_at=1.8e9)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.replace(b"pollbox-export/1", b"pollbox-export/9"), "not an export file"),
    (lambda d: b"\n".join(d.split(b"\n")[:2] + d.split(b"\n")[3:]), "holds 2 records"),
    (lambda d: d.split(b"\n", 1)[1], "not a JSON header"),
    (lambda d: d.replace(b'"to_seq":3', b'"to_seq":"3"'), "'to_seq'"),
    (lambda d: b"\xff" + d, "UTF-8"),
    (lambda d: d + b"garbage line\n", "export line 5"),
])
def test_damaged_export_files_are_refused_with_a_reason(damage: object, message: str) -> None:
    data = damage(_export(chain(3)))  # type: ignore[operator]
    with pytest.raises(ExportError, match=message) as caught:
        read_export(data)
    assert caught.value.code == "malformed"


def test_export_with_records_out_of_order_or_of_another_station_is_refused() -> None:
    one, two, three = chain(3)
    with pytest.raises(ExportError, match="found where"):
        read_export(_swap(one, two, three))
    stranger = chain(1, station="KG-0002")[0]
    with pytest.raises(ExportError, match="is for station"):
        render_export([stranger], station=STATION, key="k", created_at=0.0)
    with pytest.raises(ExportError, match="no records"):
        render_export([], station=STATION, key="k", created_at=0.0)


def _swap(one: SignedRecord, two: SignedRecord, three: SignedRecord) -> bytes:
    data = _export([one, two, three])
    lines = data.split(b"\n")
    lines[2], lines[3] = lines[3], lines[2]
    return b"\n".join(lines)
