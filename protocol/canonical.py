"""Canonical JSON: the exact bytes that are hashed and signed (docs/protocol.md, section 2).

Keys sorted by code point, no whitespace outside strings, UTF-8 with non-ASCII
characters written as themselves, no NaN or Infinity. The same function gives
the bytes of a record, a receipt, a tree head, an export header, a device
registry and the station's own journal rows.
"""

from __future__ import annotations

import json
from typing import Any


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
