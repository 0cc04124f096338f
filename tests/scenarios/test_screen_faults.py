"""Fault family: what the chair's screen says when the unit's storage or link fails.

The card fills up under the journal (SQLite refuses to grow, as on a full
disk) and under the chair PIN file; the link to the CEC comes back after the
day went to the receiver on a USB stick. The chair must see one sentence in
the screen's language saying what to do, the PIN lock must hold, and the link
must not be called "Offline" once everything is delivered.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from device.appliance import Appliance
from device.hardware.clock import FakeClock
from tests.scenarios.test_offline import voting_day, wired  # noqa: F401  (fixture)
from tests.web.conftest import CHAIR_PIN, build_web, open_polls, post
from web_ui import pin
from web_ui.pin import set_pin

KY_FULL = "Түзмөктүн сактагычы толуп калды"
KY_LOCKED = "30 секундага бөгөттөлдү"


class FullCard:
    """The journal's card with no room left: SQLite may not add one more page to the database."""

    def __init__(self, app: Appliance) -> None:
        self.conn = app.journal.conn

    def fill(self) -> None:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        self.conn.execute(f"PRAGMA max_page_count = {pages}")

    def free(self) -> None:
        self.conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def screen(app: Appliance, tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Flask, FlaskClient]]:
    set_pin(tmp_path / "web" / "chair_pin.json", CHAIR_PIN)
    web = build_web(app, tmp_path / "web", clock, STATION_LANGUAGE="ky")
    yield web, web.test_client()


def test_card_full_during_a_chair_action(screen: tuple[Flask, FlaskClient], app: Appliance) -> None:
    _, chair = screen
    assert post(chair, "/chair/login", {"pin": CHAIR_PIN}).status_code == 303
    open_polls(chair)
    card = FullCard(app)
    card.fill()
    for _ in range(200):  # fill the last free room of the database's pages with notes
        try:
            app.annotate("test", "x" * 500)
        except Exception:
            break
    response = post(chair, "/chair/pause", {"reason": "lunch"})
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and 'lang="ky"' in page and KY_FULL in page
    assert "storage is full" not in page and "Traceback" not in page
    assert app.status()["poll"] == "open"
    assert chair.get("/").status_code == 200  # the status screen still shows
    card.free()  # space is back: the same action works, no restart
    assert post(chair, "/chair/pause", {"reason": "lunch"}).status_code == 303
    assert app.status()["poll"] == "paused"


def test_card_full_wrong_pins_still_lock(screen: tuple[Flask, FlaskClient], app: Appliance,
                                        monkeypatch: Any) -> None:
    """Thirty wrong PINs on a full card: each is answered in Kyrgyz, the PIN locks, the right PIN waits."""
    _, visitor = screen

    def no_room(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pin, "write_private", no_room)
    FullCard(app).fill()
    for _ in range(200):
        try:
            app.annotate("test", "x" * 500)
        except Exception:
            break
    codes = [post(visitor, "/chair/login", {"pin": "111111"}).status_code for _ in range(30)]
    assert codes[:4] == [403] * 4 and set(codes[4:]) == {429}
    response = post(visitor, "/chair/login", {"pin": CHAIR_PIN})
    assert response.status_code == 429 and KY_LOCKED in response.get_data(as_text=True)
    assert visitor.get("/chair").status_code == 303


def test_link_back_after_a_usb_delivery_is_not_offline(wired: tuple[Appliance, Any, FakeClock],  # noqa: F811
                                                       tmp_path: Path) -> None:
    app, receiver, clock = wired
    app.sim.cut_link()
    voting_day(app, clock, 3)
    app.upstream.drain_once(force=True)
    exported = app.upstream.export(tmp_path / "usb")
    assert all(o.rejection is None for o in receiver.import_export(exported.read_bytes(), "usb"))
    app.sim.restore_link()
    app.upstream.drain_once(force=True)  # the receipt says the CEC holds everything; nothing left to send
    app.tick()
    assert app.status()["upstream"]["waiting"] == 0
    set_pin(tmp_path / "web" / "chair_pin.json", CHAIR_PIN)
    page = build_web(app, tmp_path / "web", clock).test_client().get("/").get_data(as_text=True)
    assert 'data-link="delivered"' in page and "Everything delivered" in page and "Offline" not in page
