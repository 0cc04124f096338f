"""What a unit serves to the others, and how far it holds each unit: shared by the owner and the sync threads.

The owner thread calls ``catch_up`` after each commit (and once at start, after the journal was replayed):
it copies the new entries of the replica (``StationState.replica``) into this log under its own lock.
The sync server reads records from it, signing this unit's own on first request with the unit's record key
(a key file's Ed25519 or a TPM's P-256, ``wire.RecordKey``). A signature is cached, so a record is served
with one signature for as long as the unit runs (a P-256 signature is not deterministic: a restart may sign
a record afresh, and either verifies); others' records are served with the signature they arrived with and
the algorithm of their unit's enrolled key. The sync client reads ``held`` and waits
(``wait_held``) for the owner to have applied what it posted. The lock guards plain data only: nobody
holds it while calling hardware, the network or the owner.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from device.core.units import PeerCheckin, PeerClose, Replica
from protocol.keys import ED25519

from . import wire


class UnitLog:
    """This unit's records (signed on demand) and the other units' (as they arrived), by unit and seq."""

    def __init__(self, station: str, own: str, key: wire.RecordKey, algs: Mapping[str, str] | None = None) -> None:
        """``algs``: each unit's enrolled key's algorithm (absent: ``ed25519``), named on the records relayed."""
        self.station, self.own, self._key = station, own, key
        self._algs = dict(algs or {})
        self._cond = threading.Condition()
        self._records: dict[str, list[PeerCheckin]] = {own: []}
        self._signed: dict[int, dict[str, Any]] = {}
        self._closes: dict[str, dict[str, Any]] = {}

    def catch_up(self, replica: Replica) -> None:
        """Copy what the replica holds beyond this log (owner thread, after a commit)."""
        own_close = None
        if replica.own_close is not None and self.close_of(self.own) is None:
            admissions, identified, ballots, at = replica.own_close
            close = PeerClose(self.station, self.own, admissions, identified, ballots, at)
            own_close = wire.sign_close(close, self._key)  # once, at the close; outside the lock (a TPM signs slowly)
        with self._cond:
            mine = self._records[self.own]
            for r in replica.own[len(mine):]:
                mine.append(PeerCheckin(self.station, self.own, r.seq, r.voter, r.line, r.at, r.hlc, "", r.undoes))
            grew = False
            for unit, records in replica.records.items():
                held = self._records.setdefault(unit, [])
                if len(records) > len(held):
                    held.extend(records[len(held):])
                    grew = True
            if own_close is not None:
                self._closes.setdefault(self.own, own_close)
            for unit, c in replica.closed.items():
                if unit not in self._closes:
                    self._closes[unit] = {"body": wire.close_body(c), "signature": c.signature,
                                          "alg": self._algs.get(unit, ED25519)}
                    grew = True
            if grew:
                self._cond.notify_all()

    def close_of(self, unit: str) -> dict[str, Any] | None:
        """``unit``'s close record on the wire, once it closed (None before)."""
        with self._cond:
            return self._closes.get(unit)

    def closed(self) -> list[str]:
        with self._cond:
            return sorted(self._closes)

    def held(self, unit: str) -> int:
        with self._cond:
            return len(self._records.get(unit, ()))

    def held_all(self) -> dict[str, int]:
        with self._cond:
            return {u: len(r) for u, r in self._records.items()}

    def wait_held(self, unit: str, seq: int, timeout: float) -> bool:
        """Wait until the owner applied ``unit``'s records up to ``seq``; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._records.get(unit, ())) >= seq, timeout)

    def records_after(self, unit: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records of ``unit`` after seq ``after``, on the wire (own ones signed here)."""
        with self._cond:
            chosen = list(self._records.get(unit, ())[after:after + limit])
        if unit != self.own:
            return [wire.relayed(r, self._algs.get(unit, ED25519)) for r in chosen]
        out = []
        for r in chosen:
            with self._cond:
                signed = self._signed.get(r.seq)
            if signed is None:
                fresh = wire.sign(r, self._key)  # outside the lock: a TPM signs slowly
                with self._cond:
                    signed = self._signed.setdefault(r.seq, fresh)
            out.append(signed)
        return out
