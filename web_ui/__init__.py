"""The chair's screen: a Flask application built by ``create_app``.

Wiring: the appliance process builds the ``Appliance`` (``device.appliance``)
and passes it here; the app uses only its public methods and never touches
hardware. Configuration follows the Flask tutorial: defaults below, then
``web.py`` in the instance folder (outside git: the secret key and the chair
PIN file live there too), then the test overrides. One blueprint per module:
``status``, ``actions``, ``observer``, ``report``, ``devpanel`` (simulation
only), ``api`` and ``kiosk`` (the kiosk's frame heartbeat); the ``Host``
check, Babel, CSRF and the fault handler plug in with ``init_app``. ``WEB_HOST`` is the station's ``web.host``: with
127.0.0.1, localhost and ::1 it is a name the screen answers under
(``hosts.py``). ``web_ui.serve.serve`` runs the app under waitress.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from device.core.delays import DEFAULT_DELAYS

from . import actions, api, csrf, devpanel, faults, hosts, i18n, observer, refusals, report, secret, status, training
from .kiosk import bp as kiosk_bp
from .pin import ChairPin
from .sessions import ChairSessions
from .station import Station

DEFAULTS: dict[str, Any] = {
    "WEB_HOST": "127.0.0.1",
    "DEFAULT_LANGUAGE": "en",
    "STATION_LANGUAGE": None,
    "TIMEZONE": "Asia/Bishkek",
    "CHAIR_IDLE_SECONDS": 600,
    "PIN_LOCKOUT_BASE": None,  # None: Delays.pin_lockout_base
    "SSE_POLL_SECONDS": 0.5,
    "SSE_KEEPALIVE_SECONDS": 10.0,
    "SSE_MAX_SECONDS": 55.0,
    "POLL_FALLBACK_MS": 2000,
    "OBSERVER_RETURN_SECONDS": 120,
    "DEMO_NUMBERS": [],
    "WALL_CLOCK": time.time,
    "SESSION_COOKIE_SAMESITE": "Strict",
    "SESSION_COOKIE_HTTPONLY": True,
    "PERMANENT_SESSION_LIFETIME": timedelta(days=2),
    "MAX_CONTENT_LENGTH": 64 * 1024,
}


def create_app(appliance: Station, test_config: dict[str, Any] | None = None, *,
               instance_path: Path | None = None) -> Flask:
    """The chair's screen for ``appliance``; ``instance_path`` holds the secret key and chair PIN."""
    app = Flask(__name__, instance_relative_config=True,
                instance_path=str(instance_path.resolve()) if instance_path else None)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("web.py", silent=True)
    if test_config:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True, mode=0o700)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret.load_or_create(Path(app.instance_path) / "secret_key")
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.extensions["pollbox.appliance"] = appliance
    app.extensions["pollbox.pin"] = _chair_pin(app, appliance)
    app.extensions["pollbox.sessions"] = ChairSessions(
        Path(app.instance_path) / "chair_sessions.json",
        max_age=app.permanent_session_lifetime.total_seconds())
    i18n.init_app(app)
    csrf.init_app(app)
    hosts.init_app(app)
    faults.init_app(app)
    refusals.init_app(app)
    training.init_app(app)
    for blueprint in (status.bp, actions.bp, observer.bp, report.bp, api.bp, kiosk_bp):
        app.register_blueprint(blueprint)
    if devpanel.allowed(appliance):
        app.register_blueprint(devpanel.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.jinja_env.globals["stale_ms"] = lambda: int(1000 * 3 * float(app.config["SSE_KEEPALIVE_SECONDS"]) + 5000)
    return app


def _chair_pin(app: Flask, appliance: Station) -> ChairPin:
    """The PIN checker; the lockout base is the appliance's ``Delays.pin_lockout_base`` unless overridden."""
    path = Path(app.config.get("CHAIR_PIN_FILE") or Path(app.instance_path) / "chair_pin.json")
    base = app.config["PIN_LOCKOUT_BASE"]
    if base is None:
        base = getattr(getattr(appliance, "delays", None), "pin_lockout_base", None) or DEFAULT_DELAYS.pin_lockout_base
    return ChairPin(path, lockout_base=float(base))


OWN_WORDS = {405: "method", 413: "too_large"}


def _http_error(exc: HTTPException) -> tuple[str, int]:
    """Every HTTP error as a page in the chosen language, never a traceback. A description this
    app gave (translated where it was raised) is shown; werkzeug's English defaults are not."""
    code = exc.code or 500
    kind = "not_found" if code == 404 else OWN_WORDS.get(code, "other")
    ours = exc.description if exc.description != type(exc).description else ""
    return render_template("error.html", kind=kind, code=code, message=ours or _http_sentence(code)), code


def _http_sentence(code: int) -> str:
    if code >= 500:
        return faults.sentence(faults.Fault.UNEXPECTED)
    return str(_("Go back to the status screen and try again."))
