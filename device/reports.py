"""The reports a station gives: the zero report, the close report as the journal holds it (counts, every alarm
raised, the signed line), and the USB export of what the CEC has not acknowledged.

``zero_report(app)`` and ``close_report(app)`` run on the appliance's owner thread (``Appliance.close_report``
sends them there), so they read the journal and the state between two commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from device.core import events as ev
from device.core.errors import RefusalCode
from device.core.poll import PollState
from device.core.station import StationState
from device.decision import ActionRefused
from device.hardware.interfaces import Clock
from device.package import StationPackage
from device.store.journal import Journal

if TYPE_CHECKING:
    from device.upstream.service import Upstream


class Reporting(Protocol):
    """What the reports read of a station (the ``Appliance`` is one)."""

    state: StationState
    package: StationPackage
    journal: Journal
    upstream: Upstream | None
    clock: Clock

    def annotate(self, topic: str, text: str) -> None: ...


def export_usb(app: Reporting, directory: Path) -> dict[str, Any]:
    """Write the records the CEC has not acknowledged to a file on a USB stick, and note it in the journal."""
    if app.upstream is None:
        raise ActionRefused("this unit has no upstream outbox", RefusalCode.NO_OUTBOX)
    waiting = app.upstream.status()["waiting"]
    path = app.upstream.export(directory)
    app.annotate("usb_export", f"{waiting} records exported to a USB file")
    return {"path": str(path), "records": waiting}


def zero_report(app: Reporting) -> dict[str, Any]:
    """The zero report: it holds while nothing was identified or counted."""
    s = app.state
    return {"station": app.package.station_id, "identified": s.identified, "ballots": s.ballots,
            "holds": not s.anything_recorded, "poll": s.poll.value, "at": app.clock.wall(),
            "training": app.package.training}


def close_report(app: Reporting) -> dict[str, Any] | None:
    """The recorded close report, or None while the polls are not closed."""
    if app.state.poll is not PollState.CLOSED:
        return None
    closed, raised, units = _close_and_alarms(app)
    e = closed.event
    assert isinstance(e, ev.PollsClosed)
    alarms = [_alarm_dict(app, a) for a in raised]
    signed = app.upstream.signed_line_for(closed.seq) if app.upstream is not None else None
    return {"station": app.package.station_id, "station_name": app.package.payload["station"].get("name"),
            "election": app.package.election_id, "closed_at": closed.at, "seq": closed.seq,
            "identified": e.identified, "ballots": e.ballots, "difference": e.difference,
            "alarms_total": e.alarms_total, "alarms_open": e.alarms_open, "alarms": alarms,
            "registered": app.package.registered, "signed": signed,
            "journal_head": app.journal.last_hash.hex(), "training": app.package.training,
            "units": _units_part(app, units)}


def _units_part(app: Reporting, rec: ev.Recorded | None) -> dict[str, Any] | None:
    """A station with several units, at its main desk: the desks' part, the mobile box's, the total, signed."""
    if rec is None:
        return None
    e = rec.event
    assert isinstance(e, ev.UnitsReconciled)
    signed = app.upstream.signed_line_for(rec.seq) if app.upstream is not None else None
    return {"desks": {"identified": e.desks_identified, "ballots": e.desks_ballots},
            "mobile": {"identified": e.mobile_identified, "ballots": e.mobile_ballots,
                       "difference": e.mobile_ballots - e.mobile_identified},
            "total": {"identified": e.identified, "ballots": e.ballots}, "conflicts": e.conflicts,
            "absent": [u for u in e.absent.split(", ") if u], "parts": e.parts, "signed": signed}


def _close_and_alarms(app: Reporting) -> tuple[ev.Recorded, list[ev.Recorded], ev.Recorded | None]:
    """The close report event, every alarm raised and the units' reconciliation (if any), in one pass."""
    closing: ev.Recorded | None = None
    raised: list[ev.Recorded] = []
    units: ev.Recorded | None = None
    for rec in app.journal.recorded():
        if isinstance(rec.event, ev.PollsClosed):
            closing = rec
        elif isinstance(rec.event, ev.UnitsReconciled):
            units = rec
        elif isinstance(rec.event, ev.AlarmRaised):
            raised.append(rec)
    assert closing is not None, "polls are closed, so the journal holds the close report"
    return closing, raised, units


def _alarm_dict(app: Reporting, rec: ev.Recorded) -> dict[str, Any]:
    e = rec.event
    assert isinstance(e, ev.AlarmRaised)
    return {"id": e.alarm, "kind": e.alarm_kind, "detail": e.detail, "at": rec.at,
            "open": e.alarm in app.state.alarms}
