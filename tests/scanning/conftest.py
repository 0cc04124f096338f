"""Shared fixtures of the scanning tests: a CEC key, station rules, valid payloads."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device import demo_documents as docs
from device.core.documents import DocumentRules
from device.core.documents.slip import issue_slip

STATION = "KG-0101"
VOTER = "5f" * 32


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(scope="session")
def cec_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="session")
def rules(cec_key: Ed25519PrivateKey) -> DocumentRules:
    return DocumentRules(station_id=STATION, slip_key=raw_public(cec_key))


@pytest.fixture(scope="session")
def valid_payloads(cec_key: Ed25519PrivateKey) -> dict[str, str]:
    pin = docs.make_pin()
    return {
        "pin": pin,
        "mrz-td1": docs.make_td1(pin),
        "mrz-td3": docs.make_td3(pin),
        "aamva": docs.make_aamva(),
        "slip": issue_slip(cec_key, STATION, VOTER, 42),
    }
