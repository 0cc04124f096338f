"""A batch: signed forms joined by ``\\n``, UTF-8, the body of ``POST /api/v1/records`` (section 5).

All records of a batch belong to one station and have consecutive ``seq``s;
a batch holds at most ``MAX_RECORDS`` records and ``MAX_BYTES`` bytes
uncompressed. Over HTTP it may be gzip-compressed.
"""

from __future__ import annotations

from protocol.envelope import EnvelopeError, SignedRecord, parse_line

MAX_RECORDS = 2_000
MAX_BYTES = 4 * 1024 * 1024
CONTENT_TYPE = "application/x-pollbox-batch"


def encode_batch(records: list[SignedRecord]) -> bytes:
    return "\n".join(r.line() for r in records).encode("utf-8")


def decode_batch(data: bytes) -> list[SignedRecord]:
    """All records of a batch, in order; raises EnvelopeError at the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("malformed", "a batch is UTF-8 text") from None
    return [parse_line(line) for line in text.split("\n") if line.strip()]
