"""The voter list import: a station's CSV becomes keyed hashes, or a list of every bad row.

The CSV (UTF-8, comma-separated, a header row, documented in
``docs/provisioning.md``) has the columns ``personal_number, surname,
given_names, line, station``. Each row is checked: the personal number
against the station's ``PinRule`` (the same check the scanner uses, from
``device.core.documents.pin``), no number or list line twice, the station id,
a non-empty name, valid UTF-8. Every bad row is reported with its file line
number, a numbered code and a reason that never quotes the number. If any row
is bad, ``entries`` is empty: nothing is half-imported.

Good rows become ``[hash, line, name]`` where ``hash`` is
``voter_hash(list_key, number)``, computed with one prepared HMAC object
copied per row (that keeps 100,000 rows well under a second of hashing).
Entries are sorted by list line so the package digest does not depend on the
file's row order.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from device.core.documents.pin import check_pin
from device.core.documents.rules import KGZ, PinRule

from .errors import ProvisionError

HEADER = ("personal_number", "surname", "given_names", "line", "station")
MAX_NAME = 200
_DROP = str.maketrans("", "", " -\t")

Progress = Callable[[int], None]


class RowError(NamedTuple):
    """One bad row: its line in the file, the numbered code and the reason."""

    line: int
    reason: str
    code: str

    def format(self, filename: str) -> str:
        return f"{self.code} {filename} line {self.line}: {self.reason}"


@dataclass
class ImportResult:
    """What an import produced: entries only if there were no errors."""

    station_id: str
    entries: list[list[Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.entries)


def import_csv(path: Path, station_id: str, list_key: bytes, pin_rule: PinRule = KGZ,
               progress: Progress | None = None) -> ImportResult:
    """Read and check the voter list at ``path`` for ``station_id``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProvisionError("E001", f"cannot read the voter list {path} ({exc.strerror})") from None
    return import_bytes(raw, station_id, list_key, pin_rule, progress)


def import_bytes(raw: bytes, station_id: str, list_key: bytes, pin_rule: PinRule = KGZ,
                 progress: Progress | None = None) -> ImportResult:
    """The same as ``import_csv`` for bytes already in memory."""
    text, clean = _decode(raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    result = ImportResult(station_id)
    if not _header_ok(reader, result):
        return result
    _Rows(station_id, list_key, pin_rule, clean, result).run(reader, progress)
    if result.rows == 0 and not result.errors:
        result.errors.append(RowError(1, "the voter list has a header but no voters", "E018"))
    if result.errors:
        result.entries = []
    else:
        result.entries.sort(key=lambda e: int(e[1]))
    return result


def _decode(raw: bytes) -> tuple[str, bool]:
    """The text, and whether it was all valid UTF-8 (bad bytes become lone surrogates)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), False


def _header_ok(reader: Any, result: ImportResult) -> bool:
    try:
        header = next(reader)
    except StopIteration:
        result.errors.append(RowError(1, "the file is empty; expected the header " + ",".join(HEADER), "E018"))
        return False
    except csv.Error as exc:
        result.errors.append(RowError(1, f"the header is not valid CSV ({exc})", "E010"))
        return False
    got = tuple(h.strip().lower() for h in header)
    if got != HEADER:
        result.errors.append(RowError(1, f"the header must be exactly {','.join(HEADER)}", "E010"))
        return False
    return True


class _Rows:
    """The per-row checks, with the state that spans rows (numbers and lines seen)."""

    def __init__(self, station_id: str, list_key: bytes, rule: PinRule, clean: bool, result: ImportResult) -> None:
        self.station_id, self.rule, self.clean, self.result = station_id, rule, clean, result
        self.mac = hmac.new(list_key, digestmod=hashlib.sha256)
        self.hash_line: dict[str, int] = {}
        self.list_line: dict[int, int] = {}

    def run(self, reader: Any, progress: Progress | None) -> None:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.fail(reader.line_num, f"the row is not valid CSV ({exc})", "E016")
                continue
            if row:
                self.result.rows += 1
                self.check(reader.line_num, row)
                if progress is not None and self.result.rows % 1000 == 0:
                    progress(1000)

    def fail(self, line: int, reason: str, code: str) -> None:
        self.result.errors.append(RowError(line, reason, code))

    def check(self, at: int, row: list[str]) -> None:
        if len(row) != len(HEADER):
            self.fail(at, f"the row has {len(row)} columns, expected {len(HEADER)} ({','.join(HEADER)})", "E016")
            return
        if not self.clean and not _utf8(row):
            self.fail(at, "the row is not valid UTF-8 text (save the file as UTF-8)", "E011")
            return
        number, surname, given, line_text, station = row
        if station.strip() != self.station_id:
            self.fail(at, f"the row is for station {station.strip()!r}, not {self.station_id!r}", "E014")
            return
        line = self.list_line_of(at, line_text)
        name = self.name_of(at, surname, given)
        voter = self.hash_of(at, number)
        if line is not None and name is not None and voter is not None:
            self.result.entries.append([voter, line, name])

    def list_line_of(self, at: int, text: str) -> int | None:
        text = text.strip()
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            self.fail(at, "the list line must be a whole number from 1", "E015")
            return None
        line = int(text)
        first = self.list_line.setdefault(line, at)
        if first != at:
            self.fail(at, f"list line {line} is already used on file line {first}", "E015")
            return None
        return line

    def name_of(self, at: int, surname: str, given: str) -> str | None:
        name = f"{surname.strip()} {given.strip()}".strip()
        if not surname.strip():
            self.fail(at, "the surname is empty", "E017")
            return None
        if len(name) > MAX_NAME:
            self.fail(at, f"the name is longer than {MAX_NAME} characters", "E017")
            return None
        return name

    def hash_of(self, at: int, number: str) -> str | None:
        digits = number.translate(_DROP)
        refusal = check_pin(digits, self.rule)
        if refusal is not None:
            self.fail(at, refusal.detail, "E012")
            return None
        mac = self.mac.copy()
        mac.update(digits.encode("ascii"))
        voter = mac.hexdigest()
        first = self.hash_line.setdefault(voter, at)
        if first != at:
            self.fail(at, f"the same personal number is already on file line {first}", "E013")
            return None
        return voter


def _utf8(row: list[str]) -> bool:
    try:
        "".join(row).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
