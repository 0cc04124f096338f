"""The instance folder's secret key and the session cookie settings."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from web_ui import secret

from .conftest import build_web


def test_secret_key_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    first = secret.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == secret.KEY_BYTES
    assert secret.load_or_create(path) == first


def test_app_uses_instance_secret(app: Any, tmp_path: Path, clock: Any) -> None:
    web = build_web(app, tmp_path / "inst", clock)
    assert web.config["SECRET_KEY"] == (tmp_path / "inst" / "secret_key").read_bytes()


def test_session_cookie_is_strict(app: Any, tmp_path: Path, clock: Any) -> None:
    client = build_web(app, tmp_path / "inst", clock).test_client()
    client.get("/")
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
