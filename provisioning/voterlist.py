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

The import runs in constant memory, whatever the size of the list (a
technician may check a whole region's list on a small laptop): the file is
read row by row and checked in batches of ``BATCH`` rows in memory; a list
longer than one batch sends each batch's rows (hash, list line, name) to a
private temporary SQLite database on disk (deleted when the result is closed
or collected), whose unique keys find duplicates across batches and whose
line order is the entries' order. A station's list fits one batch and never
touches the disk. ``ImportResult.iter_entries()`` streams them;
``ImportResult.entries`` is the same as a list, for a station's package.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import hmac
import io
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from device.core.documents.pin import check_pin
from device.core.documents.rules import KGZ, PinRule

from .errors import ProvisionError

HEADER = ("personal_number", "surname", "given_names", "line", "station")
MAX_NAME = 200
BATCH = 20_000
"""Rows checked in memory before they go to the seen-rows database (a few MB); a list no longer
than this (any one station's) never touches the disk."""
LOOKUP = 5_000
"""Keys asked of the seen-rows database in one statement."""
_DROP = str.maketrans("", "", " -\t")

Progress = Callable[[int], None]


class RowError(NamedTuple):
    """One bad row: its line in the file, the numbered code and the reason."""

    line: int
    reason: str
    code: str

    def format(self, filename: str) -> str:
        return f"{self.code} {filename} line {self.line}: {self.reason}"


class _Seen:
    """The rows accepted so far, in a private temporary database on disk (SQLite deletes it on close)."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("", check_same_thread=False)
        # a 4 MB page cache: the import's peak is then the same at 100,000 and 1,000,000 rows (bench_memory)
        self.db.executescript("PRAGMA cache_size = -4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                              "CREATE TABLE lines (line INTEGER PRIMARY KEY, at INTEGER, hash TEXT, name TEXT);"
                              "CREATE TABLE voters (hash BLOB PRIMARY KEY, at INTEGER) WITHOUT ROWID;")

    def lines_claimed(self, lines: list[int]) -> dict[int, int]:
        """Which of ``lines`` earlier rows claimed, with the file line of the first claim."""
        return dict(self._claimed("SELECT line, at FROM lines WHERE line IN ({})", lines))

    def voters_claimed(self, voters: list[str]) -> dict[str, int]:
        """Which of ``voters`` (hex hashes) earlier rows claimed, with the file line of the first claim."""
        found = self._claimed("SELECT hash, at FROM voters WHERE hash IN ({})", [bytes.fromhex(v) for v in voters])
        return {bytes(h).hex(): at for h, at in found}

    def _claimed(self, sql: str, keys: list[Any]) -> list[tuple[Any, int]]:
        found: list[tuple[Any, int]] = []
        for start in range(0, len(keys), LOOKUP):
            chunk = keys[start:start + LOOKUP]
            found += self.db.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
        return found

    def add(self, entries: list[tuple[int, str, str]], lines: dict[int, int], voters: dict[str, int]) -> None:
        """Store every list line and voter claimed (by good rows or bad), with the good rows' entries."""
        good = {line: (voter, name) for line, voter, name in entries}
        with self.db:
            self.db.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)",
                                ((line, at, *good.get(line, (None, None))) for line, at in lines.items()))
            self.db.executemany("INSERT INTO voters VALUES (?, ?)",
                                ((bytes.fromhex(v), at) for v, at in voters.items()))

    def entries(self) -> Iterator[list[Any]]:
        good = "SELECT line, hash, name FROM lines WHERE hash IS NOT NULL ORDER BY line"
        for line, voter, name in self.db.execute(good):
            yield [voter, line, name]

    def close(self) -> None:
        self.db.close()


@dataclass
class ImportResult:
    """What an import produced: entries only if there were no errors."""

    station_id: str
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    count: int = 0
    """How many entries there are (0 when there were errors)."""
    _seen: _Seen | None = field(default=None, repr=False)
    _list: list[list[Any]] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors and self.count > 0

    def iter_entries(self) -> Iterator[list[Any]]:
        """The entries ``[hash, line, name]`` in list-line order, read from disk as they are consumed."""
        if self._list is not None:
            yield from self._list
        elif self._seen is not None and not self.errors:
            yield from self._seen.entries()

    @property
    def entries(self) -> list[list[Any]]:
        """The entries as one list (a station's list, for its package); [] if there were errors."""
        if self._list is None:
            self._list = list(self.iter_entries())
        return self._list

    def close(self) -> None:
        """Delete the temporary database (the entries read as a list are kept)."""
        if self._seen is not None:
            self._seen.close()
            self._seen = None


def import_csv(path: Path, station_id: str, list_key: bytes, pin_rule: PinRule = KGZ,
               progress: Progress | None = None) -> ImportResult:
    """Read and check the voter list at ``path`` for ``station_id``."""
    try:
        with path.open("rb") as raw:
            return import_stream(raw, station_id, list_key, pin_rule, progress)
    except OSError as exc:
        raise ProvisionError("E001", f"cannot read the voter list {path} ({exc.strerror})") from None


def import_bytes(raw: bytes, station_id: str, list_key: bytes, pin_rule: PinRule = KGZ,
                 progress: Progress | None = None) -> ImportResult:
    """The same as ``import_csv`` for bytes already in memory."""
    return import_stream(io.BytesIO(raw), station_id, list_key, pin_rule, progress)


def import_stream(raw: IO[bytes], station_id: str, list_key: bytes, pin_rule: PinRule = KGZ,
                  progress: Progress | None = None) -> ImportResult:
    """The same as ``import_csv`` for an open, seekable binary file, read row by row.

    The file is read as strict UTF-8; only if that fails somewhere is it read
    again from the start with each row checked, so the bad rows are named.
    """
    told = [0]

    def tell(rows: int) -> None:  # the second reading does not report the rows the first one did again
        told[0] += rows
        if progress is not None and told[0] > reported:
            progress(min(rows, told[0] - reported))

    reported = -1
    try:
        return _import_text(raw, station_id, list_key, pin_rule, tell, clean=True)
    except UnicodeDecodeError:
        reported, told[0] = told[0], 0
        return _import_text(raw, station_id, list_key, pin_rule, tell, clean=False)


def _import_text(raw: IO[bytes], station_id: str, list_key: bytes, pin_rule: PinRule,
                 progress: Progress | None, clean: bool) -> ImportResult:
    raw.seek(0)
    if raw.read(3) != codecs.BOM_UTF8:
        raw.seek(0)
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict" if clean else "surrogateescape", newline="")
    result = ImportResult(station_id)
    try:
        _read(csv.reader(text), result, _Rows(station_id, list_key, pin_rule, result, clean), progress)
    except UnicodeDecodeError:
        result.close()
        raise
    finally:
        text.detach()
    return result


def _read(reader: Any, result: ImportResult, rows: _Rows, progress: Progress | None) -> None:
    if not _header_ok(reader, result):
        return
    rows.run(reader, progress)
    result._seen = rows.seen
    if result.rows == 0 and not result.errors:
        result.errors.append(RowError(1, "the voter list has a header but no voters", "E018"))
    if result.errors:
        result.errors.sort(key=lambda e: e.line)  # a duplicate of an earlier batch is found when its batch ends
        result.close()
        result.count, result._list = 0, None


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

    def __init__(self, station_id: str, list_key: bytes, rule: PinRule, result: ImportResult, clean: bool) -> None:
        self.station_id, self.rule, self.result, self.clean = station_id, rule, result, clean
        self.seen: _Seen | None = None
        """Made at the first full batch: a list that fits one batch stays in memory."""
        self.mac = hmac.new(list_key, digestmod=hashlib.sha256)
        self.hash_line: dict[str, int] = {}
        self.list_line: dict[int, int] = {}
        self.pending: list[tuple[int, str, str]] = []

    def run(self, reader: Any, progress: Progress | None) -> None:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                self.finish()
                if progress is not None and self.result.rows % 1000:
                    progress(self.result.rows % 1000)  # the last, partial thousand: the bar ends at 100 %
                return
            except csv.Error as exc:
                self.fail(reader.line_num, f"the row is not valid CSV ({exc})", "E016")
                continue
            if row:
                self.result.rows += 1
                self.check(reader.line_num, row)
                if len(self.list_line) >= BATCH:
                    self.flush()
                if progress is not None and self.result.rows % 1000 == 0:
                    progress(1000)

    def finish(self) -> None:
        """The last batch: to the database after the others, or, if it is the only one, kept in memory."""
        if self.seen is not None:
            self.flush()
            return
        self.result.count = len(self.pending)
        self.result._list = [[voter, line, name] for line, voter, name in sorted(self.pending)]

    def flush(self) -> None:
        """Check this batch's claims against the earlier batches', then store them; the batch starts again."""
        if self.seen is None:
            self.seen = _Seen()
        old_lines = self.seen.lines_claimed(list(self.list_line)) if self.list_line else {}
        old_voters = self.seen.voters_claimed(list(self.hash_line)) if self.hash_line else {}
        for line, first in old_lines.items():
            self.fail(self.list_line.pop(line), f"list line {line} is already used on file line {first}", "E015")
        for voter, first in old_voters.items():
            self.fail(self.hash_line.pop(voter), f"the same personal number is already on file line {first}", "E013")
        good = [e for e in self.pending if e[0] not in old_lines and e[1] not in old_voters]
        self.seen.add(good, self.list_line, self.hash_line)
        self.result.count += len(good)
        self.pending.clear()
        self.hash_line.clear()
        self.list_line.clear()

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
            self.pending.append((line, voter, name))

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
