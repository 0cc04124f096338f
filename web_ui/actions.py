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
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from device.core.errors import RefusalCode
from device.decision import ActionRefused

from . import chair, faults, view
from .chair import chair_required
from .pin import MAX_DIGITS, MIN_DIGITS, Outcome, PinError, PinRule, pin_rule_broken
from .refusals import refusal_text

bp = Blueprint("actions", __name__, url_prefix="/chair")
log = logging.getLogger("pollbox.web")

MAX_TEXT = 200


def _text(name: str) -> str:
    return request.form.get(name, "").strip()[:MAX_TEXT]


# Login -----------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    nxt = request.values.get("next", "")
    if not chair.pin().is_set():
        return redirect(url_for("actions.setup"), code=303)
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


PIN_RULES = {
    PinRule.LENGTH: lambda: _("A PIN is 6 to 12 digits."),
    PinRule.WEAK: lambda: _("This PIN is too easy to guess: not one digit repeated, not digits counting up or down."),
    PinRule.MISMATCH: lambda: _("The two PINs differ. Enter the same PIN twice."),
}


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Any:
    """The chair chooses the PIN at the station, once: typed twice, checked against the rules,
    journaled (never the PIN). With a PIN already set this page only sends to the login."""
    if chair.pin().is_set():
        return redirect(url_for("actions.login"), code=303)
    if request.method == "GET":
        return _setup_page()
    rule = pin_rule_broken(request.form.get("pin", ""), request.form.get("again", ""))
    if rule is not None:
        return _setup_page(str(PIN_RULES[rule]()), 400)
    try:
        if not chair.pin().set_first(request.form["pin"]):
            return redirect(url_for("actions.login"), code=303)
    except OSError as exc:
        code, text = faults.explain(exc)
        return _setup_page(text, code)
    _journal_pin_set()
    chair.log_in()
    return _done(_("The chair PIN is set. Keep it secret; the chair logs in with it."))


def _setup_page(error: str = "", code: int = 200) -> tuple[str, int]:
    return render_template("setup_pin.html", error=error, s=view.snapshot(),
                           min_digits=MIN_DIGITS, max_digits=MAX_DIGITS), code


def _journal_pin_set() -> None:
    try:
        view.appliance().annotate("chair_pin", "chair PIN set at the station by the chair")
    except Exception:
        log.exception("setting the chair PIN could not be journaled")


def _pin_problem(exc: PinError) -> str:
    if exc.missing:
        return str(_("No chair PIN has been set on this unit. The chair sets it on this screen at the opening."))
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


# The panel and its pages ---------------------------------------------------------------
# The panel is a menu of large buttons; each task has its own page that fits the screen,
# with the on-screen keypad where something is typed and a way back to the panel.

UNDO_REASONS = (_l("Wrong voter's document scanned"), _l("Scanned by mistake"),
                _l("The voter left without a ballot"))
PAUSE_REASONS = (_l("Lunch break"), _l("Incident at the station"), _l("Ballot box check"))
NOTE_PICKS = (_l("Done as the screen says"), _l("Observers informed"), _l("Recorded in the protocol"))


def _page(template: str, code: int = 200, error: str = "", detail: str = "", **extra: Any) -> tuple[str, int]:
    s = view.snapshot(personal=True)
    return render_template(template, s=s, error=error, detail=detail, **extra), code


def _panel(code: int = 200, error: str = "", detail: str = "") -> tuple[str, int]:
    return _page("chair.html", code, error, detail, zero_shown=bool(session.get("zero_shown")))


def _done(message: str, to: str = "actions.panel") -> Response:
    flash(message, "ok")
    return redirect(url_for(to), code=303)


def _attempt(action: Callable[[], Any], refused_headline: str, ok_message: str,
             again: Callable[..., tuple[str, int]] = _panel) -> Any:
    """Run one appliance action; on refusal re-show the page (``again``) with the reason; nothing is recorded."""
    try:
        action()
    except ActionRefused as exc:
        return again(409, refused_headline, refusal_text(exc))
    except Exception as exc:
        return again(*_fault(exc, refused_headline))
    return _done(ok_message)


def _fault(exc: Exception, headline: str) -> tuple[int, str, str]:
    """An unexpected failure of an action: logged; the page says it was not done and what to do."""
    code, text = faults.explain(exc)
    return code, headline, text


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


def _pause_page(code: int = 200, error: str = "", detail: str = "") -> tuple[str, int]:
    return _page("pause.html", code, error, detail, reason_picks=PAUSE_REASONS)


@bp.get("/pause")
@chair_required
def pause_form() -> Any:
    return _pause_page()


@bp.post("/pause")
@chair_required
def pause() -> Any:
    reason = _text("reason")
    return _attempt(lambda: view.appliance().pause_polls(reason), _("The polls were not paused."),
                    _("The polls are paused. Identification is refused until you resume."), _pause_page)


@bp.post("/resume")
@chair_required
def resume() -> Any:
    return _attempt(view.appliance().resume_polls, _("The polls were not resumed."), _("The polls are open again."))


@bp.get("/alarms")
@chair_required
def alarms() -> Any:
    return _page("chair_alarms.html")


def _alarm_page(alarm_id: int, code: int = 200, error: str = "", detail: str = "") -> tuple[str, int]:
    s = view.snapshot(personal=True)
    found = [a for a in s["alarms"] if a["id"] == alarm_id]
    if not found:
        return _page("chair_alarms.html", 409 if error else 404, error or _("This alarm is not open."), detail)
    return render_template("alarm_ack.html", s=s, a=found[0], error=error, detail=detail,
                           note_picks=NOTE_PICKS), code


@bp.get("/alarms/<int:alarm_id>")
@chair_required
def alarm(alarm_id: int) -> Any:
    return _alarm_page(alarm_id)


@bp.post("/alarms/<int:alarm_id>/acknowledge")
@chair_required
def acknowledge(alarm_id: int) -> Any:
    note = _text("note")
    try:
        view.appliance().acknowledge_alarm(alarm_id, note)
    except ActionRefused as exc:
        return _alarm_page(alarm_id, 409, _("The alarm was not acknowledged."), refusal_text(exc))
    except Exception as exc:
        code, headline, text = _fault(exc, _("The alarm was not acknowledged."))
        return _alarm_page(alarm_id, code, headline, text)
    flash(_("Alarm acknowledged."), "ok")
    return redirect(url_for("actions.alarms"), code=303)


def _undo_page(code: int = 200, error: str = "", detail: str = "") -> tuple[str, int]:
    form = {"line": request.form.get("line", "")[:7], "reason": _text("reason")}
    return _page("undo.html", code, error, detail, reason_picks=UNDO_REASONS, form=form)


@bp.get("/undo")
@chair_required
def undo_form() -> Any:
    return _undo_page()


@bp.post("/undo")
@chair_required
def undo() -> Any:
    reason = _text("reason")
    line_text = request.form.get("line", "").strip()
    if not line_text.isdigit():
        return _undo_page(400, _("Enter the voter's list line number (digits only)."))
    if not reason:
        return _undo_page(400, _("Give a reason for undoing the check-in."))
    line = int(line_text)
    return _attempt(lambda: view.appliance().undo_checkin(line, reason), _("The check-in was not undone."),
                    _("The check-in of list line %(line)s was undone.", line=line), _undo_page)


def _manual_page(code: int = 200, error: str = "", detail: str = "", result: Any = None) -> tuple[str, int]:
    return _page("manual.html", code, error, detail, result=result)


@bp.get("/manual")
@chair_required
def manual_form() -> Any:
    return _manual_page()


@bp.post("/manual")
@chair_required
def manual() -> Any:
    number = request.form.get("number", "").strip()[:64]
    if not number:
        return _manual_page(400, _("Type the number from the document."))
    try:
        decision = view.appliance().identify_manual(number)
    except ActionRefused as exc:
        return _manual_page(409, _("The number was not checked."), refusal_text(exc))
    except Exception as exc:
        return _manual_page(*_fault(exc, _("The number was not checked.")))
    # shown at once, as large as on the status screen (not kept in the cookie: it may name the voter)
    return _manual_page(result=decision.to_dict())


@bp.post("/close-without")
@chair_required
def close_without() -> Any:
    """Several units: record, with the chair's reason, that the polls close without a unit's final records."""
    unit, reason = _text("unit"), _text("reason")
    if not reason:
        return render_template("confirm_close.html", s=view.snapshot(), waiting=[unit] if unit else [],
                               error=_("Give a reason for closing without this unit.")), 400
    try:
        view.appliance().close_without(unit, reason)
    except ActionRefused as exc:
        return _panel(409, _("The absence of the unit was not recorded."), refusal_text(exc))
    flash(_("%(unit)s: its absence is recorded with your reason.", unit=unit), "ok")
    return redirect(url_for("actions.confirm_close"), code=303)


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
        if exc.code is RefusalCode.UNITS_NOT_CLOSED:  # a station with several units: offer to close without them
            waiting = [u for u in str(exc.params.get("units", "")).split(", ") if u]
            return render_template("confirm_close.html", s=view.snapshot(), error=_("The polls were not closed."),
                                   detail=refusal_text(exc), waiting=waiting), 409
        return _panel(409, _("The polls were not closed."), refusal_text(exc))
    except Exception as exc:
        return _panel(*_fault(exc, _("The polls were not closed.")))
    return redirect(url_for("report.close_report"), code=303)
