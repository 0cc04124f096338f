"""What the screens show: the appliance's status snapshot, read once per render.

``snapshot`` calls the appliance's public ``status()`` and
``turnout_by_hour()`` and adds what the templates need (is the last decision
still fresh, the chart, the wording of the link to the CEC). It copies what it
changes, so the appliance's snapshot may be immutable. ``render_live`` renders
the live region of a screen (one of ``VIEWS``) to HTML; the page, the
SSE stream and the polling API all use it, so every path shows the same thing
in the chosen language.

Personal data: the voter at the desk (name and list line) is in a snapshot
only when asked for with ``personal=True``, which only the chair's own
session does (``personal_for``). Every page and API without a PIN, and the
observer view always, gets ``without_personal_data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, render_template
from flask_babel import gettext as _

from . import chair, chart, i18n
from .station import Station

VIEWS = ("status", "observer", "alarms", "observer-alarms", "details", "observer-details", "units", "observer-units")
"""Live regions: the status screen, the observer view, and the alarm list, details and units pages (each also as
opened from the observer view, where nothing can be acknowledged)."""
DECISION_FRESH_SECONDS = 4.0
PERSONAL_FIELDS = ("name", "line")


def appliance() -> Station:
    """The appliance this app serves."""
    station: Station = current_app.extensions["pollbox.appliance"]
    return station


def personal_for(view: str) -> bool:
    """Whether ``view`` may show who is at the desk to this request: the chair's status screen only."""
    return view == "status" and chair.is_chair()


def snapshot(*, personal: bool = False) -> dict[str, Any]:
    """The status snapshot plus derived display fields; without personal data unless ``personal``."""
    app_ = appliance()
    status: dict[str, Any] = dict(app_.status())
    status["turnout_by_hour"] = app_.turnout_by_hour()
    now = float((status.get("health") or {}).get("clock") or 0.0)
    decision = status.get("last_decision")
    fresh = _decision_fresh_seconds(app_)
    status["decision_fresh"] = decision is not None and now - float(decision["at"]) <= fresh
    status["link"] = link_state(status.get("upstream"))
    status["alarms"] = by_urgency(status.get("alarms") or [], status)
    status["unit_rows"] = unit_rows(status.get("units"))
    return status if personal else without_personal_data(status)


def unit_rows(units: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The units panel: this unit first, then each other unit with how far this unit holds its records,
    when it last answered, one state word (``up_to_date``, ``catching_up``, ``not_reached``, ``cut``) and how
    it was found in the last round (``found``: ``package`` for the package's static address, ``mdns`` for
    an address announced on the LAN, ``none`` when it did not answer at any address; ``""`` for a cut link).

    ``units`` is the appliance's snapshot of its sync with the other units (none for a one-unit station).
    """
    if not units:
        return []
    held, closed = units.get("held") or {}, set(units.get("closed") or [])
    own = str(units.get("unit"))
    rows = [{"unit": own, "own": True, "role": units.get("role"), "held": held.get(own, 0), "of": None,
             "reached_at": None, "state": "own", "closed": False, "found": ""}]
    for peer, seen in sorted((units.get("peers") or {}).items()):
        if seen.get("cut"):
            state = "cut"
        elif seen.get("up_to_date"):
            state = "up_to_date"
        elif seen.get("answered"):
            state = "catching_up"
        else:
            state = "not_reached"
        found = "" if state == "cut" else (str(seen.get("found_by") or "none") if seen.get("answered") else "none")
        rows.append({"unit": peer, "own": False, "role": None, "held": seen.get("held", 0),
                     "of": seen.get("their_count"), "reached_at": seen.get("reached_at"), "state": state,
                     "closed": peer in closed, "found": found})
    return rows


def _strip(decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {k: v for k, v in decision.items() if k not in PERSONAL_FIELDS}


def without_personal_data(status: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``status`` that says nothing about who a voter is: no name, no list line."""
    out = dict(status)
    out["last_decision"] = _strip(status.get("last_decision"))
    desk = status.get("desk")
    if isinstance(desk, Mapping):
        out["desk"] = {**desk, "current": _strip(desk.get("current"))}
    return out


def link_state(upstream: Mapping[str, Any] | None) -> str:
    """How the link to the CEC is worded.

    ``none``: no link configured; ``online``: the receiver answered last;
    ``offline``: the last attempt failed and that failure stands. Otherwise (not
    tried since the start, or the last attempt went through): ``sending`` when
    records wait, ``delivered`` when the CEC has receipted everything, ``idle``
    when nothing was ever sent. "Offline" is never said without a failure.
    """
    if not upstream:
        return "none"
    online = upstream.get("online")
    if online is True or upstream.get("refused"):
        return "online"
    failed = bool(upstream.get("failures")) or bool(upstream.get("last_error"))
    if online is False and failed:
        return "offline"
    if int(upstream.get("waiting") or 0) > 0:
        return "sending"
    return "delivered" if upstream.get("last_receipt_at") else "idle"


URGENCY = ("storage_failed", "lid_opened", "second_ballot", "drop_without_token", "jam", "box_unit_lost",
           "box_unit_replaced", "scanner_lost", "storage_low")
"""Alarm kinds from most to least urgent: the status screen always shows the first open one in full."""


def persists(alarm: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the condition behind ``alarm`` is still there (lid open, slot jammed, box unit silent):
    such an alarm is shown as still open and cannot be acknowledged."""
    lock, box = status.get("interlock") or {}, status.get("box") or {}
    kind = alarm.get("kind")
    return bool((kind == "lid_opened" and lock.get("lid_open")) or (kind == "jam" and lock.get("jammed"))
                or (kind == "box_unit_lost" and box.get("present") is False))


def by_urgency(alarms: list[Mapping[str, Any]], status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The open alarms, most urgent first (then newest first), each marked ``persists``."""
    def rank(a: Mapping[str, Any]) -> tuple[int, float]:
        kind = str(a.get("kind"))
        return (URGENCY.index(kind) if kind in URGENCY else len(URGENCY), -float(a.get("at") or 0))
    return [{**a, "persists": persists(a, status)} for a in sorted(alarms, key=rank)]


def _decision_fresh_seconds(app_: Any) -> float:
    delays = getattr(app_, "delays", None)
    return float(getattr(delays, "decision_display", DECISION_FRESH_SECONDS))


def turnout_chart(points: list[tuple[int, int]]) -> Any:
    return chart.turnout_svg(points, hour_label=lambda h: i18n.fmt_time(h), number=i18n.fmt_number,
                             title=_("Voters identified per hour"), empty_text=_("No voters identified yet"))


def render_live(view: str, status: dict[str, Any]) -> str:
    """The HTML of the live region of ``view`` for ``status`` (only the chair's status screen shows who voted)."""
    observer = view.startswith("observer")
    if view.endswith("alarms"):
        return render_template("_alarms_live.html", s=without_personal_data(status), observer=observer)
    if view.endswith("units"):
        return render_template("_units_live.html", s=without_personal_data(status), observer=observer)
    if view.endswith("details"):
        return render_template("_details_live.html", s=without_personal_data(status), observer=observer,
                               chart=turnout_chart(status["turnout_by_hour"]))
    shown = without_personal_data(status) if observer else status
    return render_template("_live.html", s=shown, observer=observer)
