"""The receiver's Flask application factory.

``create_app(config)``: defaults (database in the instance folder, silent after
15 minutes), then ``receiver.cfg`` from the instance folder if present, then
``config``. It builds one ``Receiver`` (``service.py``) and registers the API
(``views_api.py``; its batch route ``POST /api/v1/records`` is answered in
front of Flask by ``batch_route.py``) and the overview pages (``views_pages.py``). Served in
production by waitress (``pollbox-receiver serve``), never by Flask's
development server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from protocol.batch import MAX_BYTES
from receiver import batch_route, results, verifier_page, views_api, views_pages
from receiver.current import install
from receiver.service import DEFAULT_SILENT_AFTER_MINUTES, build_receiver


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        DATABASE_URL=str(Path(app.instance_path) / "receiver.db"),
        SILENT_AFTER_MINUTES=DEFAULT_SILENT_AFTER_MINUTES,
        MAX_CONTENT_LENGTH=MAX_BYTES + 64 * 1024,
    )
    app.config.from_pyfile("receiver.cfg", silent=True)
    app.config.update(config or {})
    if not str(app.config["DATABASE_URL"]).startswith(("postgres", "sqlite:")):
        Path(app.config["DATABASE_URL"]).parent.mkdir(parents=True, exist_ok=True)
    install(app, build_receiver(app.config))
    views_api.init_app(app)
    views_pages.init_app(app)
    results.init_app(app)
    verifier_page.init_app(app)
    batch_route.wrap(app)
    return app
