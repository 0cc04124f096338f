"""Keyed hashing of personal numbers.

The voter list never holds a personal number: only HMAC-SHA256 under the
station's list key, as lowercase hex. A scanned document is hashed the same way
and looked up. Without the key a hash cannot be tested against a guessed
number, so a stolen list or journal reveals nobody.
"""

from __future__ import annotations

import hashlib
import hmac

LIST_KEY_BYTES = 32


def voter_hash(list_key: bytes, number: str) -> str:
    """The keyed hash of a normalized personal number."""
    if len(list_key) < LIST_KEY_BYTES:
        raise ValueError(f"list key must be at least {LIST_KEY_BYTES} bytes")
    return hmac.new(list_key, number.encode("utf-8"), hashlib.sha256).hexdigest()


def is_voter_hash(text: str) -> bool:
    """True if ``text`` has the shape of a voter hash (64 lowercase hex digits)."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
