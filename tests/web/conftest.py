"""Fixtures for the chair's screen: a Flask app on a started demo appliance with a fake clock.

The appliance fixtures (``app``, ``make_app``, ``clock``, ``pins``) come from
``tests/conftest.py``; here ``web`` is the Flask app, ``client`` a browser
session and ``chair`` a session already logged in with the chair PIN.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from web_ui import create_app
from web_ui.pin import set_pin

CHAIR_PIN = "123456"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def build_web(appliance: Any, instance: Path, clock: Any, **extra: Any) -> Flask:
    config = {"TESTING": True, "WALL_CLOCK": clock.wall, "SSE_MAX_SECONDS": 0, "SSE_POLL_SECONDS": 0.0}
    config.update(extra)
    return create_app(appliance, config, instance_path=instance)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "web"
    set_pin(path / "chair_pin.json", CHAIR_PIN)
    return path


@pytest.fixture
def web(app: Any, instance: Path, clock: Any) -> Flask:
    return build_web(app, instance, clock)


@pytest.fixture
def client(web: Flask) -> FlaskClient:
    return web.test_client()


def token(client: FlaskClient, page: str = "/") -> str:
    """The CSRF token this session's forms carry."""
    match = TOKEN.search(client.get(page).get_data(as_text=True))
    assert match, f"no form token on {page}"
    return match.group(1)


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """POST a form with the session's CSRF token."""
    return client.post(url, data={"csrf_token": token(client), **(data or {})}, **kw)


@pytest.fixture
def chair(client: FlaskClient) -> FlaskClient:
    response = post(client, "/chair/login", {"pin": CHAIR_PIN})
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def open_polls(chair: FlaskClient) -> None:
    assert chair.get("/report/zero").status_code == 200
    response = post(chair, "/chair/open")
    assert response.status_code == 303, response.get_data(as_text=True)
