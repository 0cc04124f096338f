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
"""

from __future__ import annotations

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
    lines = [header.to_json().decode("utf-8")] + [r.line() for r in records]
    return ("\n".join(lines) + "\n").encode("utf-8")


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
        if record.station != header.station:
            raise ExportError("malformed", f"record {record.seq} is for station {record.station!r}, "
                                           f"not {header.station!r}")
        if record.unit != records[0].unit:  # one chain per file: a unit exports its own (docs/units.md)
            raise ExportError("malformed", f"record {record.seq} is of unit {record.unit or 'main'}, not of unit "
                                           f"{records[0].unit or 'main'} like the file's first record")
        if record.seq != header.from_seq + offset:
            raise ExportError("malformed", f"record seq {record.seq} found where {header.from_seq + offset} belongs")
