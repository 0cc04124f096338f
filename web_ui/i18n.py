"""Languages: Kyrgyz, Russian and English through Flask-Babel catalogues.

The chosen language is kept in the session (``/lang/<code>``); otherwise the
station's language (``STATION_LANGUAGE``, the first one its package lists:
the kiosk browser's own preference says nothing about the commission), then
the browser's preference, otherwise ``DEFAULT_LANGUAGE``. Numbers, percentages and
times are formatted in the chosen locale by the Jinja filters registered
here; times are shown in the station's ``TIMEZONE``. Catalogues live in
``web_ui/translations/<code>/LC_MESSAGES/messages.po`` with their compiled
``.mo`` beside them (``babel.cfg`` drives extraction).

Alarm advice and decision words are defined here once, keyed by kind, so the
``.po`` files carry a translation of every sentence the chair may see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, request, session
from flask_babel import Babel, format_decimal, format_percent, format_time, get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

LANGUAGES: dict[str, str] = {"ky": "Кыргызча", "ru": "Русский", "en": "English"}
SHORT_NAMES: dict[str, str] = {"ky": "Кырг", "ru": "Рус", "en": "Eng"}

ALARM_TITLES: dict[str, Any] = {
    "drop_without_token": _l("Ballot without identification"),
    "second_ballot": _l("Second ballot on one identification"),
    "lid_opened": _l("Ballot box lid open"),
    "jam": _l("Ballot slot jammed"),
    "box_unit_lost": _l("Ballot box unit not answering"),
    "box_unit_replaced": _l("Ballot box unit replaced"),
    "scanner_lost": _l("Document scanner disconnected"),
    "storage_low": _l("Storage almost full"),
    "storage_failed": _l("The journal cannot be written"),
    "unit_conflict": _l("Voter admitted at two units"),
    "unit_clock_drift": _l("Another unit's clock is off"),
}

ALARM_ADVICE: dict[str, Any] = {
    "drop_without_token": _l("A ballot went in without an identification. Note who dropped it, tell the observers, "
                             "record it in the protocol, then acknowledge."),
    "second_ballot": _l("A second ballot went in on one identification. Stop the voter, note the incident in the "
                        "protocol, then acknowledge."),
    "lid_opened": _l("The ballot box lid is open. Pause the polls, close and seal the lid in front of the observers, "
                     "then acknowledge."),
    "jam": _l("The ballot slot is jammed. Pause the polls, clear the slot without opening the lid, then acknowledge."),
    "box_unit_lost": _l("The ballot box unit does not answer. Check its cable, pause the polls if it does not come "
                        "back, then acknowledge."),
    "box_unit_replaced": _l("Another ballot box unit answers, or the unit's memory was erased: the unit was replaced "
                            "or reset. No ballot was added to the count or removed from it. Check the unit and its "
                            "seals with the observers, note it in the protocol, then acknowledge."),
    "scanner_lost": _l("The document scanner is disconnected. Re-plug it or type numbers by hand, then acknowledge."),
    "storage_low": _l("The unit's card is almost full. The unit still records and nothing is lost; call the technician "
                      "to free space today, then acknowledge."),
    "storage_failed": _l("The unit cannot write its journal (card full, read-only or failing): nobody is admitted and "
                         "the slot stays locked. If the card is full, free space and recording resumes by itself; "
                         "otherwise call the technician. Then acknowledge."),
    "unit_conflict": _l("The same voter was admitted by two units of this station while they could not reach each "
                        "other. Both admissions stay on the record and nothing was removed. Compare the two units' "
                        "records with the observers, note the incident in the protocol, then acknowledge."),
    "unit_clock_drift": _l("Another unit's clock differs from this unit's beyond the allowed bound. Records still "
                           "merge in order; check the time on both units, call the technician if it stays wrong, "
                           "then acknowledge."),
}

OUTCOMES: dict[str, Any] = {
    "admitted": _l("Admitted"),
    "already_voted": _l("Already voted"),
    "not_on_list": _l("Not on this list"),
    "invalid_document": _l("Unreadable document"),
    "polls_not_open": _l("Polls not open"),
    "duplicate_read": _l("Same document read twice"),
    "admitted_elsewhere": _l("Admitted at another unit"),
    "home_voting": _l("Registered for home voting"),
    "not_home_voting": _l("Not registered for home voting"),
}

OUTCOME_HINTS: dict[str, Any] = {
    "admitted": _l("The slot is open for one ballot."),
    "already_voted": _l("This voter was already identified. Do not issue a ballot."),
    "not_on_list": _l("Send the voter to the commission desk to check the list."),
    "invalid_document": _l("Scan again, or type the number by hand."),
    "polls_not_open": _l("Identification starts when the chair opens the polls."),
    "duplicate_read": _l("The same scan was read twice; it counted once."),
    "admitted_elsewhere": _l("Another unit of this station already admitted this voter. Do not issue a ballot."),
    "home_voting": _l("This voter asked to vote at home; only the mobile unit admits them. Do not issue a ballot; "
                      "tell the chair."),
    "not_home_voting": _l("This voter votes at the polling station, not at home."),
}

POLL_STATES: dict[str, Any] = {
    "setup": _l("Not yet open"),
    "open": _l("Polls open"),
    "paused": _l("Polls paused"),
    "closed": _l("Polls closed"),
}

UPSTREAM_REFUSALS: dict[str, Any] = {
    "revoked_key": _l("The CEC has revoked this unit's key and takes no new records from it. Every record is "
                      "kept here. Call the technician."),
    "unknown_key": _l("The CEC does not know this unit's key: the unit is not enrolled. Every record is kept "
                      "here. Call the technician."),
    "wrong_station": _l("The CEC has this unit's key enrolled for another station. Every record is kept here. "
                        "Call the technician."),
    "unit_mismatch": _l("The CEC has this unit's key enrolled for another unit of this station. Every record is "
                        "kept here. Call the technician."),
    "conflict": _l("The CEC already holds other records under the same numbers from this station. Every record "
                   "is kept here. Call the technician."),
}
"""What the chair's screen says when the CEC's receiver refuses this unit's records, by rejection code;
any other code gets ``UPSTREAM_REFUSED``."""

UPSTREAM_REFUSED = _l("The CEC refuses this unit's records. Every record is kept here. Call the technician.")

UPDATE_REASONS: dict[str, Any] = {
    "polls_open": _l("the polls were open"),
    "too_large": _l("the file is larger than allowed"),
    "truncated": _l("the file is cut short or is not an update"),
    "bad_signature": _l("it is not signed by the CEC"),
    "wrong_compatible": _l("it is made for other equipment"),
    "unreadable": _l("the file cannot be read"),
}
"""Why an update was refused, by ``UpdateRefusal`` value (``device/core/update.py``)."""

UPDATE_OUTCOMES: dict[str, Any] = {
    "refused": _l("Update %(version)s refused: %(reason)s. Nothing was installed."),
    "installing": _l("Update %(version)s is being installed."),
    "installed": _l("Update %(version)s installed; it starts at the next restart."),
    "failed": _l("Update %(version)s failed; the unit runs the software it ran before."),
    "booted": _l("Update %(version)s is running."),
    "rolled_back": _l("Update %(version)s did not start; the unit went back to the software it ran before."),
}
"""The last update outcome on the details page, by ``UpdateOutcome.what``."""


def update_text(update: Any) -> str:
    """The sentence for the journal's last update outcome, in the screen's language ("" when there is none)."""
    last = update.get("last") if isinstance(update, dict) else None
    if not isinstance(last, dict) or last.get("what") not in UPDATE_OUTCOMES:
        return ""
    reason = UPDATE_REASONS.get(str(last.get("reason", "")), _l("the file cannot be read"))
    return str(UPDATE_OUTCOMES[last["what"]] % {"version": last.get("version") or "?", "reason": reason})


LINK_STATES: dict[str, Any] = {
    "online": _l("Online"),
    "offline": _l("Offline"),
    "sending": _l("Sending to the CEC…"),
    "delivered": _l("Everything delivered"),
    "idle": _l("Nothing to send yet"),
}
"""The wording of the link to the CEC, by ``view.link_state``."""

KEY_STATES: dict[str, Any] = {
    "enrolled": _l("key %(key)s, enrolled by the CEC"),
    "requested": _l("key %(key)s, not enrolled by the CEC yet"),
    "invalid": _l("key %(key)s: certificate not valid, call the technician"),
}
"""The record key's line on the details page, by ``KeyState.enrollment`` (``device/keystate.py``)."""


def key_text(key: Any) -> Markup:
    """The record key's state in the screen's language, its id in ``<code>``: for a key held in a TPM (enrolled
    after its first boot), and for any key whose certificate is wrong; empty otherwise (the details page has
    no room for a line that asks nothing of anyone)."""
    if not isinstance(key, dict) or key.get("enrollment") not in KEY_STATES:
        return Markup("")
    if key.get("store") != "tpm" and key["enrollment"] != "invalid":
        return Markup("")  # a key file is enrolled with the station's package: the line only when it is wrong
    kid = Markup("<code>%s</code>") % str(key.get("id") or "?")
    return Markup.escape(str(KEY_STATES[key["enrollment"]])) % {"key": kid}


SCANNER_STATES: dict[str, Any] = {
    "connected": _l("connected"),
    "disconnected": _l("disconnected"),
    "reading": _l("reading"),
}


UNKNOWN_ALARM_ADVICE = _l("This screen has no words for this alarm yet. Call the technician, then acknowledge.")


def alarm_title(alarm: dict[str, Any]) -> str:
    """The alarm's title in the chosen language (a kind newer than this screen: "Alarm" and its code)."""
    kind = str(alarm.get("kind", ""))
    known = ALARM_TITLES.get(kind)
    return str(known) if known is not None else f"{_l('Alarm')} ({kind})"


def alarm_advice(alarm: dict[str, Any]) -> str:
    """What to do about the alarm, in the chosen language; the appliance's own (English) sentence only
    when the screen is in English and has none of its own for this kind."""
    known = ALARM_ADVICE.get(str(alarm.get("kind", "")))
    if known is not None:
        return str(known)
    return str(alarm.get("advice") or "") if current_language() == "en" else str(UNKNOWN_ALARM_ADVICE)


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    station = current_app.config.get("STATION_LANGUAGE")
    if station in LANGUAGES:
        return str(station)
    return request.accept_languages.best_match(list(LANGUAGES)) or current_app.config["DEFAULT_LANGUAGE"]


def select_timezone() -> str:
    return str(current_app.config["TIMEZONE"])


def as_datetime(at: float | str | None) -> datetime | None:
    """Wall seconds, or an ISO-8601 UTC string (as in upstream records), as an aware datetime."""
    if at is None or at == "":
        return None
    if isinstance(at, str):
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(at, UTC)


def fmt_time(at: float | str | None, with_seconds: bool = False) -> str:
    """A wall time as the station's local time of day, in the chosen locale."""
    moment = as_datetime(at)
    return "—" if moment is None else format_time(moment, "medium" if with_seconds else "short")


def fmt_number(value: float | int | None) -> str:
    return "—" if value is None else format_decimal(value)


def fmt_signed(value: int) -> str:
    text = format_decimal(abs(value))
    return f"+{text}" if value > 0 else (f"−{text}" if value < 0 else text)


def fmt_percent(value: float | None) -> str:
    """A share given in percent points (56.2 -> '56,2 %' in Russian)."""
    return "—" if value is None else format_percent(value / 100, "#,##0.0#%")


def fmt_megabytes(value: float | None) -> str:
    return "—" if value is None else format_decimal(value / 1_000_000, "#,##0")


def current_language() -> str:
    return str(get_locale() or current_app.config["DEFAULT_LANGUAGE"])


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.filters.update(num=fmt_number, pct=fmt_percent, time=fmt_time, signed=fmt_signed,
                                 mb=fmt_megabytes)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, SHORT_NAMES=SHORT_NAMES, current_language=current_language,
                                 OUTCOMES=OUTCOMES, OUTCOME_HINTS=OUTCOME_HINTS, POLL_STATES=POLL_STATES,
                                 SCANNER_STATES=SCANNER_STATES, ALARM_TITLES=ALARM_TITLES, ALARM_ADVICE=ALARM_ADVICE,
                                 UPSTREAM_REFUSALS=UPSTREAM_REFUSALS, UPSTREAM_REFUSED=UPSTREAM_REFUSED,
                                 LINK_STATES=LINK_STATES, alarm_title=alarm_title, alarm_advice=alarm_advice,
                                 update_text=update_text, key_text=key_text)
