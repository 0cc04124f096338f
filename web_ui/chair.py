"""The chair's login session: who may act, and for how long.

After a correct PIN the session records until when the chair is trusted;
every chair request extends it by ``CHAIR_IDLE_SECONDS``. Wall time comes
from ``WALL_CLOCK`` in the app config so tests use a fake clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, redirect, request, session, url_for

from .pin import ChairPin

F = TypeVar("F", bound=Callable[..., Any])


def now() -> float:
    return float(current_app.config["WALL_CLOCK"]())


def pin() -> ChairPin:
    return cast(ChairPin, current_app.extensions["pollbox.pin"])


def is_chair() -> bool:
    until = session.get("chair_until")
    return isinstance(until, (int, float)) and until > now()


def log_in() -> None:
    session["chair_until"] = now() + float(current_app.config["CHAIR_IDLE_SECONDS"])
    session.permanent = True


def log_out() -> None:
    session.pop("chair_until", None)
    session.pop("zero_shown", None)


def chair_required(view: F) -> F:
    """Send anyone who is not the chair to the PIN page; keep the chair's session alive."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_chair():
            log_out()
            return redirect(url_for("actions.login", next=request.path), code=303)
        log_in()
        return view(*args, **kwargs)
    return cast(F, wrapped)
