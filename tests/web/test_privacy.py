"""No personal data without the PIN: every route of the screen, walked as a visitor, names nobody.

The station admits a voter, refuses the same voter (already voted), refuses a
number that is not on the list and one that is malformed, and admits a voter
whose number the chair typed. After each, every route in the app's URL map is
requested as a visitor without the PIN (each GET also with every ``?view=``),
and the observer routes also from the chair's own session. No answer, body or
headers, may carry a voter's name, personal number or list line. The routes
come from ``url_map``, so a route added later is walked too; a route with an
argument this test has no sample for fails the test until one is added.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient

from device.demo import demo_voter
from device.hardware.interfaces import ScanRead
from web_ui import i18n, view

from .conftest import open_polls, post, token

SCANNED, TYPED, STRANGER = 1936, 1860, 2500  # demo voter indexes: list lines 1937 and 1861; 2500 is not listed
OBSERVER_URLS = ("/observer", "/api/status?view=observer", "/events?view=observer")
FORM = {"pin": "000000", "next": "/observer", "text": "", "note": "", "reason": "", "line": "", "number": ""}


def samples(web: Flask) -> dict[str, list[Any]]:
    """A value for every URL argument the app's routes take."""
    static = Path(web.static_folder or "")
    return {"code": list(i18n.LANGUAGES), "alarm_id": [1], "action": ["no-such-action"],
            "filename": sorted(p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file())}


def requests(web: Flask) -> Iterator[tuple[str, str, bool]]:
    """(method, url, chair only) for every route, every argument sample and every ``?view=``."""
    values = samples(web)
    queries = ("",) + tuple(f"?view={v}" for v in view.VIEWS)
    with web.test_request_context():
        for rule in web.url_map.iter_rules():
            missing = set(rule.arguments) - set(values)
            assert not missing, f"no sample for {missing} of {rule.rule}: add one so the route is walked"
            chair_only = bool(getattr(web.view_functions[rule.endpoint], "chair_only", False))
            names = sorted(rule.arguments)
            for combo in itertools.product(*(values[n] for n in names)):
                url = url_for(rule.endpoint, **dict(zip(names, combo, strict=True)))
                for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                    for query in queries if method == "GET" else ("",):
                        yield method, url + query, chair_only


class Personal:
    """What would identify the voters of this test."""

    def __init__(self, app: Any) -> None:
        by_line = {e.line: e.name for e in app.package.voters.values()}
        people = [demo_voter(i) for i in (SCANNED, TYPED, STRANGER)]
        self.numbers = [number for number, _ in people]
        self.names = [by_line[SCANNED + 1], by_line[TYPED + 1], people[2][1]]
        self.lines = re.compile(rf"\b({SCANNED + 1}|{TYPED + 1})\b")

    def found_in(self, text: str, *, lines: bool = True) -> list[str]:
        found = [s for s in self.numbers + self.names if s in text]
        return found + (self.lines.findall(text) if lines else [])


def answer(client: FlaskClient, method: str, url: str) -> str:
    data = {"csrf_token": token(client), **FORM} if method == "POST" else None
    with client.open(url, method=method, data=data) as response:
        body = response.get_data().decode("utf-8", "replace")
        return f"{response.status_code}\n{response.headers}\n{body}"


def walk(web: Flask, personal: Personal, chair: FlaskClient) -> int:
    """Request every route as a visitor, and the observer routes as the chair; the number of answers."""
    visitor = web.test_client()
    seen = 0
    for method, url, chair_only in requests(web):
        text = answer(visitor, method, url)
        if chair_only:
            assert text.startswith("303") and "/chair/login" in text, f"{method} {url} is not behind the PIN"
        static = url.startswith("/static/")
        assert personal.found_in(text, lines=not static) == [], f"{method} {url} shows personal data"
        seen += 1
    for url in OBSERVER_URLS:
        assert personal.found_in(answer(chair, "GET", url)) == [], f"{url} shows personal data to the chair"
    return seen


@pytest.fixture
def day(web: Flask, chair: FlaskClient, app: Any) -> Iterator[tuple[Personal, Any]]:
    open_polls(chair)
    yield Personal(app), app


def test_no_route_without_the_pin_shows_who_voted(web: Flask, chair: FlaskClient, day: tuple[Personal, Any],
                                                  clock: Any) -> None:
    personal, app = day
    scanned, typed, stranger = personal.numbers
    walked = []

    assert app.identify(ScanRead(scanned, "qr", "t")).outcome == "admitted"
    assert personal.names[0] in chair.get("/").get_data(as_text=True)  # the chair does see who is at the desk
    walked.append(walk(web, personal, chair))

    clock.advance(app.delays.duplicate_read_window + 1)
    assert app.identify(ScanRead(scanned, "qr", "t")).outcome == "already_voted"
    walked.append(walk(web, personal, chair))

    assert app.identify(ScanRead(stranger, "qr", "t")).outcome == "not_on_list"
    walked.append(walk(web, personal, chair))

    assert post(chair, "/chair/manual", {"number": typed + "9"}).status_code == 200  # one digit too many
    assert app.status()["last_decision"]["outcome"] == "invalid_document"
    walked.append(walk(web, personal, chair))

    assert post(chair, "/chair/manual", {"number": typed}).status_code == 200
    decision = app.status()["last_decision"]
    assert (decision["outcome"], decision["method"], decision["line"]) == ("admitted", "manual", TYPED + 1)
    assert personal.names[1] in chair.get("/").get_data(as_text=True)
    walked.append(walk(web, personal, chair))

    assert min(walked) > 30  # every page, API and stream, with its query variants


def test_the_walk_covers_every_route(web: Flask) -> None:
    walked = {(m, u.split("?")[0]) for m, u, _ in requests(web)}
    endpoints = {rule.endpoint for rule in web.url_map.iter_rules()}
    assert {"status.index", "observer.index", "api.status", "api.events", "report.zero_report",
            "report.close_report", "actions.login", "status.choose_language", "static"} <= endpoints
    assert {("GET", "/api/status"), ("GET", "/events"), ("POST", "/chair/login"), ("GET", "/chair")} <= walked
    assert ("GET", "/api/status?view=observer") in {(m, u) for m, u, _ in requests(web)}


def test_only_the_chairs_own_status_screen_names_the_voter(chair: FlaskClient, day: tuple[Personal, Any]) -> None:
    personal, app = day
    app.identify(ScanRead(personal.numbers[0], "qr", "t"))
    body = chair.get("/api/status?view=status").get_json()
    assert personal.found_in(str(body["status"])) == []
    assert personal.names[0] in body["html"]  # the chair's own screen, rendered for the chair's session
    assert personal.names[0] in chair.get("/events?view=status").get_data(as_text=True)
    post(chair, "/chair/logout")
    assert personal.found_in(chair.get("/events?view=status").get_data(as_text=True)) == []
