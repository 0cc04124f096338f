"""Writing and checking a station package as a stream: the bytes ``device.package.sign_package`` gives, in flat memory.

A package file is the canonical JSON ``{"format","payload","signature"}``, the
signature being the CEC's Ed25519 signature over the canonical payload. Its
voter entries are most of it, and a region's list must be packaged on a small
laptop, so the build never holds them:

* ``entries_summary`` reads the entries once for their digest and count (the
  SHA-256 of ``[e1,e2,...]`` in canonical JSON, exactly ``voters_digest``);
* ``write_streamed`` writes ``<file>.tmp``: the canonical payload with the
  entries array streamed into its place (a second reading of the entries,
  checked against the first), then signs the payload's bytes in place (the file
  mapped read-only: pure Ed25519 needs the whole message, and the mapping is the
  kernel's file cache, not the process's memory), appends the signature,
  syncs, and hashes the file as it is written;
* ``check_streamed`` reads the written file back and makes every check a unit
  makes when it loads a package (``device.package.load_package``): the format,
  the signature over the payload's bytes, the canonical form (the payload
  without its entries, then each entry), the election id and expiry, the
  training flag, each entry ``[hash, line, name]``, the digest, and no hash
  twice (found through a private temporary SQLite database on disk, as the
  voter list import does). Only then is the file renamed to its name.

``provisioning.package.write_package`` and ``build_station`` use this; the unit
side still loads the whole file (a station's list is small).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import mmap
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.package import FORMAT, PackageError, _check_election, _entry
from device.training import training_problem
from protocol.canonical import canonical

from .errors import ProvisionError

MARK = "\x00voters.entries\x00"
"""Stands for the entries array in a payload given to ``write_streamed``; no real payload holds it."""
_MARK_JSON = canonical(MARK)
_OUTER_HEAD = b'{"format":' + canonical(FORMAT) + b',"payload":'
_SIGNATURE_KEY = b',"signature":'
_TAIL = re.compile(rb',"signature":"([A-Za-z0-9+/]*={0,2})"}\Z')
_VOTERS_AT = b'"voters":{"count":'
CHUNK = 1 << 20
"""Bytes of entries decoded at a time when a package is checked (doubled for an entry longer than that)."""
_BATCH = 10_000

Entries = Callable[[], Iterator[list[Any]]]
"""A fresh reading of the entries ``[hash, line, name]`` each time it is called."""


def entries_summary(entries: Iterable[list[Any]]) -> tuple[str, int]:
    """(digest, count) of ``entries`` read once: ``voters_digest`` and ``len`` without holding the list."""
    digest = hashlib.sha256(b"[")
    count = 0
    for entry in entries:
        digest.update(b"," + canonical(entry) if count else canonical(entry))
        count += 1
    digest.update(b"]")
    return digest.hexdigest(), count


class _HashedFile:
    """A file being written, and the SHA-256 of everything written to it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.sha256.update(data)


def write_streamed(path: Path, payload: dict[str, Any], entries: Entries, cec_key: Ed25519PrivateKey,
                   now: float) -> str:
    """Sign and write the package of ``payload`` (its ``voters.entries`` is ``MARK``), check it, rename it into place.

    ``payload["voters"]`` already holds the digest and count of ``entries()``.
    Returns the file's SHA-256 hex. A refused package leaves no file (nor its ``.tmp``).
    """
    body = canonical(payload)
    if body.count(_MARK_JSON) != 1:
        raise ProvisionError("E022", f"{path}: the package payload must hold its voter entries exactly once")
    head, tail = body.split(_MARK_JSON)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w+b", buffering=CHUNK) as fh:
            out = _HashedFile(fh)
            out.write(_OUTER_HEAD + head + b"[")
            digest = hashlib.sha256(b"[")
            count = 0
            for entry in entries():
                line = b"," + canonical(entry) if count else canonical(entry)
                out.write(line)
                digest.update(line)
                count += 1
            digest.update(b"]")
            out.write(b"]" + tail)
            fh.flush()
            voters = payload["voters"]
            if (digest.hexdigest(), count) != (voters["digest"], voters["count"]):
                raise ProvisionError("E022", f"{path}: the voter entries changed while the package was written")
            signature = base64.b64encode(_sign_in_place(fh, len(_OUTER_HEAD), cec_key)).decode()
            out.write(_SIGNATURE_KEY + canonical(signature) + b"}")
            fh.flush()
            os.fsync(fh.fileno())
        check_streamed(tmp, cec_key.public_key(), str(payload["election"]["id"]), now, shown_as=path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out.sha256.hexdigest()


def _sign_in_place(fh: IO[bytes], start: int, key: Ed25519PrivateKey) -> bytes:
    """The signature over the file's bytes from ``start`` to its current end, read through a read-only mapping."""
    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view, \
            view[start:] as message:
        return key.sign(message)


def check_streamed(path: Path, cec_key: Ed25519PublicKey, election_id: str, now: float, *,
                   shown_as: Path | None = None) -> None:
    """Every check a unit makes on loading the package at ``path``, reading it as a stream; ProvisionError E022."""
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            _check_mapped(mapped, cec_key, election_id, now)
    except PackageError as exc:
        raise ProvisionError("E022", f"{shown_as or path}: {exc}") from None
    except ValueError as exc:  # an empty file cannot be mapped
        raise ProvisionError("E022", f"{shown_as or path}: not a JSON station package ({exc})") from None


def _check_mapped(data: mmap.mmap, cec_key: Ed25519PublicKey, election_id: str, now: float) -> None:
    if data[:len(_OUTER_HEAD)] != _OUTER_HEAD:
        raise PackageError(f"not a station package (format must be {FORMAT!r}, written in canonical form)")
    signature_at = data.rfind(_SIGNATURE_KEY)
    tail = _TAIL.match(data[signature_at:]) if signature_at > 0 else None
    if tail is None:
        raise PackageError("the package is unsigned")
    with memoryview(data) as view, view[len(_OUTER_HEAD):signature_at] as payload:
        try:
            cec_key.verify(base64.b64decode(tail.group(1), validate=True), payload)
        except (InvalidSignature, ValueError):
            raise PackageError("the package signature does not verify: it was altered or signed by another "
                               "key") from None
    voters_at = data.rfind(_VOTERS_AT, len(_OUTER_HEAD), signature_at)
    entries_at = data.find(b'"entries":[', voters_at, signature_at) + len(b'"entries":')
    entries_end = data.rfind(b'],"key_check":"', entries_at, signature_at)
    if voters_at < 0 or entries_at < len(b'"entries":') or entries_end < 0:
        raise PackageError("the package's voters.entries is not a list of voters")
    outline = data[len(_OUTER_HEAD):entries_at] + b"[]" + data[entries_end + 1:signature_at]
    try:
        payload_outline = json.loads(outline)
    except ValueError as exc:
        raise PackageError(f"not a JSON station package ({exc})") from None
    if not isinstance(payload_outline, dict) or canonical(payload_outline) != outline:
        raise PackageError("the package payload is not in canonical form")
    _check_election(payload_outline, election_id, now)
    problem = training_problem(payload_outline)
    if problem is not None:
        raise PackageError(problem)
    digest = hashlib.sha256()  # first, as a unit checks the digest before the entries
    for at in range(entries_at, entries_end + 1, CHUNK):
        digest.update(data[at:min(entries_end + 1, at + CHUNK)])
    if digest.hexdigest() != payload_outline["voters"].get("digest"):
        raise PackageError("the voter list does not match its digest")
    _check_entries(data, entries_at, entries_end + 1)


def _check_entries(data: mmap.mmap, start: int, end: int) -> int:
    """Check the entries array at ``data[start:end]`` one entry at a time, as a unit does; returns their count.

    Each entry's bytes are checked to be its canonical form and the separators
    exact, so the array's bytes are the canonical form of the list, and their
    SHA-256 is the list's digest.
    """
    seen = _SeenHashes()
    try:
        count = 0
        for count, entry in enumerate(_entries(data, start, end), start=1):
            h, line, _name = _entry(count, entry)
            seen.add(h, line)
        seen.flush()
    finally:
        seen.close()
    return count


def _entries(data: mmap.mmap, start: int, end: int) -> Iterator[Any]:
    """Each entry of the array at ``data[start:end]``, decoded a chunk of text at a time; refuses any byte that is
    not the canonical form of what it holds."""
    if end - start == 2 and data[start:end] == b"[]":  # (a slice is a copy: only ever of two bytes)
        return
    decoder = json.JSONDecoder()
    pos = start + 1  # the byte where the next entry starts
    text, at, size = "", 0, CHUNK  # decoded bytes from some byte before pos; at: pos's index in it
    while True:
        try:
            entry, stop = decoder.raw_decode(text, at)
        except ValueError as exc:
            read = len(text[at:].encode())
            if pos + read >= end and text:
                raise PackageError(f"the package's voter entries are not JSON ({exc})") from None
            size = size * 2 if text and read >= size // 2 else CHUNK
            try:
                text = codecs.getincrementaldecoder("utf-8")().decode(data[pos:min(end, pos + size)])
            except UnicodeDecodeError:
                raise PackageError("the package's voter entries are not UTF-8 text") from None
            at = 0
            continue
        exact = canonical(entry)
        if data[pos:pos + len(exact)] != exact:
            raise PackageError("the package's voter entries are not in canonical form")
        pos += len(exact) + 1
        at = stop + 1
        separator = data[pos - 1:pos]
        yield entry
        if separator == b"]" and pos == end:
            return
        if separator != b",":
            raise PackageError("the package's voters.entries is not a list of voters")


class _SeenHashes:
    """The voter hashes met so far, in a private temporary database on disk (SQLite deletes it on close)."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("")
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                              "CREATE TABLE seen (hash TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID;")
        self.batch: dict[str, int] = {}

    def add(self, h: str, line: int) -> None:
        if h in self.batch:
            raise PackageError(f"voter list line {line} repeats the hash of line {self.batch[h]}")
        self.batch[h] = line
        if len(self.batch) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        keys = list(self.batch)
        for at in range(0, len(keys), 500):
            part = keys[at:at + 500]
            row = self.db.execute(f"SELECT hash, line FROM seen WHERE hash IN ({','.join('?' * len(part))}) "
                                  "LIMIT 1", part).fetchone()
            if row is not None:
                raise PackageError(f"voter list line {self.batch[row[0]]} repeats the hash of line {row[1]}")
        self.db.executemany("INSERT INTO seen (hash, line) VALUES (?, ?)", self.batch.items())
        self.batch = {}

    def close(self) -> None:
        self.db.close()
