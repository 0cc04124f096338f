"""Synchronizer-token CSRF protection for every form.

Each session gets a random token (kept in the signed session cookie); every
POST must send it back as the ``csrf_token`` form field (or the
``X-CSRF-Token`` header), compared in constant time. A missing or wrong token
is refused with a page that tells the chair to reload and try again; nothing
is done. Wiring: ``create_app`` calls ``init_app``; templates call
``csrf_token()``.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, render_template, request, session

from protocol.errors import UserError

SESSION_KEY = "csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfRefused(UserError):
    """A state-changing request without the session's token."""


def token() -> str:
    """This session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def _sent() -> str:
    return request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""


def protect() -> None:
    """Before every request: refuse an unsafe method without the right token."""
    if request.method not in UNSAFE:
        return
    expected = session.get(SESSION_KEY)
    sent = _sent()
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CsrfRefused()


def _refused(_: CsrfRefused) -> tuple[str, int]:
    return render_template("error.html", code=400, kind="csrf"), 400


def init_app(app: Flask) -> None:
    app.before_request(protect)
    app.register_error_handler(CsrfRefused, _refused)
    app.jinja_env.globals["csrf_token"] = token
