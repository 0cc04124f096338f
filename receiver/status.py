"""What a station's records say about it: phase, counts, alarms, close report.

Pure: ``fold`` turns a station's status and its newly accepted records into
the new status, and ``alarm_changes`` lists the alarms raised and
acknowledged. Storage keeps the result in the ``stations`` and ``alarms``
tables so the overview page is one indexed query even for a million stations.
Record types it does not know are stored and shown generically; they change
nothing here. A training station (``training`` 1, ``is_training``) is folded the
same way, but storage never counts it and the results leave it out.

A station closes once. After its ``polls_closed`` record only alarms, their
acknowledgements and annotations may follow (``AFTER_CLOSE``; and types this
receiver does not know, which change nothing). Any other record after the
close, a second close report above all, is stored like every record (it is
signed and chained: evidence), changes nothing in the status, so the published
report stays the first one, and raises a receiver alarm (``evidence_alarms``)
that the overview counts with the station's open alarms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol.envelope import SignedRecord, is_int
from protocol.schema import BODIES

AFTER_CLOSE = frozenset({"alarm_raised", "alarm_acknowledged", "annotation"})
KNOWN = frozenset(BODIES)
PHASES = {"polls_opened": "open", "polls_paused": "paused", "polls_resumed": "open", "polls_closed": "closed"}
COUNTS = ("identified", "ballots", "registered")


@dataclass(frozen=True)
class StationStatus:
    """One row of the overview."""

    station: str
    highest_seq: int = 0
    last_hash: str = "0" * 64
    phase: str = "not_opened"
    first_received: float | None = None
    last_received: float | None = None
    last_at: str | None = None
    opened_at: str | None = None
    closed_at: str | None = None
    identified: int | None = None
    ballots: int | None = None
    registered: int | None = None
    alarms_open: int = 0
    close_report: str | None = None
    evidence: int = 0  # records signed after the close that the protocol does not allow (kept, counted, ignored)
    training: int = 0  # 1: a training station (``protocol/training.py``): stored and shown apart, never counted
    units_report: str | None = None
    """A station of several units: the main unit's ``units_reconciled`` body (JSON), signed just before its close
    report. From the close on, ``identified`` and ``ballots`` are its combined totals over every unit."""

    @property
    def turnout(self) -> float | None:
        if self.identified is None or not self.registered:
            return None
        return self.identified / self.registered

    def close_body(self) -> dict[str, Any] | None:
        return json.loads(self.close_report) if self.close_report else None


@dataclass(frozen=True)
class AlarmChange:
    """An alarm raised (``acknowledged`` False) or acknowledged, as a record says."""

    alarm: int
    acknowledged: bool
    kind: str
    detail: str
    at: str


def reconciled(status: StationStatus) -> bool:
    """Whether the station's counts are its main unit's reconciled totals over every unit (closed, with a
    ``units_reconciled``): no unit's own counts move them any more."""
    return status.phase == "closed" and status.units_report is not None


def is_training(status: StationStatus) -> bool:
    """Whether ``status`` is a training station's: its records are kept apart and never counted."""
    return bool(status.training)


def fold(status: StationStatus, records: Sequence[SignedRecord], received_at: float) -> StationStatus:
    """The status after ``records`` (already accepted, in sequence order); records out of place change nothing."""
    if not records:
        return status
    changes: dict[str, Any] = {"opened_at": status.opened_at, "units_report": status.units_report}
    effective, evidence = split_after_close(status, records)
    for record in effective:
        _apply(changes, record)
    if evidence:
        changes["evidence"] = status.evidence + len(evidence)
    last = records[-1]
    changes.update(highest_seq=last.seq, last_hash=last.hash, first_received=status.first_received or received_at,
                   last_received=received_at, last_at=str(last.fields["at"]))
    return replace(status, **changes)


def split_after_close(status: StationStatus, records: Sequence[SignedRecord]) -> tuple[
        list[SignedRecord], list[SignedRecord]]:
    """(records that count, records a closed station may not send): the second list is kept only as evidence."""
    closed, effective, evidence = status.phase == "closed", [], []
    for record in records:
        if closed and record.type in KNOWN and record.type not in AFTER_CLOSE:
            evidence.append(record)
            continue
        effective.append(record)
        closed = closed or record.type == "polls_closed"
    return effective, evidence


def evidence_alarms(status: StationStatus, records: Sequence[SignedRecord]) -> list[AlarmChange]:
    """A receiver alarm for each record out of place after the close (numbered ``-seq``, never acknowledged)."""
    _, evidence = split_after_close(status, records)
    return [AlarmChange(alarm=-record.seq, acknowledged=False,
                        kind="second_close_report" if record.type == "polls_closed" else "record_after_close",
                        detail=f"record {record.seq} ({record.type}) was signed after the station closed the polls; "
                               "it is kept as evidence and the published close report is unchanged",
                        at=str(record.fields["at"])) for record in evidence]


def _apply(changes: dict[str, Any], record: SignedRecord) -> None:
    """Fold one record into the pending column changes."""
    kind, body, at = str(record.fields["type"]), record.fields["body"], str(record.fields["at"])
    if kind not in KNOWN:
        return
    changes.update((name, body[name]) for name in COUNTS if _is_count(body.get(name)))
    if kind in PHASES:
        changes["phase"] = PHASES[kind]
    if kind == "polls_opened" and changes["opened_at"] is None:
        changes["opened_at"] = at
    if kind == "units_reconciled":
        changes["units_report"] = json.dumps(body, sort_keys=True)
    if kind == "polls_closed":
        changes["closed_at"] = at
        changes["close_report"] = json.dumps(body, sort_keys=True)
        if changes["units_report"] is not None:  # the station's totals: every unit's part, counted once
            combined = json.loads(changes["units_report"])
            changes.update((name, combined[name]) for name in ("identified", "ballots")
                           if _is_count(combined.get(name)))


def station_totals(close_body: dict[str, Any], units_report: str | None) -> dict[str, Any]:
    """The counts a station's results publish: its close report's, or for a station of several units the
    combined totals of the main unit's ``units_reconciled`` (each unit's part counted once)."""
    if units_report is None:
        return dict(close_body)
    combined = json.loads(units_report)
    out = dict(close_body)
    if _is_count(combined.get("identified")) and _is_count(combined.get("ballots")):
        out.update(identified=combined["identified"], ballots=combined["ballots"],
                   difference=combined["ballots"] - combined["identified"])
    return out


def _is_count(value: Any) -> bool:
    return is_int(value)


def alarm_changes(records: Sequence[SignedRecord]) -> list[AlarmChange]:
    """The alarm events among ``records``; records without an integer ``alarm`` are ignored."""
    out = []
    for record in records:
        kind, body = record.fields["type"], record.fields["body"]
        if kind in ("alarm_raised", "alarm_acknowledged") and _is_count(body.get("alarm")):
            out.append(AlarmChange(alarm=body["alarm"], acknowledged=kind == "alarm_acknowledged",
                                   kind=str(body.get("alarm_kind", "")), detail=str(body.get("detail", "")),
                                   at=str(record.fields["at"])))
    return out
