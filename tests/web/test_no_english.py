"""Every screen, in every state the chair meets, reads in Kyrgyz and Russian: no English word on it.

The pages are rendered through the app (the same HTML the kiosk shows) in each state of a polling
day: no PIN yet, the login, before opening, open with each decision at the desk and each alarm,
a refused action, the link failing with a raw English error, paused, closed. The visible text and the
labels a screen reader speaks are searched for Latin words; only the allow-list passes (the station's
own name and codes from its package, language names, QR, USB); hex digests in ``<code>`` are not words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from device.hardware.interfaces import ScanRead
from web_ui.pin import set_pin

from .conftest import CHAIR_PIN, build_web, post

ALLOWED = {"QR", "USB", "Eng", "English"}
LATIN = re.compile(r"[A-Za-z][A-Za-z'’]+")
SPOKEN = re.compile(r'\b(?:aria-label|title|placeholder|alt|data-back|data-space|data-next|data-pick)="([^"]*)"')


def visible_words(html: str) -> set[str]:
    spoken = " ".join(SPOKEN.findall(html))
    body = re.sub(r"<(script|style|code)\b.*?</\1>", " ", html, flags=re.S)  # code: hex digests, not words
    body = re.sub(r"<head>.*?</head>", " ", body, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return set(LATIN.findall(body + " " + spoken))


def station_words(app: Any) -> set[str]:
    status = app.status()
    own = " ".join(str(v) for v in status["station"].values())
    return set(LATIN.findall(own))


def pages(client: FlaskClient, app: Any) -> dict[str, str]:
    """Every screen as it is now, by URL."""
    out = {}
    urls = ["/", "/observer", "/observer?kiosk=1", "/alarms", "/alarms?view=observer", "/details", "/chair",
            "/chair/manual", "/chair/undo", "/chair/pause", "/chair/alarms", "/chair/close", "/report/zero",
            "/report/close", "/no-such-page"]
    urls += [f"/chair/alarms/{a['id']}" for a in app.status()["alarms"]]
    for url in urls:
        out[url] = client.get(url, follow_redirects=True).get_data(as_text=True)
    out["/api/status?view=status"] = client.get("/api/status?view=status").get_json()["html"]
    return out


class Screens:
    def __init__(self, app: Any, client: FlaskClient, lang: str) -> None:
        self.app, self.client, self.lang = app, client, lang
        self.allowed = ALLOWED | station_words(app)
        self.seen = 0

    def check(self, state: str, extra: dict[str, str] | None = None) -> None:
        found = {**pages(self.client, self.app), **(extra or {})}
        for url, html in found.items():
            english = visible_words(html) - self.allowed
            assert english == set(), f"{self.lang}, {state}, {url}: {sorted(english)}"
        self.seen += len(found)


@pytest.mark.parametrize("lang", ["ky", "ru"])
def test_no_english_on_any_screen(lang: str, app: Any, tmp_path: Path, clock: Any, pins: list[str]) -> None:
    web_dir = tmp_path / "web-fresh"
    client = build_web(app, web_dir, clock).test_client()
    post(client, f"/lang/{lang}")
    screens = Screens(app, client, lang)
    first = {"setup": client.get("/chair/setup").get_data(as_text=True),
             "setup refused": post(client, "/chair/setup", {"pin": "123456", "again": "123456"}).get_data(as_text=True)}
    screens.check("no PIN yet", first)

    set_pin(web_dir / "chair_pin.json", CHAIR_PIN)
    login = {"login": client.get("/chair/login").get_data(as_text=True),
             "wrong PIN": post(client, "/chair/login", {"pin": "000000"}).get_data(as_text=True)}
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).status_code == 303
    screens.check("before opening", login)

    client.get("/report/zero")
    assert post(client, "/chair/open").status_code == 303
    app.identify(ScanRead(pins[0], "qr", "t"))
    screens.check("admitted")
    clock.advance(app.delays.duplicate_read_window + 1)
    refused = {"manual already voted": post(client, "/chair/manual", {"number": pins[0]}).get_data(as_text=True),
               "manual unreadable": post(client, "/chair/manual", {"number": "12"}).get_data(as_text=True),
               "undo refused": post(client, "/chair/undo", {"line": "999999", "reason": "x"}).get_data(as_text=True),
               "undo without a line": post(client, "/chair/undo", {"line": "", "reason": ""}).get_data(as_text=True)}
    screens.check("already voted", refused)

    app.sim.box.open_lid()
    app.sim.box.drop()
    app.sim.scanner.unplug()
    lid = next(a["id"] for a in app.status()["alarms"] if a["kind"] == "lid_opened")
    still = {"acknowledge refused": post(client, f"/chair/alarms/{lid}/acknowledge").get_data(as_text=True)}
    screens.check("alarms, the lid still open", still)

    assert app.upstream is not None
    app.upstream.status = lambda: {"online": False, "waiting": 3, "failures": 2, "refused": None,
                                   "last_error": "no answer from the receiver: [Errno 111] Connection refused",
                                   "last_receipt_at": None, "delivered_through": 0, "last_seq": 3}
    app.tick()
    screens.check("link down with an English error")

    assert post(client, "/chair/pause", {"reason": "обед"}).status_code == 303
    screens.check("paused")
    assert post(client, "/chair/close", {"confirm": "yes"}).status_code == 303
    screens.check("closed")
    assert screens.seen > 100
