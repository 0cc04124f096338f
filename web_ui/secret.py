"""The Flask secret key: generated on first start into the instance folder, mode 0600.

It signs the session cookie (chair login, CSRF token, language), so keeping it
across restarts keeps the chair logged in and open forms valid.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from device.files import write_private

KEY_BYTES = 32


def load_or_create(path: Path) -> bytes:
    """The key stored at ``path``, creating it (atomically, 0600) if absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create(path)
    if len(data) < KEY_BYTES:
        raise RuntimeError(f"{path} is shorter than {KEY_BYTES} bytes; delete it to generate a new secret key")
    return data


def _create(path: Path) -> bytes:
    data = secrets.token_bytes(KEY_BYTES)
    write_private(path, data)
    return data
