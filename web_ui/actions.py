"""Chair actions behind the chair PIN (``/chair/...``).

Open the polls (only after the zero report was shown in this session),
pause and resume, acknowledge an alarm, undo a check-in with a reason, type
a number by hand, close the polls (after a confirmation). Each action calls
one public ``Appliance`` method, which commits it to the journal before
anything changes; a refusal (``ActionRefused``) is shown with HTTP 409, in
the screen's language (``refusals.py``), and nothing is recorded; any other failure
(a full disk) is logged and shown as one sentence saying what to do (``faults.py``).
Wrong PINs and lockouts are journaled with ``appliance.annotate("chair_pin", ...)``
(never the PIN itself); when the journal cannot take the note the lockout still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from device.decision import ActionRefused

from . import chair, faults, view
from .chair import chair_required
from .pin import Outcome, PinError
from .refusals import refusal_text

bp = Blueprint("actions", __name__, url_prefix="/chair")
log = logging.getLogger("pollbox.web")

MAX_TEXT = 200


def _text(name: str) -> str:
    return request.form.get(name, "").strip()[:MAX_TEXT]


def _panel(code: int = 200, error: str = "", detail: str = "") -> tuple[str, int]:
    s = view.snapshot(personal=True)
    return render_template("chair.html", s=s, error=error, detail=detail,
                           zero_shown=bool(session.get("zero_shown"))), code


def _done(message: str) -> Response:
    flash(message, "ok")
    return redirect(url_for("actions.panel"), code=303)


def _attempt(action: Callable[[], Any], refused_headline: str, ok_message: str) -> Any:
    """Run one appliance action; on refusal re-show the panel with the reason and record nothing."""
    try:
        action()
    except ActionRefused as exc:
        return _panel(409, refused_headline, refusal_text(exc))
    except Exception as exc:
        return _panel(*_fault(exc, refused_headline))
    return _done(ok_message)


def _fault(exc: Exception, headline: str) -> tuple[int, str, str]:
    """An unexpected failure of an action: logged; the panel says it was not done and what to do."""
    code, text = faults.explain(exc)
    return code, headline, text


# Login -----------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    nxt = request.values.get("next", "")
    if request.method == "GET":
        return _login_page(nxt)
    try:
        result = chair.pin().check(request.form.get("pin", ""), chair.now())
    except PinError as exc:
        log.error("the chair PIN cannot be checked: %s", exc)
        return _login_page(nxt, _("The chair PIN cannot be checked."), _pin_problem(exc), 503)
    if result.outcome is Outcome.ACCEPTED:
        chair.log_in()
        return redirect(nxt if nxt.startswith("/chair") else url_for("actions.panel"), code=303)
    _journal_pin_failure(result.just_locked, result.locked_for, result.tries_left)
    if result.outcome is Outcome.LOCKED:
        message = _("Too many wrong PINs. The PIN is locked for %(seconds)s seconds.",
                    seconds=int(result.locked_for + 0.999))
        return _login_page(nxt, message, "", 429)
    return _login_page(nxt, _("Wrong PIN. %(n)s tries left before the PIN locks.", n=result.tries_left), "", 403)


def _pin_problem(exc: PinError) -> str:
    if exc.missing:
        return str(_("No chair PIN has been set on this unit. The technician sets it when preparing the unit "
                     "(provisioning)."))
    return str(_("The chair PIN file on this unit is damaged or cannot be read. Call the technician."))


def _login_page(nxt: str, error: str = "", detail: str = "", code: int = 200) -> tuple[str, int]:
    return render_template("login.html", next=nxt, error=error, detail=detail), code


def _journal_pin_failure(just_locked: bool, locked_for: float, tries_left: int) -> None:
    if just_locked:
        text = f"chair PIN locked for {int(locked_for + 0.999)} s after repeated wrong PINs"
    elif locked_for > 0:
        return  # an attempt while locked: not compared, nothing new to record
    else:
        text = f"wrong chair PIN entered; {tries_left} tries left before lock-out"
    try:
        view.appliance().annotate("chair_pin", text)
    except ActionRefused:
        pass  # the journal refuses new records (failed verification); the screen already says so
    except Exception:
        # the journal cannot take it (a full disk): the lockout itself holds regardless
        log.exception("the wrong chair PIN could not be journaled")


@bp.post("/logout")
def logout() -> Response:
    chair.log_out()
    return redirect(url_for("status.index"), code=303)


# The panel and its actions ----------------------------------------------------------------------

@bp.get("")
@chair_required
def panel() -> Any:
    return _panel()


@bp.post("/open")
@chair_required
def open_polls() -> Any:
    if not session.get("zero_shown"):
        return _panel(409, _("Show the zero report to the commission first."))
    result = _attempt(view.appliance().open_polls, _("The polls were not opened."), _("The polls are open."))
    session.pop("zero_shown", None)
    return result


@bp.post("/pause")
@chair_required
def pause() -> Any:
    reason = _text("reason")
    return _attempt(lambda: view.appliance().pause_polls(reason), _("The polls were not paused."),
                    _("The polls are paused. Identification is refused until you resume."))


@bp.post("/resume")
@chair_required
def resume() -> Any:
    return _attempt(view.appliance().resume_polls, _("The polls were not resumed."), _("The polls are open again."))


@bp.post("/alarms/<int:alarm_id>/acknowledge")
@chair_required
def acknowledge(alarm_id: int) -> Any:
    note = _text("note")
    return _attempt(lambda: view.appliance().acknowledge_alarm(alarm_id, note),
                    _("The alarm was not acknowledged."), _("Alarm %(id)s acknowledged.", id=alarm_id))


@bp.post("/undo")
@chair_required
def undo() -> Any:
    reason = _text("reason")
    line_text = request.form.get("line", "").strip()
    if not line_text.isdigit():
        return _panel(400, _("Enter the voter's list line number (digits only)."))
    if not reason:
        return _panel(400, _("Give a reason for undoing the check-in."))
    line = int(line_text)
    return _attempt(lambda: view.appliance().undo_checkin(line, reason), _("The check-in was not undone."),
                    _("The check-in of list line %(line)s was undone.", line=line))


@bp.post("/manual")
@chair_required
def manual() -> Any:
    number = request.form.get("number", "").strip()[:64]
    if not number:
        return _panel(400, _("Type the number from the document."))
    try:
        decision = view.appliance().identify_manual(number)
    except ActionRefused as exc:
        return _panel(409, _("The number was not checked."), refusal_text(exc))
    except Exception as exc:
        return _panel(*_fault(exc, _("The number was not checked.")))
    flash(str(view_outcome(decision.outcome)), "decision-" + decision.outcome)
    return redirect(url_for("actions.panel"), code=303)


def view_outcome(outcome: str) -> Any:
    from .i18n import OUTCOMES
    return OUTCOMES.get(outcome, outcome)


@bp.get("/close")
@chair_required
def confirm_close() -> Any:
    return render_template("confirm_close.html", s=view.snapshot())


@bp.post("/close")
@chair_required
def close_polls() -> Any:
    if request.form.get("confirm") != "yes":
        return render_template("confirm_close.html", s=view.snapshot(),
                               error=_("Tick the box to confirm that the polls close now.")), 400
    try:
        view.appliance().close_polls()
    except ActionRefused as exc:
        return _panel(409, _("The polls were not closed."), refusal_text(exc))
    except Exception as exc:
        return _panel(*_fault(exc, _("The polls were not closed.")))
    return redirect(url_for("report.close_report"), code=303)
