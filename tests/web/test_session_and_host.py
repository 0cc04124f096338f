"""A logged-out cookie is dead, and the screen answers only under its own host names (DNS rebinding)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from web_ui import hosts, sessions
from web_ui.serve import make_server
from web_ui.sessions import ChairSessions

from .conftest import CHAIR_PIN, build_web, post


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(web: Flask, cookie: str) -> FlaskClient:
    """Another browser that presents a copy of ``cookie``."""
    thief = web.test_client()
    thief.set_cookie("session", cookie)
    return thief


def test_a_cookie_copied_before_logout_is_dead_after_it(web: Flask, chair: FlaskClient) -> None:
    copied = session_cookie(chair)
    assert replay(web, copied).get("/chair").status_code == 200  # a live session's cookie works
    assert post(chair, "/chair/logout").status_code == 303
    assert replay(web, copied).get("/chair").status_code == 303
    assert chair.get("/chair").status_code == 303


def test_logout_is_remembered_across_a_restart(app: Any, instance: Path, clock: Any, chair: FlaskClient) -> None:
    copied = session_cookie(chair)
    post(chair, "/chair/logout")
    restarted = build_web(app, instance, clock)
    assert replay(restarted, copied).get("/chair").status_code == 303


def test_logging_in_again_gives_a_new_session(web: Flask, chair: FlaskClient) -> None:
    first = session_cookie(chair)
    post(chair, "/chair/login", {"pin": CHAIR_PIN})
    assert replay(web, first).get("/chair").status_code == 303
    assert chair.get("/chair").status_code == 200


def test_sessions_file_holds_no_nonce(tmp_path: Path) -> None:
    path = tmp_path / "chair_sessions.json"
    nonce = ChairSessions(path, max_age=100).begin(10.0)
    assert nonce not in path.read_text()
    assert ChairSessions(path, max_age=100).is_live(nonce, 20.0)
    assert not ChairSessions(path, max_age=100).is_live(nonce, 110.0)


def test_logout_holds_in_memory_when_the_file_cannot_be_written(tmp_path: Path, monkeypatch: Any) -> None:
    live = ChairSessions(tmp_path / "chair_sessions.json", max_age=100)
    nonce = live.begin(0.0)

    def disk_full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(sessions, "write_private", disk_full)
    live.end(nonce)
    assert not live.is_live(nonce, 1.0)
    assert live.is_live(live.begin(1.0), 2.0)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "0.0.0.0:8080"])
def test_a_foreign_host_name_is_refused(client: FlaskClient, app: Any, host: str) -> None:
    before = app.journal.last_seq
    for method, url in (("GET", "/"), ("GET", "/api/status"), ("POST", "/chair/login")):
        response = client.open(url, method=method, headers={"Host": host}, data={"pin": CHAIR_PIN})
        page = response.get_data(as_text=True)
        assert response.status_code == 400, (method, url)
        assert "This screen answers only at its own address" in page and "127.0.0.1" in page
    assert app.journal.last_seq == before


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "LOCALHOST:80", "[::1]:8080", "127.0.0.1"])
def test_the_loopback_names_are_answered(client: FlaskClient, host: str) -> None:
    assert client.get("/", headers={"Host": host}).status_code == 200


def test_the_configured_host_is_answered(app: Any, tmp_path: Path, clock: Any) -> None:
    client = build_web(app, tmp_path / "web", clock, WEB_HOST="pollbox-17.local").test_client()
    assert client.get("/", headers={"Host": "pollbox-17.local:8080"}).status_code == 200
    assert client.get("/", headers={"Host": "other.local:8080"}).status_code == 400


def test_the_host_refusal_is_in_the_page_language(web: Flask, client: FlaskClient) -> None:
    page = client.get("/", headers={"Host": "evil.example", "Accept-Language": "ru"}).get_data(as_text=True)
    assert 'lang="ru"' in page and "Этот экран отвечает только по своему адресу" in page
    web.config["STATION_LANGUAGE"] = "ky"
    page = client.get("/", headers={"Host": "evil.example"}).get_data(as_text=True)
    assert 'lang="ky"' in page and "Бул экран өз дарегинде гана жооп берет" in page


def test_the_address_the_server_binds_is_answered(web: Flask) -> None:
    client = web.test_client()
    assert client.get("/", headers={"Host": "10.20.30.40:8080"}).status_code == 400
    hosts.allow(web, "10.20.30.40")
    assert client.get("/", headers={"Host": "10.20.30.40:8080"}).status_code == 200
    make_server(web, "127.0.0.1", 0).close()
    assert web.config["ALLOWED_HOSTS"] == frozenset(hosts.LOOPBACK) | {"10.20.30.40"}


def test_wildcards_never_become_host_names() -> None:
    assert hosts.allowed_hosts("0.0.0.0") == hosts.allowed_hosts("::") == frozenset(hosts.LOOPBACK)
    assert hosts.hostname("[::1]:8080") == "::1" and hosts.hostname("Example.ORG.:80") == "example.org"
