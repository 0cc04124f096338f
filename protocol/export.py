"""The USB export file ``pollbox-export/1``: pending signed records carried by hand (section 6).

The file is UTF-8 text, lines separated by ``\\n``. The first line is a header,
the canonical JSON object ``{"created_at", "format", "from_seq", "key",
"station", "to_seq"}``; every further line is one signed form exactly as in a
batch, with ``seq`` running from ``from_seq`` to ``to_seq`` without a gap.
The header is not signed: a receiver trusts only the records, each of which
carries its own signature and chain hash.

The unit renders the file (``render_export``; the device writes it to the
stick); the receiver reads it (``read_export``) and takes the records down
the same ingest path as a network batch.

Two streaming forms of the same file, for a unit whose outbox is larger than
its memory: ``export_chunks`` yields the file's bytes one line at a time from
an iterator of records (the header is made from the seq range given up front),
checking each record as it passes; ``iter_export`` reads a file one line at a
time and yields its records with the same checks as ``read_export``. Both hold
one record at a time. ``render_export`` joins the same lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocol.canonical import canonical
from protocol.envelope import EnvelopeError, SignedRecord, is_int, iso_utc, load_json, parse_line

FORMAT = "pollbox-export/1"
MAX_EXPORT_BYTES = 512 * 1024 * 1024


class ExportError(EnvelopeError):
    """An export file that cannot be read or written; ``code`` is ``malformed`` or ``oversized``."""


@dataclass(frozen=True)
class ExportHeader:
    """The first line of an export file."""

    station: str
    key: str
    from_seq: int
    to_seq: int
    created_at: str

    def to_json(self) -> bytes:
        return canonical({"format": FORMAT, "station": self.station, "key": self.key,
                          "from_seq": self.from_seq, "to_seq": self.to_seq, "created_at": self.created_at})


def render_export(records: list[SignedRecord], *, station: str, key: str, created_at: float) -> bytes:
    """The bytes of an export file holding ``records`` (one station, contiguous seqs)."""
    if not records:
        raise ExportError("malformed", "there are no records to export")
    header = ExportHeader(station, key, records[0].seq, records[-1].seq, iso_utc(created_at))
    _check_records(header, records)
    return b"".join(_lines(header, records))


def export_chunks(records: Iterable[SignedRecord], *, station: str, key: str, created_at: float,
                  from_seq: int, to_seq: int) -> Iterator[bytes]:
    """The bytes of an export file of seqs ``from_seq..to_seq``, one line per chunk, from ``records`` as they come.

    The records are checked one by one as ``render_export`` checks them (the station, one unit, each seq
    in its place, the count); a record that does not fit raises ExportError when it is reached, so a
    writer must treat what it wrote so far as no file at all (``device/upstream/export.py`` does).
    """
    if to_seq < from_seq:
        raise ExportError("malformed", "there are no records to export")
    header = ExportHeader(station, key, from_seq, to_seq, iso_utc(created_at))
    return _lines(header, _checked(header, iter(records)))


def iter_export(lines: Iterable[bytes]) -> tuple[ExportHeader, Iterator[SignedRecord]]:
    """The header of the export file whose lines (split on ``\\n``) are ``lines``, and an iterator of its records.

    The same checks and refusals as ``read_export``, made line by line: the iterator raises ExportError at
    the first line that is not a record of the file, or at the end if records are missing. Over
    ``MAX_EXPORT_BYTES`` in all is refused as ``oversized`` when that size is passed.
    """
    source = iter(lines)
    budget = _Budget()
    header = _parse_header(_text(budget.take(next(source, b""))))
    numbered = ((number, _text(budget.take(raw))) for number, raw in enumerate(source, start=2))
    records = (_parse_record(number, line) for number, line in numbered if line.strip())
    return header, _checked(header, records)


class _Budget:
    """The bytes read so far of one export file, refused past ``MAX_EXPORT_BYTES``."""

    def __init__(self) -> None:
        self.size = 0

    def take(self, raw: bytes) -> bytes:
        self.size += len(raw)
        if self.size > MAX_EXPORT_BYTES:
            raise ExportError("oversized", f"an export file is at most {MAX_EXPORT_BYTES} bytes")
        return raw


def _text(raw: bytes) -> str:
    try:
        return raw.removesuffix(b"\n").decode("utf-8")
    except UnicodeDecodeError:
        raise ExportError("malformed", "an export file is UTF-8 text") from None


def _lines(header: ExportHeader, records: Iterable[SignedRecord]) -> Iterator[bytes]:
    yield header.to_json() + b"\n"
    for record in records:
        yield (record.line() + "\n").encode("utf-8")


def _checked(header: ExportHeader, records: Iterator[SignedRecord]) -> Iterator[SignedRecord]:
    """``records`` passed through one at a time with ``_check_records``' checks; the count is checked at the end."""
    expected = header.to_seq - header.from_seq + 1
    if header.from_seq < 1:
        raise ExportError("malformed", f"the header announces seq {header.from_seq}..{header.to_seq} "
                                       "but seqs start at 1")
    unit: str | None = None
    count = 0
    for record in records:
        if count == expected:
            raise ExportError("malformed", f"the header announces seq {header.from_seq}..{header.to_seq} "
                                           f"but the file holds more than {expected} records")
        if unit is None:
            unit = record.unit
        _check_one(header, record, header.from_seq + count, unit)
        count += 1
        yield record
    if count != expected:
        raise ExportError("malformed", f"the header announces seq {header.from_seq}..{header.to_seq} "
                                       f"but the file holds {count} records")


def read_export(data: bytes) -> tuple[ExportHeader, list[SignedRecord]]:
    """The header and records of an export file; raises ExportError on any inconsistency.

    Signatures are not checked here: that is the receiver's ingest, which knows the keys.
    """
    if len(data) > MAX_EXPORT_BYTES:
        raise ExportError("oversized", f"an export file is at most {MAX_EXPORT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExportError("malformed", "an export file is UTF-8 text") from None
    first, _, rest = text.partition("\n")
    header = _parse_header(first)
    records = [_parse_record(n, line) for n, line in enumerate(rest.split("\n"), start=2) if line.strip()]
    _check_records(header, records)
    return header, records


def _parse_record(number: int, line: str) -> SignedRecord:
    try:
        return parse_line(line)
    except EnvelopeError as exc:
        raise ExportError(exc.code, f"export line {number}: {exc}") from None


def _parse_header(line: str) -> ExportHeader:
    try:
        fields = load_json(line.encode("utf-8"), "the first line of an export file")
    except EnvelopeError:
        raise ExportError("malformed", "the first line of an export file is not a JSON header") from None
    if fields.get("format") != FORMAT:
        raise ExportError("malformed", f"not an export file (the header format must be {FORMAT!r})")
    for name in ("station", "key", "created_at"):
        if not isinstance(fields.get(name), str):
            raise ExportError("malformed", f"export header field {name!r} is missing or of the wrong type")
    for name in ("from_seq", "to_seq"):
        if not is_int(fields.get(name)):
            raise ExportError("malformed", f"export header field {name!r} is missing or of the wrong type")
    return ExportHeader(fields["station"], fields["key"], fields["from_seq"], fields["to_seq"], fields["created_at"])


def _check_records(header: ExportHeader, records: list[SignedRecord]) -> None:
    expected = header.to_seq - header.from_seq + 1
    if header.from_seq < 1 or expected != len(records):
        raise ExportError("malformed", f"the header announces seq {header.from_seq}..{header.to_seq} "
                                       f"but the file holds {len(records)} records")
    for offset, record in enumerate(records):
        _check_one(header, record, header.from_seq + offset, records[0].unit)


def _check_one(header: ExportHeader, record: SignedRecord, seq: int, unit: str) -> None:
    if record.station != header.station:
        raise ExportError("malformed", f"record {record.seq} is for station {record.station!r}, "
                                       f"not {header.station!r}")
    if record.unit != unit:  # one chain per file: a unit exports its own (docs/units.md)
        raise ExportError("malformed", f"record {record.seq} is of unit {record.unit or 'main'}, not of unit "
                                       f"{unit or 'main'} like the file's first record")
    if record.seq != seq:
        raise ExportError("malformed", f"record seq {record.seq} found where {seq} belongs")
