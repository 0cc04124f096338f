"""The developer panel (``/dev``): try the whole station in a browser. Simulation only.

It is registered only when the appliance runs in simulation mode and has
simulated parts (``appliance.sim``); in production the routes do not exist.
It feeds a scan to the simulated scanner, drops a ballot, opens and closes the
lid, holds the drop sensor (a jam), unplugs the scanner and cuts the link to
the CEC. What it does is what a person would do to real hardware; the
appliance records the consequences as usual. Typed scan text is passed on in
memory and never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from . import view

bp = Blueprint("devpanel", __name__, url_prefix="/dev")


def allowed(appliance: Any) -> bool:
    """The panel exists only for a simulated station."""
    return getattr(appliance, "sim", None) is not None and appliance.status().get("mode") == "simulation"


def _sim() -> Any:
    return view.appliance().sim


ACTIONS: dict[str, Callable[[Any], None]] = {
    "drop": lambda sim: sim.box.drop(),
    "lid-open": lambda sim: sim.box.open_lid(),
    "lid-close": lambda sim: sim.box.close_lid(),
    "jam": lambda sim: sim.box.block_beam(),
    "unjam": lambda sim: sim.box.clear_beam(),
    "scanner-unplug": lambda sim: sim.scanner.unplug(),
    "scanner-replug": lambda sim: sim.scanner.replug(),
    "link-cut": lambda sim: sim.cut_link(),
    "link-restore": lambda sim: sim.restore_link(),
}


@bp.get("")
def panel() -> str:
    s = view.snapshot()
    return render_template("devpanel.html", s=s, live=view.render_live("status", s), live_view="status",
                           demo_numbers=current_app.config["DEMO_NUMBERS"])


@bp.post("/scan")
def scan() -> Response:
    text = request.form.get("text", "").strip()
    if not text:
        flash(_("Type or pick a document payload to scan."), "error")
    else:
        _sim().feed(text)
    return redirect(url_for("devpanel.panel"), code=303)


@bp.post("/<action>")
def act(action: str) -> Response:
    do = ACTIONS.get(action)
    if do is None:
        abort(404)
    do(_sim())
    return redirect(url_for("devpanel.panel"), code=303)
