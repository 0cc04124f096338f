"""The receipt signed with libsodium is byte for byte the signed form ``sign_fields`` makes with OpenSSL."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.envelope import VERSION, EnvelopeError, iso_utc, sign_fields
from protocol.keys import key_id
from protocol.receipts import make_receipt, verify_receipt


def test_a_receipt_is_the_same_line_as_the_openssl_signed_form_and_verifies() -> None:
    for _ in range(5):
        key = Ed25519PrivateKey.generate()
        for seq, station in ((1, "KG-0001"), (2**53 - 1, "КГ-ош 7")):
            line = make_receipt(key=key, station=station, highest_seq=seq, at=1_800_000_000.25)
            expected = sign_fields(key, {"v": VERSION, "type": "receipt", "station": station, "highest_seq": seq,
                                         "key": key_id(key.public_key()), "at": iso_utc(1_800_000_000.25)})
            assert line == expected
            assert verify_receipt(line, key.public_key(), station) == seq


def test_a_receipt_of_another_key_does_not_verify() -> None:
    line = make_receipt(key=Ed25519PrivateKey.generate(), station="KG-0001", highest_seq=3, at=0.0)
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_receipt(line, Ed25519PrivateKey.generate().public_key(), "KG-0001")
