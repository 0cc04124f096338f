"""The chair's screen's sentence for each refusal code, in the reader's language.

The appliance refuses a chair action with ``ActionRefused``: an English
sentence for logs and the command line, plus a ``RefusalCode`` and its
parameters. ``refusal_text`` turns the code into a sentence from the
``.po`` catalogues, so a chair who reads Kyrgyz or Russian never sees the
English one. A test checks that every code has a sentence here. ``init_app``
registers the page for a refusal that a view did not catch itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, render_template
from flask_babel import gettext as _

from device.core.errors import RefusalCode
from device.decision import ActionRefused

from . import faults
from .i18n import ALARM_TITLES, POLL_STATES, fmt_number


def _wrong_state(p: dict[str, Any]) -> str:
    state = p.get("state", "")
    return str(_("Not possible now. State of the polls: %(state)s.", state=POLL_STATES.get(state, state)))


SENTENCES: dict[RefusalCode, Callable[[dict[str, Any]], str]] = {
    RefusalCode.WRONG_STATE: _wrong_state,
    RefusalCode.ZERO_REPORT_FAILS: lambda p: _(
        "The zero report fails: %(identified)s voters identified and %(ballots)s ballots are already recorded. "
        "Call the technician.", identified=fmt_number(p.get("identified")), ballots=fmt_number(p.get("ballots"))),
    RefusalCode.REASON_REQUIRED: lambda p: _("A reason is required."),
    RefusalCode.NO_STANDING_CHECKIN: lambda p: _("This voter has no check-in to undo."),
    RefusalCode.ALARM_NOT_OPEN: lambda p: _("Alarm %(id)s is not open: it was already acknowledged.",
                                            id=p.get("alarm", "")),
    RefusalCode.BAD_UNIT_COUNT: lambda p: _("The ballot box unit reported an impossible counter. Call the technician."),
    RefusalCode.NO_SUCH_LINE: lambda p: _("There is no line %(line)s in this station's voter list.",
                                          line=p.get("line", "")),
    RefusalCode.JOURNAL_FAILED: lambda p: _(
        "The journal failed verification. Nothing more can be recorded. Call the technician."),
    RefusalCode.NO_OUTBOX: lambda p: _("This unit has no link to the CEC configured. Call the technician."),
    RefusalCode.CONDITION_PERSISTS: lambda p: _(
        "Alarm %(id)s cannot be acknowledged yet: its cause is still there (%(what)s). Do what the screen says; "
        "the alarm can be acknowledged once the unit sees it resolved.",
        id=p.get("alarm", ""), what=ALARM_TITLES.get(str(p.get("kind", "")), _("Alarm"))),
    RefusalCode.UNITS_NOT_CLOSED: lambda p: _(
        "The final records of %(units)s are not here yet. Wait for them, or close without them and give a reason.",
        units=p.get("units", "")),
    RefusalCode.NO_SUCH_UNIT: lambda p: _("%(unit)s is not another unit of this station still to be accounted for.",
                                          unit=p.get("unit", "")),
    RefusalCode.UPDATE_INSTALLING: lambda p: _(
        "A software update (version %(version)s) is being installed on this unit. The polls cannot be opened or "
        "resumed until it ends. Wait for the technician.", version=p.get("version", "")),
}


def refusal_text(exc: ActionRefused) -> str:
    """The sentence for ``exc`` in the current language. A code this screen has no sentence for yet
    gets the storage sentence if it names a storage fault, else a general one; never English."""
    sentence = SENTENCES.get(exc.code)
    if sentence is not None:
        return sentence(exc.params)
    fault = faults.BY_CODE.get(str(getattr(exc.code, "value", exc.code)))
    if fault is not None:
        return faults.sentence(fault)
    return str(_("The unit refused this, so nothing was recorded. Call the technician if it happens again."))


def _refused(exc: ActionRefused) -> tuple[str, int]:
    """A refusal a view did not expect: the page says why, in its language; nothing was recorded."""
    return render_template("error.html", kind="fault", code=409, message=refusal_text(exc)), 409


def init_app(app: Flask) -> None:
    app.register_error_handler(ActionRefused, _refused)
