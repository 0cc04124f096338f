"""The ingest path: from a request body (or an imported file) to stored records and a receipt.

Every batch, from the network or from a USB export, goes through
``Ingestor.ingest_records`` in three steps:

1. **Decode** (``decode``): gzip with a bound on the uncompressed size (no
   gzip bombs), at most ``MAX_RECORDS`` lines and ``MAX_BYTES`` bytes, each
   line a well-formed signed record, all of one chain (one station, and one
   unit of it: ``protocol/envelope.py`` ``unit``). A batch that fails
   here is rejected whole (``malformed`` or ``oversized``): nothing is stored.
2. **Check** (``authenticate``), without touching the database: the body
   must fit its type's schema (``invalid_body``, ``protocol/schema.py``), the
   key must be enrolled (``unknown_key``), enrolled for the record's station
   (``wrong_station``) and, when the registry names the unit it was enrolled
   for, the record's ``unit`` must be that unit's (``unit_mismatch``: none for
   the main desk, the unit's id for any other), not revoked for this seq (``revoked_key``: a revoked
   key's records are accepted only up to the revocation's ``last_seq``), and
   the signature must verify (``bad_signature``, Ed25519 checked with libsodium, P-256 with OpenSSL),
   and a training record must be a training station's and the other way
   round (``training_mismatch``, ``protocol/training.py``).
3. **Sequence** (``sequence``), under the station's lock in storage, against
   the chain of the batch's unit (a station of several units has one per unit): a
   stored seq with the same bytes is a duplicate (acknowledged again); with
   other bytes it is a ``conflict`` (the record is kept as evidence); the next
   seq must chain to the stored previous record (``chain_broken``); anything
   further is a ``gap``. A key that signs one unit's chain may not sign another
   chain of its station (``wrong_unit``, ``store/chain_keys.py``).

Records before the first bad one are stored; the bad one and those after it
are not. Every rejection goes to the debug log and, within the rates of
``limits.py``, to the ``rejections`` table.
Steps 1-3 are pure functions; ``Ingestor`` wires them to storage, the
registry, the receiver key and the clock.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.batch import MAX_BYTES, MAX_RECORDS
from protocol.chain import link_error
from protocol.envelope import MAIN_UNIT, EnvelopeError, SignedRecord, parse_line
from protocol.errors import PollboxError
from protocol.keys import ED25519
from protocol.keys import signature_holds as key_signature_holds
from protocol.receipts import make_receipt
from protocol.schema import body_problem
from protocol.training import record_training_problem
from receiver.limits import RejectionLimiter
from receiver.registry import AnyRegistry, DeviceEntry, Revocation

HTTP_STATUS = {"malformed": 400, "oversized": 413, "unknown_key": 403, "wrong_station": 403, "revoked_key": 403,
               "bad_signature": 400, "invalid_body": 400, "training_mismatch": 400, "gap": 409, "chain_broken": 409,
               "conflict": 409, "wrong_unit": 403, "unit_mismatch": 403}

log = logging.getLogger("pollbox.receiver.ingest")


@dataclass(frozen=True)
class Rejection:
    """Why a batch (or the record at ``seq`` and those after it) was refused."""

    code: str
    reason: str
    station: str | None = None
    seq: int | None = None
    key: str | None = None
    unit: str = MAIN_UNIT
    """The unit of the chain refused (``MAIN_UNIT``: the station's main chain, or not known)."""

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class BatchRejected(PollboxError):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        super().__init__(rejection.reason)


# 1. Decode -------------------------------------------------------------------

def gunzip(raw: bytes, limit: int = MAX_BYTES) -> bytes:
    """Decompress gzip data, refusing more than ``limit`` bytes of output."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BatchRejected(Rejection("malformed", f"the body is not valid gzip ({exc})")) from None
    if len(out) > limit:
        raise BatchRejected(Rejection("oversized", f"the batch inflates to more than {limit} bytes"))
    if not inflater.eof or inflater.unused_data:
        raise BatchRejected(Rejection("malformed", "the gzip body is truncated or has trailing data"))
    return out


def body_bytes(raw: bytes, encoding: str | None) -> bytes:
    """The batch bytes of a request body sent with ``Content-Encoding: encoding``."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "gzip":
        return gunzip(raw)
    if encoding != "identity":
        raise BatchRejected(Rejection("malformed", f"Content-Encoding {encoding!r} is not supported (use gzip)"))
    if len(raw) > MAX_BYTES:
        raise BatchRejected(Rejection("oversized", f"the batch is {len(raw)} bytes, more than {MAX_BYTES}"))
    return raw


def decode(data: bytes) -> list[SignedRecord]:
    """The records of one batch, all for one station; raises BatchRejected."""
    if len(data) > MAX_BYTES:
        raise BatchRejected(Rejection("oversized", f"the batch is {len(data)} bytes, more than {MAX_BYTES}"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchRejected(Rejection("malformed", f"the batch is not UTF-8 text (byte {exc.start})")) from None
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise BatchRejected(Rejection("malformed", "the batch holds no records"))
    if len(lines) > MAX_RECORDS:
        raise BatchRejected(Rejection("oversized", f"the batch holds {len(lines)} records, more than {MAX_RECORDS}"))
    records = [_parse(number, line) for number, line in lines]
    _check_one_station(records)
    return records


def _parse(number: int, line: str) -> SignedRecord:
    try:
        return parse_line(line)
    except EnvelopeError as exc:
        raise BatchRejected(Rejection(exc.code, f"line {number}: {exc}")) from None


def _check_one_station(records: Sequence[SignedRecord]) -> None:
    station, unit = records[0].station, records[0].unit
    for record in records:
        if record.station != station:
            raise BatchRejected(Rejection(
                "malformed", f"a batch holds records of one station: {station} and {record.station} are mixed",
                station=station, unit=unit))
        if record.unit != unit:
            raise BatchRejected(Rejection(
                "malformed", f"a batch holds records of one unit's chain: units {unit or 'main'} and "
                             f"{record.unit or 'main'} of station {station} are mixed", station=station, unit=unit))
        if record.fields["type"] == "receipt":
            raise BatchRejected(Rejection("malformed", f"record {record.seq} is a receipt, not a station record",
                                          station=station, seq=record.seq))


def _about(record: SignedRecord, code: str, reason: str) -> Rejection:
    return Rejection(code, reason, station=record.station, seq=record.seq, key=record.key, unit=record.unit)


# 2. Authenticate ---------------------------------------------------------------

def authenticate(records: Sequence[SignedRecord], registry: AnyRegistry) -> tuple[int, Rejection | None]:
    """How many leading records are authentic, and why the next one is not (None if all are).

    A batch's records are nearly always of one key: its device entry, raw key and revocation are
    looked up once per key and batch.
    """
    devices: dict[str, _Device] = {}
    for index, record in enumerate(records):
        rejection = _authenticate_one(record, registry, devices)
        if rejection is not None:
            return index, rejection
    return len(records), None


def signature_holds(record: SignedRecord, public: bytes) -> bool:
    """Whether ``record``'s Ed25519 signature verifies under the raw key ``public``.

    libsodium (PyNaCl) verifies about 1.5 times as fast as the OpenSSL binding
    on this kind of machine and lets go of Python's global lock meanwhile, so
    the request threads of one process verify on several cores at once.
    """
    try:
        nacl.bindings.crypto_sign_open(record.signature + record.data, public)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def _p256_holds(record: SignedRecord, registry: AnyRegistry) -> bool:
    """Whether a P-256 record verifies (OpenSSL through ``cryptography``; the registry keeps the key object)."""
    public = registry.public_key(record.key)
    return public is not None and key_signature_holds(public, record.signature, record.data)


_Device = tuple[DeviceEntry | None, bytes | None, Revocation | None]


def _authenticate_one(record: SignedRecord, registry: AnyRegistry, devices: dict[str, _Device]) -> Rejection | None:
    device = devices.get(record.key)
    if device is None:
        device = devices[record.key] = (registry.for_key(record.key), registry.raw_public_key(record.key),
                                        registry.revocation_of(record.key))
    entry, public, revocation = device
    if entry is None or public is None:
        return _about(record, "unknown_key", f"record {record.seq}: key {record.key} is not enrolled")
    if entry.station != record.station:
        return _about(record, "wrong_station", f"record {record.seq}: key {record.key} is enrolled for station "
                         f"{entry.station}, not {record.station}")
    expected_unit = entry.chain_unit
    if expected_unit is not None and record.unit != expected_unit:
        return _about(record, "unit_mismatch", f"record {record.seq}: key {record.key} is enrolled for unit "
                         f"{entry.unit} ({entry.role}) of station {entry.station}, whose records carry "
                         + (f"unit {expected_unit!r}" if expected_unit else "no unit (the station's main chain)")
                         + ", but this record " + (f"names unit {record.unit!r}" if record.unit else "names none"))
    if revocation is not None and revocation.refuses(record.seq):
        return _about(record, "revoked_key", f"record {record.seq}: key {record.key} was revoked at {revocation.at}; "
                         f"its records are accepted only up to seq {revocation.last_seq}")
    if record.alg != entry.alg:
        return _about(record, "bad_signature", f"record {record.seq}: signed as {record.alg}, but key {record.key} "
                         f"is enrolled as a {entry.alg} key")
    if not (signature_holds(record, public) if entry.alg == ED25519 else _p256_holds(record, registry)):
        return _about(record, "bad_signature", f"record {record.seq}: signature does not verify")
    problem = body_problem(record.type, record.body)
    if problem is not None:
        return _about(record, "invalid_body", f"record {record.seq}: {problem}")
    mixed = record_training_problem(record.fields)
    if mixed is not None:
        return _about(record, "training_mismatch", f"record {record.seq}: {mixed}")
    return None


# 3. Sequence -------------------------------------------------------------------

@dataclass
class Plan:
    """What to do with a station's authenticated records, given what is stored."""

    new: list[SignedRecord] = field(default_factory=list)
    duplicates: int = 0
    rejection: Rejection | None = None
    conflict: SignedRecord | None = None
    highest: int = 0
    """The station's highest stored seq once the plan is stored (0: not read, ask storage)."""


def sequence(records: Sequence[SignedRecord], highest: int, last_hash: str, stored: Mapping[int, str]) -> Plan:
    """Split records into new ones and duplicates, stopping at the first that breaks the sequence.

    ``stored`` maps already stored seqs (at least those of ``records`` up to
    ``highest``) to their record hashes.
    """
    plan, known = Plan(), dict(stored)
    for record in records:
        plan.rejection = _sequence_one(record, highest, last_hash, known)
        if plan.rejection is not None:
            plan.conflict = record if plan.rejection.code == "conflict" else None
            return plan
        if record.seq <= highest:
            plan.duplicates += 1
            continue
        plan.new.append(record)
        highest, last_hash, known[record.seq] = record.seq, record.hash, record.hash
    return plan


def _sequence_one(record: SignedRecord, highest: int, last_hash: str, known: Mapping[int, str]) -> Rejection | None:
    if record.seq <= highest:
        if known.get(record.seq) == record.hash:
            return None
        return _about(record, "conflict", f"record {record.seq} differs from the record {record.seq} already stored; "
                         "both are kept as evidence")
    error = link_error(record, highest, last_hash)
    return None if error is None else _about(record, error.code, str(error))


# Wiring ------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """The answer to one batch: counts, the receipt, and the rejection if any."""

    station: str | None
    accepted: int
    duplicates: int
    receipt: str | None
    rejection: Rejection | None = None

    def as_json(self) -> dict[str, object]:
        if self.rejection is None:
            return {"receipt": self.receipt, "accepted": self.accepted, "duplicates": self.duplicates}
        return {"error": self.rejection.code, "reason": self.rejection.reason, "seq": self.rejection.seq,
                "receipt": self.receipt, "accepted": self.accepted, "duplicates": self.duplicates}

    @property
    def http_status(self) -> int:
        return 200 if self.rejection is None else self.rejection.http_status


class Ingestor:
    """Verifies and stores batches; one per receiver process, shared by its threads."""

    def __init__(self, *, storage: StorageLike, registry: Callable[[], AnyRegistry],
                 receiver_key: Ed25519PrivateKey, clock: Callable[[], float]) -> None:
        self.storage, self.registry, self.key, self.clock = storage, registry, receiver_key, clock
        self.limiter = RejectionLimiter()
        self._limit_lock = threading.Lock()

    def ingest_body(self, raw: bytes, encoding: str | None, source: str) -> Outcome:
        """A request body, as sent over HTTP."""
        try:
            records = decode(body_bytes(raw, encoding))
        except BatchRejected as exc:
            return self._refuse(exc.rejection, source)
        return self.ingest_records(records, source)

    def ingest_records(self, records: Sequence[SignedRecord], source: str) -> Outcome:
        """Decoded records of one station (network batch or imported file)."""
        if not records:
            return self._refuse(Rejection("malformed", "the batch holds no records"), source)
        station, unit, now = records[0].station, records[0].unit, self.clock()
        authentic, bad = authenticate(records, self.registry())
        plan = self.storage.store(station, records[:authentic], now, source)
        rejection = plan.rejection or bad
        outcome = Outcome(station, len(plan.new), plan.duplicates, self.receipt(station, plan.highest, unit),
                          rejection)
        if rejection is not None:
            self.log_rejection(rejection, source, now)
        return outcome

    def receipt(self, station: str, highest: int = 0, unit: str = MAIN_UNIT) -> str | None:
        """The signed receipt for everything stored of ``station``'s chain of ``unit``; None before its first record.

        ``highest``, when known (what the storing transaction read and left, durable once ``store`` returned),
        saves reading it again.
        """
        highest = highest or self.storage.highest_seq(station, unit)
        if not highest:
            return None
        return make_receipt(key=self.key, station=station, highest_seq=highest, at=self.clock(), unit=unit)

    def _refuse(self, rejection: Rejection, source: str) -> Outcome:
        self.log_rejection(rejection, source, self.clock())
        station = rejection.station
        return Outcome(station, 0, 0, self.receipt(station, 0, rejection.unit) if station else None, rejection)

    def log_rejection(self, rejection: Rejection, source: str, now: float) -> None:
        """The debug log and the ``rejections`` table, within the limiter's rates (beyond them: counted)."""
        with self._limit_lock:
            left_out = self.limiter.admit(source, now)
            first_left_out = left_out is None and self.limiter.left_out(source) == 1
        if left_out is None:
            if first_left_out:
                log.warning("rejections from %s are over the rate; they are counted, not written down", source)
            return
        log.warning("rejected from %s: %s (station %s, seq %s): %s", source, rejection.code,
                    rejection.station, rejection.seq, rejection.reason)
        if left_out:
            self.storage.log_rejection(Rejection("not_logged", f"{left_out} earlier rejection(s) from {source} "
                                                 "were over the rate and not written down"), now, source)
        self.storage.log_rejection(rejection, now, source)


class StorageLike(Protocol):
    """What ``Ingestor`` needs from storage (``storage.Storage`` implements it)."""

    def store(self, station: str, records: Sequence[SignedRecord], now: float, source: str) -> Plan:
        """Sequence ``records`` against what is stored, under the station's lock, and store the new ones."""
        ...

    def highest_seq(self, station: str, unit: str = MAIN_UNIT) -> int:
        ...

    def log_rejection(self, rejection: Rejection, now: float, source: str) -> None:
        ...
