"""The chair's login session: who may act, and for how long.

After a correct PIN the session cookie records a server-known nonce
(``sessions.py``) and until when the chair is trusted; every chair request
extends that by ``CHAIR_IDLE_SECONDS``. Logging out forgets the nonce on the
server, so a copy of the cookie taken before is refused. Wall time comes from
``WALL_CLOCK`` in the app config so tests use a fake clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, redirect, request, session, url_for

from .pin import ChairPin
from .sessions import ChairSessions

F = TypeVar("F", bound=Callable[..., Any])

NONCE = "chair_nonce"


def now() -> float:
    return float(current_app.config["WALL_CLOCK"]())


def pin() -> ChairPin:
    return cast(ChairPin, current_app.extensions["pollbox.pin"])


def sessions() -> ChairSessions:
    return cast(ChairSessions, current_app.extensions["pollbox.sessions"])


def is_chair() -> bool:
    until = session.get("chair_until")
    if not (isinstance(until, (int, float)) and until > now()):
        return False
    return sessions().is_live(session.get(NONCE), now())


def log_in() -> None:
    """Start a new chair session (a fresh nonce: a cookie from before the login stays a visitor's)."""
    sessions().end(session.get(NONCE))
    session[NONCE] = sessions().begin(now())
    _extend()


def _extend() -> None:
    session["chair_until"] = now() + float(current_app.config["CHAIR_IDLE_SECONDS"])
    session.permanent = True


def log_out() -> None:
    sessions().end(session.pop(NONCE, None))
    session.pop("chair_until", None)
    session.pop("zero_shown", None)


def chair_required(view: F) -> F:
    """Send anyone who is not the chair to the PIN page; keep the chair's session alive."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_chair():
            log_out()
            return redirect(url_for("actions.login", next=request.path), code=303)
        _extend()
        return view(*args, **kwargs)
    wrapped.chair_only = True  # type: ignore[attr-defined]
    return cast(F, wrapped)
