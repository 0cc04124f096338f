"""Constants and the election plan shared by the provisioning tests (imported as a top-level module)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

STATION = "KG-0001"
ELECTION = "kg-2026-test"
NOW = 1_790_000_000.0  # 2026-09-21, before the plan's expiry


def b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


PLAN = """
[election]
id = "{election}"
name = "Test election"
poll_date = "2026-11-29"
opens = "08:00"
closes = "20:00"
timezone = "Asia/Bishkek"
expires_at = "2099-12-31T00:00:00Z"

[receiver]
url = "http://127.0.0.1:8090"
public_key = "{receiver}"

[documents]
pin_rule = {{ country = "KGZ" }}

[[stations]]
id = "{station}"
name = "School No. 5"
region = "Bishkek"
languages = ["ky", "ru"]

[[stations]]
id = "KG-0002"
name = "School No. 6"
region = "Bishkek"
"""
