"""The status screen (``/``), its two detail pages and the language switch (``/lang/<code>``).

The status screen fits the 800x480 touchscreen without scrolling: counters,
the last decision, the most urgent alarm, short states of the link and the
scanner. ``/alarms`` lists every open alarm, ``/details`` shows the
turnout chart, the link and the device in full, and ``/units`` (a station
of several units) each unit, how far it is held here and its last contact; each has a way back
(to the observer view when opened from it: ``?view=observer``) and updates
live like the status screen, with the same "connection lost" banner.

The page renders the live region once on the server; ``static/live.js`` then
keeps it current from ``/events`` (or ``/api/status`` if streaming fails).
Who is at the desk (name, list line) is shown only while the chair is logged
in on this browser; without the PIN the page carries no personal data.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from . import i18n, view

bp = Blueprint("status", __name__)


@bp.get("/")
def index() -> str:
    s = view.snapshot(personal=view.personal_for("status"))
    return render_template("status.html", s=s, live=view.render_live("status", s), live_view="status")


def _from_observer() -> bool:
    return request.args.get("view") == "observer"


def _back() -> str:
    return url_for("observer.index") if _from_observer() else url_for("status.index")


def _live_page(template: str, page: str) -> str:
    """A page whose content is a live region kept current like the status screen's (``static/live.js``)."""
    name = f"observer-{page}" if _from_observer() else page
    s = view.snapshot()
    return render_template(template, s=s, back=_back(), observer=_from_observer(), live=view.render_live(name, s),
                           live_view=name)


@bp.get("/alarms")
def alarms() -> str:
    return _live_page("alarms.html", "alarms")


@bp.get("/details")
def details() -> str:
    return _live_page("details.html", "details")


@bp.get("/units")
def units() -> str:
    """The station's units: how far this unit holds each other unit's records, and when it last reached it."""
    return _live_page("units.html", "units")


@bp.post("/lang/<code>")
def choose_language(code: str) -> Response:
    """Keep the chosen language in the session and go back where the chair was."""
    if code not in i18n.LANGUAGES:
        abort(404)
    session["lang"] = code
    session.permanent = True
    return redirect(_same_site(request.form.get("next", "")) or url_for("status.index"), code=303)


def _same_site(target: str) -> str:
    """Only a local path is followed after switching language."""
    return target if target.startswith("/") and not target.startswith("//") else ""
