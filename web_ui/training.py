"""The TRAINING banner: on every page of a unit set up from a training package.

A training package (``device/training.py``) makes the unit a practice
station: same screens, same rules, its own journal, records the CEC never
counts. So that nobody mistakes it for a live unit, ``base.html`` shows a
permanent banner in the chosen language on every page that extends it (the
chair's screen, the observer view, the zero and close reports, the PIN and
error pages), and the reports say TRAINING beside their figures and QR code.

Wiring: ``create_app`` calls ``init_app``; the templates read
``training_mode()``, which asks the station's status snapshot once (the kind
of package never changes while the unit runs) and remembers the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

KEY = "pollbox.training"


def station_is_training(status: Mapping[str, Any]) -> bool:
    """Whether a status snapshot is a training station's (``station.training``)."""
    station = status.get("station")
    return isinstance(station, Mapping) and station.get("training") is True


def training_mode() -> bool:
    """Whether this screen belongs to a training unit (read once, then remembered)."""
    known = current_app.extensions.get(KEY)
    if known is None:
        known = station_is_training(current_app.extensions["pollbox.appliance"].status())
        current_app.extensions[KEY] = known
    return bool(known)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["training_mode"] = training_mode
