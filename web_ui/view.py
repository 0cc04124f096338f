"""What the screens show: the appliance's status snapshot, read once per render.

``snapshot`` calls the appliance's public ``status()`` and
``turnout_by_hour()`` and adds what the templates need (is the last decision
still fresh, the chart). ``render_live`` renders the live region of a screen
(``status`` or ``observer``) to HTML; the page, the SSE stream and the polling
API all use it, so every path shows the same thing in the chosen language.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template
from flask_babel import gettext as _

from . import chart, i18n

VIEWS = ("status", "observer")
DECISION_FRESH_SECONDS = 4.0


def appliance() -> Any:
    """The appliance this app serves."""
    return current_app.extensions["pollbox.appliance"]


def snapshot() -> dict[str, Any]:
    """The status snapshot plus derived display fields."""
    app_ = appliance()
    status: dict[str, Any] = app_.status()
    status["turnout_by_hour"] = app_.turnout_by_hour()
    now = float(status.get("health", {}).get("clock") or 0.0)
    decision = status.get("last_decision")
    fresh = _decision_fresh_seconds(app_)
    status["decision_fresh"] = decision is not None and now - float(decision["at"]) <= fresh
    return status


def _decision_fresh_seconds(app_: Any) -> float:
    delays = getattr(app_, "delays", None)
    return float(getattr(delays, "decision_display", DECISION_FRESH_SECONDS))


def turnout_chart(points: list[tuple[int, int]]) -> Any:
    return chart.turnout_svg(points, hour_label=lambda h: i18n.fmt_time(h), number=i18n.fmt_number,
                             title=_("Voters identified per hour"), empty_text=_("No voters identified yet"))


def render_live(view: str, status: dict[str, Any]) -> str:
    """The HTML of the live region of ``view`` for ``status``."""
    return render_template("_live.html", s=status, observer=(view == "observer"),
                           chart=turnout_chart(status["turnout_by_hour"]))
