"""The observer view (``/observer``): the same counters, read-only, no actions.

Safe on a second screen facing the room: no chair controls, no links to them,
nothing that says who a voter is (no name, no list line), and it never needs a
PIN.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from . import view

bp = Blueprint("observer", __name__)


@bp.get("/observer")
def index() -> str:
    s = view.snapshot()
    return render_template("observer.html", s=s, live=view.render_live("observer", s), live_view="observer")
