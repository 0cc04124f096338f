"""The ``Host`` header check: the screen answers only under its own names.

A web page from anywhere can make a browser on the unit talk to 127.0.0.1 by
pointing its own domain name there (DNS rebinding); the browser then sends the
attacker's name in ``Host``. So every request must name one of the hosts in
``allowed_hosts``: 127.0.0.1, localhost, ::1 and the configured ``WEB_HOST``
(the station's ``web.host``), with any port. Anything else gets HTTP 400 and a
page saying which address to open. Wiring: ``create_app`` calls ``init_app``;
``serve.make_server`` calls ``allow`` with the address it binds, so the name
the screen listens under is always one it answers under.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request

from protocol.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class WrongHost(UserError):
    """A request named a host this screen does not answer under."""


def hostname(host: str) -> str:
    """The name part of a ``Host`` header value: no port, no IPv6 brackets, lower case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host
    return name.rstrip(".")


def allowed_hosts(config_host: str | None) -> frozenset[str]:
    """The names the screen answers under: the loopback names and the configured host (not a wildcard)."""
    extra = {hostname(config_host)} if config_host else set()
    return frozenset(LOOPBACK) | (extra - WILDCARDS)


def allow(app: Flask, host: str) -> None:
    """Answer under ``host`` too (the address the server listens on; a wildcard adds nothing)."""
    app.config["ALLOWED_HOSTS"] = frozenset(app.config["ALLOWED_HOSTS"]) | allowed_hosts(host)


def check() -> None:
    """Before every request: refuse a ``Host`` that is not one of ours."""
    if hostname(request.host) not in current_app.config["ALLOWED_HOSTS"]:
        raise WrongHost()


def _refused(_: WrongHost) -> tuple[str, int]:
    addresses = sorted(current_app.config["ALLOWED_HOSTS"])
    return render_template("error.html", code=400, kind="host", addresses=addresses), 400


def init_app(app: Flask) -> None:
    app.config["ALLOWED_HOSTS"] = allowed_hosts(app.config.get("WEB_HOST"))
    app.before_request_funcs.setdefault(None, []).insert(0, check)
    app.register_error_handler(WrongHost, _refused)
