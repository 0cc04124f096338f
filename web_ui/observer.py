"""The observer view (``/observer``): the same counters, read-only, no actions.

Safe on a second screen facing the room: no chair controls, no links to them,
nothing that says who a voter is (no name, no list line), and it never needs a
PIN. Opened from the unit's own status screen (``?kiosk=1``) it has a button
back, and it goes back by itself after ``OBSERVER_RETURN_SECONDS`` without a
touch, so the kiosk is never left on it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from . import view

bp = Blueprint("observer", __name__)


@bp.get("/observer")
def index() -> str:
    s = view.snapshot()
    return render_template("observer.html", s=s, live=view.render_live("observer", s), live_view="observer",
                           kiosk=request.args.get("kiosk") == "1",
                           return_after=int(current_app.config["OBSERVER_RETURN_SECONDS"]))
