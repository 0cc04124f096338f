"""Secret files written safely: mode 0600, temporary file then rename, and refused if others can read them.

Used for the CEC signing key, the station list key and the unit's sealing key.
Public halves are plain text files beside them (base64 of the raw bytes).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from device.files import write_private

from .errors import ProvisionError


def write_secret(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600; refuses to overwrite unless told."""
    if path.exists() and not overwrite:
        raise ProvisionError("E002", f"{path} already exists; refusing to overwrite a key")
    write_private(path, data)


def write_public(path: Path, text: str, *, overwrite: bool = False) -> None:
    """Write a public text file (mode 0644) atomically."""
    if path.exists() and not overwrite:
        raise ProvisionError("E002", f"{path} already exists; refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_secret(path: Path, what: str) -> bytes:
    """Read a secret file; refuses one that group or others may read."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProvisionError("E020", f"no {what} at {path}") from None
    except PermissionError:
        raise ProvisionError("E020", f"{path}: {what} is not readable by this user") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ProvisionError("E020", f"{path}: {what} is readable by others (mode {stat.S_IMODE(mode):o}); "
                                     "run 'chmod 600' on it and check who copied it")
    return data


def read_text(path: Path, what: str) -> str:
    """Read a public text file with a numbered error if it is missing."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProvisionError("E001", f"no {what} at {path}") from None
    except (PermissionError, UnicodeDecodeError) as exc:
        raise ProvisionError("E001", f"{path}: {what} cannot be read ({exc})") from None
