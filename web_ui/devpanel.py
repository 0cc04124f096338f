"""The developer panel (``/dev``): try the whole station in a browser. Simulation only.

It is registered only when the appliance runs in simulation mode and has
simulated parts (``appliance.sim``); in production the routes do not exist.
It feeds a scan to the simulated scanner, drops a ballot, opens and closes the
lid, holds the drop sensor (a jam), unplugs the scanner and cuts the link to
the CEC: the actions of ``device.hardware.sim.controls.ACTIONS``, the same
table the command line uses. On a station of several units it also cuts and
restores the link to each other unit (``/dev/unit-link``, as the demo's
``link`` command does). What it does is what a person would do to real
hardware; the appliance records the consequences as usual. Typed scan text is
passed on in memory and never logged.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from device.hardware.sim.controls import BY_NAME
from protocol.errors import UserError

from . import view
from .station import Station

bp = Blueprint("devpanel", __name__, url_prefix="/dev")


def allowed(appliance: Station) -> bool:
    """The panel exists only for a simulated station."""
    return appliance.sim is not None and appliance.status().get("mode") == "simulation"


def _sim() -> Any:
    return view.appliance().sim


def _do(name: str, values: dict[str, Any]) -> None:
    """Run a simulator action; what the simulated part refuses (an unplugged scanner) is flashed."""
    try:
        BY_NAME[name].run(_sim(), values)
    except (RuntimeError, ValueError) as exc:
        flash(str(exc), "error")


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
        _do("scan", {"text": text})
    return redirect(url_for("devpanel.panel"), code=303)


@bp.post("/unit-link")
def unit_link() -> Response:
    """Cut or restore the link to another unit of the station (a station of several units, simulated)."""
    peer, up = request.form.get("peer", ""), request.form.get("up") == "1"
    peers = [r["unit"] for r in view.unit_rows(view.appliance().status().get("units")) if not r["own"]]
    if peer not in peers:
        flash(_("%(unit)s is not another unit of this station.", unit=peer[:40]), "error")
        return redirect(url_for("devpanel.panel"), code=303)
    try:
        view.appliance().set_unit_link(peer, up)
    except UserError as exc:  # the appliance checks again (a simulated station of several units only)
        flash(str(exc), "error")
    return redirect(url_for("devpanel.panel"), code=303)


@bp.post("/<action>")
def act(action: str) -> Response:
    """A simulator action without parameters (a ballot drop, the lid, a jam, a plug, the link)."""
    if action not in BY_NAME or BY_NAME[action].params:
        abort(404)
    _do(action, {})
    return redirect(url_for("devpanel.panel"), code=303)
