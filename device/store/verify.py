"""Verification of a journal: the hash chain, the sequence, and every counter.

``verify_journal`` walks the rows in order, recomputes each chain hash, decodes
each event and folds it into a fresh ``StationState``; the first row whose hash,
sequence, body or meaning does not fit is named. Used by ``pollbox verify``,
and by the appliance before it lets the chair open the polls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from device.core import events as ev
from device.core.errors import InvalidEvent
from device.core.station import StationState, apply

from .journal import GENESIS, Journal, Row, row_hash


@dataclass
class VerifyReport:
    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str = ""
    state: StationState = field(default_factory=StationState)
    head_hash: str = ""

    def sentence(self) -> str:
        if self.ok:
            s = self.state
            return (f"journal verified: {self.events} events, chain intact; "
                    f"{s.identified} identified, {s.ballots} ballots, difference {s.difference}, "
                    f"{len(s.alarms)} open alarms; head {self.head_hash[:16]}")
        return f"journal FAILED verification at event {self.first_bad_seq}: {self.reason}"


def verify_journal(journal: Journal) -> VerifyReport:
    """Recompute the chain and the counters; stop at the first bad row."""
    state, prev, expected, count = StationState(), GENESIS, 1, 0
    for row in journal.rows():
        problem = _check_row(row, prev, expected)
        if problem is None:
            try:
                apply(state, ev.Recorded(row.seq, row.at_us / 1_000_000, ev.decode(row.kind, json.loads(row.body))))
            except (InvalidEvent, ValueError, TypeError) as exc:
                problem = f"event does not fit the journal before it: {exc}"
        if problem is not None:
            return VerifyReport(False, count, row.seq, problem, state, prev.hex())
        prev, expected, count = row.hash, expected + 1, count + 1
    return VerifyReport(True, count, None, "", state, prev.hex())


def _check_row(row: Row, prev: bytes, expected: int) -> str | None:
    if row.seq != expected:
        return f"sequence gap: expected {expected}, found {row.seq}"
    if row.prev_hash != prev:
        return "previous-hash link broken (a row before it was changed or removed)"
    try:
        json.loads(row.body)
    except ValueError as exc:
        return f"body is not valid JSON ({exc})"
    digest = row_hash(prev, row.seq, row.at_us, row.kind, row.body)
    if digest != row.hash:
        return "hash mismatch: the row's content was altered"
    return None
