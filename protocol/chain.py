"""The chain of a station's records: each record's ``prev`` is the SHA-256 of the previous record's bytes.

``seq`` runs from 1 without a gap; record 1 chains to ``ZERO_HASH``. A
receiver checks each new record against the last one it stores
(``link_error``); anyone holding a run of records checks it end to end
(``check_chain``). A station of several units has one chain per unit
(``envelope.UNIT_FIELD``); ``check_chains`` checks every chain among records
of many stations and units, in any order (the public log's entries, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from protocol.errors import UserError

ZERO_HASH = "0" * 64


class Linked(Protocol):
    """What the chain needs of a record (``envelope.SignedRecord`` has it)."""

    @property
    def seq(self) -> int: ...

    @property
    def prev(self) -> str: ...

    @property
    def hash(self) -> str: ...


class Chained(Linked, Protocol):
    """A record that knows its chain: its station, and its unit ("" for the station's main chain)."""

    @property
    def station(self) -> str: ...

    @property
    def unit(self) -> str: ...


C = TypeVar("C", bound=Chained)


class ChainError(UserError):
    """A run of records that is not gap-free and chained; ``code`` is ``gap`` or ``chain_broken``."""

    def __init__(self, code: str, message: str, seq: int) -> None:
        self.code, self.seq = code, seq
        super().__init__(message)


def record_hash(record_bytes: bytes) -> str:
    """SHA-256 (hex) of a record's exact bytes: what the next record's ``prev`` holds."""
    return hashlib.sha256(record_bytes).hexdigest()


def link_error(record: Linked, last_seq: int, last_hash: str) -> ChainError | None:
    """Why ``record`` cannot follow the record ``last_seq`` whose hash is ``last_hash`` (None if it can)."""
    if record.seq != last_seq + 1:
        return ChainError("gap", f"record {record.seq} cannot follow record {last_seq}: "
                                 f"records {last_seq + 1}-{record.seq - 1} are missing", record.seq)
    if record.prev != last_hash:
        return ChainError("chain_broken", f"record {record.seq} does not chain to record {last_seq} "
                                          "(prev hash differs)", record.seq)
    return None


def check_chain(records: Sequence[Linked], last_seq: int = 0, last_hash: str = ZERO_HASH) -> str:
    """Check that ``records`` follow record ``last_seq`` (hash ``last_hash``) and each other; the last hash.

    Raises ChainError at the first record that does not follow.
    """
    for record in records:
        error = link_error(record, last_seq, last_hash)
        if error is not None:
            raise error
        last_seq, last_hash = record.seq, record.hash
    return last_hash


def check_chains(records: Iterable[C]) -> dict[tuple[str, str], list[C]]:
    """Every (station, unit) chain among ``records``, each sorted by seq and checked from seq 1.

    Raises ChainError (its message names the station and unit) at the first chain with a gap or a break.
    """
    chains: dict[tuple[str, str], list[C]] = {}
    for record in records:
        chains.setdefault((record.station, record.unit), []).append(record)
    for (station, unit), chain in sorted(chains.items()):
        chain.sort(key=lambda r: r.seq)
        try:
            check_chain(chain)
        except ChainError as exc:
            raise ChainError(exc.code, f"station {station}, unit {unit or 'main'}: {exc}", exc.seq) from None
    return chains
