"""Verifying and indexing a device registry file as a stream, in memory that does not grow with its devices.

A registry file as provisioning writes it (``Registry.sign_and_save``) is
canonical JSON on one line::

    {"devices":[{...},{...},...],"format":"pollbox-device-registry/1","signature":"<base64>"}

and the CEC signs exactly the bytes of the ``devices`` list in it. So the
receiver does not need the file as Python objects to index it:

1. the file is mapped read-only (``mmap``) and the signature checked over the
   list's bytes as they stand in the file (Ed25519 signs the whole message
   at once; the pages read are the kernel's file cache, not the process's
   own memory, and are dropped when the map is closed);
2. the list is then read one device at a time (``json.JSONDecoder.raw_decode``
   over chunks of the map), each device checked as ``Registry.from_bytes``
   checks it, and each device's bytes compared with its canonical form: the
   devices read are then exactly the bytes the signature covers;
3. the rows go to the database in chunks (``RegistryIndex.index_registry``).

Anything else (a file laid out differently, a device that is not in
canonical form, a signature that does not hold over the bytes as they stand,
a key listed twice) is not an error here: ``NotStreamable``
sends the caller to the whole-file path (``Registry.from_bytes``), which
accepts and refuses exactly what it always did, with its own messages. A
refusal found here names the file, the device's position and its station.
"""

from __future__ import annotations

import base64
import binascii
import json
import mmap
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.canonical import canonical
from protocol.errors import PollboxError
from receiver.registry_entries import FORMAT, DeviceEntry, RegistryError, Revocation

HEAD = b'{"devices":['
TAIL = re.compile(rb'\],"format":"' + re.escape(FORMAT.encode()) + rb'","signature":"([A-Za-z0-9+/=]*)"\}\n?\Z')
TAIL_MAX = 200
"""The longest tail after the list: the format and a base64 Ed25519 signature (88 characters)."""
CHUNK = 1 << 20
"""Bytes of the list decoded at a time; a device longer than this gets a larger chunk."""


class NotStreamable(PollboxError):
    """The file is not laid out as provisioning writes it: read it whole instead (this is no verdict on it)."""


class RegistryStream:
    """One registry file mapped read-only: its signature, then its devices as index rows.

    Use as a context manager; ``rows`` may be read once, after ``verify``.
    """

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        self._file = path.open("rb")
        try:
            self.map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            self._file.close()
            raise NotStreamable("empty") from None
        self.devices = 0
        """Devices read so far by ``rows``."""
        tail = TAIL.search(self.map[max(0, len(self.map) - TAIL_MAX):])
        if self.map[:len(HEAD)] != HEAD or tail is None:
            self.close()
            raise NotStreamable("not laid out as provisioning writes it")
        self._end = len(self.map) - (len(tail.group(0)) - 1)  # just after the list's "]"
        self._signature = tail.group(1)

    def __enter__(self) -> RegistryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.map.close()
        self._file.close()

    def verify(self, cec_public_key: Ed25519PublicKey) -> None:
        """Check the CEC signature over the list's bytes as they stand in the file.

        Raises RegistryError for an unsigned file, and NotStreamable when the
        signature does not hold over these bytes: the CEC signs the list's
        canonical form, and a list written otherwise inside this layout (say
        with escaped non-ASCII characters) may still verify once parsed and re-encoded, so
        the whole-file path gives the verdict (and its usual refusal).
        """
        if not self._signature:
            raise RegistryError(f"{self.name}: the registry is unsigned")
        view = memoryview(self.map)
        try:
            cec_public_key.verify(base64.b64decode(self._signature, validate=True), view[len(HEAD) - 1:self._end])
        except (InvalidSignature, ValueError, binascii.Error):
            raise NotStreamable("the signature does not hold over the file's bytes as they stand") from None
        finally:
            view.release()

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every device as an index row (``registry_index.DEVICE_COLUMNS``), checked, in file order.

        Raises RegistryError naming the device's position and station, or NotStreamable.
        """
        decoder = json.JSONDecoder()
        at, end = len(HEAD), self._end - 1  # the list's items lie in bytes [at, end)
        if at == end:
            return
        text, text_end, offset, size = "", at, 0, CHUNK  # text: decoded bytes up to text_end; offset: char of ``at``
        while True:
            if self.map[at:at + 1] != b"{":
                raise NotStreamable(f"device {self.devices} is not an object")
            try:
                raw, stop = decoder.raw_decode(text, offset)
            except json.JSONDecodeError:
                if text_end >= end:
                    raise NotStreamable(f"device {self.devices} is not JSON") from None
                if offset == 0 and text:
                    size *= 2  # one device longer than the chunk
                text, text_end = self._decode(at, end, size)
                offset = 0
                continue
            item = canonical(raw)
            if text[offset:stop] != item.decode():
                raise NotStreamable(f"device {self.devices} is not in canonical form")
            yield self._row(raw, self.devices)
            self.devices += 1
            at += len(item)
            offset = stop
            if at == end:
                return
            if self.map[at:at + 1] != b",":
                raise NotStreamable(f"no comma after device {self.devices - 1}")
            at, offset = at + 1, offset + 1

    def _decode(self, at: int, end: int, size: int) -> tuple[str, int]:
        """The map's bytes from ``at``, up to ``size`` of them and not past ``end``, cut at a whole character;
        and the byte after them."""
        stop = min(end, at + size)
        while stop < end and (self.map[stop] & 0xC0) == 0x80:  # not inside a UTF-8 character
            stop -= 1
        try:
            return self.map[at:stop].decode(), stop
        except UnicodeDecodeError as exc:
            raise NotStreamable(f"not UTF-8 ({exc})") from None

    def _row(self, raw: Any, position: int) -> tuple[Any, ...]:
        station = raw.get("station") if isinstance(raw, dict) else None
        where = f"{self.name}: " + (f"station {station}: " if isinstance(station, str) else "")
        try:
            fields_only = {k: v for k, v in raw.items() if k != "revocation"} if isinstance(raw, dict) else raw
            entry = DeviceEntry.from_dict(fields_only, position)
            revocation = (Revocation.from_dict(raw["revocation"], f"device {position} ({entry.serial})")
                          if "revocation" in raw else None)
        except RegistryError as exc:
            raise RegistryError(f"{where}{exc}") from None
        return (entry.key_id, entry.station, entry.serial, entry.public_key, entry.software, entry.enrolled_at,
                None if revocation is None else canonical(asdict(revocation)).decode(), entry.unit or None,
                entry.role or None)
