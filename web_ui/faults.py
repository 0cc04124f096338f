"""Faults at the view boundary: one translated sentence saying what to do, never a traceback.

Anything a view lets escape (a full disk under the journal, a file system gone
read-only, a bug) reaches ``handle``: the traceback goes to the debug log
(``pollbox.web``), and the chair sees one sentence in the page's language. A
storage fault is recognised anywhere in the exception's chain (``raise ...
from``): a storage error by its ``code`` (``device.store.errors``), an
``OSError`` by its errno, an SQLite error by its error code. A full disk needs
space freed, not a restore; an unwritable or damaged one needs the technician;
anything else may be tried again.

Wiring: ``create_app`` calls ``init_app``; chair actions call ``explain`` to
show the sentence on their own panel.
"""

from __future__ import annotations

import enum
import errno
import logging
import sqlite3
from collections.abc import Iterator

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

log = logging.getLogger("pollbox.web")

CHAIN_DEPTH = 8


class Fault(enum.StrEnum):
    STORAGE_FULL = "storage_full"
    STORAGE_UNWRITABLE = "storage_read_only"
    STORAGE_DAMAGED = "storage_damaged"
    JOURNAL_INCOMPLETE = "journal_incomplete"
    UNEXPECTED = "unexpected"


BY_CODE: dict[str, Fault] = {
    "storage_full": Fault.STORAGE_FULL,
    "storage_read_only": Fault.STORAGE_UNWRITABLE,
    "storage_damaged": Fault.STORAGE_DAMAGED,
    "storage_failed": Fault.STORAGE_DAMAGED,
    "journal_incomplete": Fault.JOURNAL_INCOMPLETE,
    "journal_missing": Fault.JOURNAL_INCOMPLETE,
}
"""The storage errors' ``code`` (``device.store.errors``) to the sentence the chair gets."""

BY_ERRNO: dict[int, Fault] = {
    errno.ENOSPC: Fault.STORAGE_FULL, errno.EDQUOT: Fault.STORAGE_FULL, errno.EFBIG: Fault.STORAGE_FULL,
    errno.EROFS: Fault.STORAGE_UNWRITABLE, errno.EACCES: Fault.STORAGE_UNWRITABLE,
    errno.EPERM: Fault.STORAGE_UNWRITABLE, errno.EIO: Fault.STORAGE_DAMAGED,
}

BY_SQLITE: dict[int, Fault] = {
    13: Fault.STORAGE_FULL,                                   # SQLITE_FULL
    8: Fault.STORAGE_UNWRITABLE, 3: Fault.STORAGE_UNWRITABLE,  # SQLITE_READONLY, SQLITE_PERM
    14: Fault.STORAGE_UNWRITABLE,                             # SQLITE_CANTOPEN
    10: Fault.STORAGE_DAMAGED, 11: Fault.STORAGE_DAMAGED, 26: Fault.STORAGE_DAMAGED,  # IOERR, CORRUPT, NOTADB
}

STATUS_CODES = {Fault.UNEXPECTED: 500}  # every storage fault: 503, the unit cannot serve this now


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < CHAIN_DEPTH:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one(exc: BaseException) -> Fault | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in BY_CODE:
        return BY_CODE[code]
    if isinstance(exc, OSError) and exc.errno in BY_ERRNO:
        return BY_ERRNO[exc.errno]
    if isinstance(exc, sqlite3.Error):
        number = getattr(exc, "sqlite_errorcode", None)
        return BY_SQLITE.get(number & 0xFF) if isinstance(number, int) else None
    return None


def classify(exc: BaseException) -> Fault:
    """What kind of fault ``exc`` is, looking through what caused it."""
    for link in _chain(exc):
        found = _one(link)
        if found is not None:
            return found
    return Fault.UNEXPECTED


def sentence(fault: Fault) -> str:
    """What the chair should do about ``fault``, in the current language."""
    if fault is Fault.STORAGE_FULL:
        return str(_("The unit's storage is full, so this was not recorded. Call the technician to free space; "
                     "nothing is lost, and recording resumes by itself."))
    if fault is Fault.STORAGE_UNWRITABLE:
        return str(_("The unit cannot write to its storage, so this was not recorded. Lock the ballot box and "
                     "call the technician."))
    if fault is Fault.STORAGE_DAMAGED:
        return str(_("The unit's storage reports damage, so this was not recorded. Keep the unit as it is, lock "
                     "the ballot box and call the technician."))
    if fault is Fault.JOURNAL_INCOMPLETE:
        return str(_("The journal holds fewer events than were already recorded. Do not use the unit for "
                     "voting: call the technician to restore it from the backup stick."))
    return str(_("Something went wrong on the unit, so this was not done. Try again; if it happens again, "
                 "call the technician."))


def explain(exc: BaseException, *, logged: bool = True) -> tuple[int, str]:
    """The HTTP status and the sentence to show for ``exc``; unless ``logged`` is False, its traceback
    goes to the debug log."""
    fault = classify(exc)
    if logged:
        log.error("%s on %s %s: %s", fault.value, request.method, request.path, exc, exc_info=exc)
    return STATUS_CODES.get(fault, 503), sentence(fault)


def handle(exc: Exception) -> Response | tuple[str, int] | HTTPException:
    """The last word on any exception a view let escape."""
    if isinstance(exc, HTTPException):
        return exc
    code, text = explain(exc)
    if request.path.startswith("/api/"):
        response = jsonify({"error": text})
        response.status_code = code
        return response
    return render_template("error.html", kind="fault", code=code, message=text), code


def storage_sentence(code: str) -> str:
    """The banner for a standing storage fault (the status snapshot's ``storage.code``), in the page's language."""
    return sentence(BY_CODE.get(code, Fault.STORAGE_DAMAGED))


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle)
    app.jinja_env.globals["storage_sentence"] = storage_sentence
