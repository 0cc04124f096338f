"""The receiver of the running Flask app, for the views: ``create_app`` installs it, the views read it.

Its own module, so that ``app.py`` imports the views and the views import
this, and neither imports the other.
"""

from __future__ import annotations

from flask import Flask, current_app

from receiver.service import Receiver

EXTENSION = "pollbox_receiver"


def install(app: Flask, found: Receiver) -> None:
    app.extensions[EXTENSION] = found


def receiver() -> Receiver:
    """The Receiver of the running app."""
    found: Receiver = current_app.extensions[EXTENSION]
    return found
