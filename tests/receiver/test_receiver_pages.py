"""The station overview and drill-down: states, silence by the fake clock, filters, pagination, escaping."""

from __future__ import annotations

import re
from html import unescape as html_unescape

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post

from device.hardware.clock import FakeClock

NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
OPENED = ("polls_opened", {"identified": 0, "ballots": 0})


def page(client: FlaskClient, url: str) -> str:
    reply = client.get(url)
    assert reply.status_code == 200, reply.data[:300]
    return reply.get_data(as_text=True)


def test_overview_counts_reported_silent_and_not_reported(
        app: Flask, client: FlaskClient, setup: Setup, clock: FakeClock) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record(*OPENED)])
    html = page(client, "/")
    assert "<b>2</b> stations" in html and "<b>1</b> reported" in html and "<b>1</b> not reported" in html
    assert "<b>0</b> silent" in html
    clock.advance(16 * 60)
    html = page(client, "/?status=silent")
    assert "<b>1</b> silent" in html and "1 stations match" in html and "since 16 min ago" in html
    assert "KG-0002" not in html.split("<tbody>")[1]
    assert "KG-0002" in page(client, "/?status=not_reported").split("<tbody>")[1]


def test_closed_station_is_not_silent_and_shows_its_close_report(
        app: Flask, client: FlaskClient, setup: Setup, clock: FakeClock) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record(*OPENED), unit.record("polls_closed", {
        "identified": 812, "ballots": 811, "difference": -1, "alarms_total": 1, "alarms_open": 0})])
    clock.advance(3 * 3600)
    html = page(client, "/?status=closed")
    assert "812 / 811 (diff -1)" in html and "<b>0</b> silent" in html
    detail = page(client, "/stations/KG-0001")
    assert "Close report" in detail and "difference" in detail and "-1" in detail


def test_open_alarms_are_listed_and_filtered(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0002"]
    post(client, [unit.record(*OPENED),
                  unit.record("alarm_raised", {"alarm": 1, "alarm_kind": "drop_without_token", "detail": "beam"})])
    html = page(client, "/?status=alarms")
    assert "1 stations match" in html and "KG-0002" in html
    detail = page(client, "/stations/KG-0002")
    assert "drop_without_token" in detail and ">open<" in detail


def test_station_names_and_bodies_are_escaped(app: Flask, client: FlaskClient, setup: Setup) -> None:
    evil = Unit("<script>alert(1)</script>&")
    setup.enroll(evil)
    post(client, [evil.record("annotation", {"topic": "<img src=x onerror=alert(2)>", "text": "x"})])
    html = page(client, "/")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in html
    detail = page(client, "/stations/%3Cscript%3Ealert(1)%3C%2Fscript%3E%26")
    assert "<img src=x" not in detail and "&lt;img src=x onerror=alert(2)&gt;" in detail


def test_overview_paginates_and_searches_by_prefix(app: Flask, client: FlaskClient, setup: Setup) -> None:
    setup.enroll(*[Unit(f"KG-{i:04d}") for i in range(3, 251)])
    html = page(client, "/")
    assert "250 stations match." in html and html.count('href="/stations/') == 100
    assert "previous" not in html and "first" not in html
    third = page(client, html_unescape(NEXT.search(page(client, html_unescape(NEXT.search(html).group(1)))).group(1)))
    assert "KG-0201" in third and "KG-0201" not in html and third.count('href="/stations/') == 50
    assert NEXT.search(third) is None and "previous" in third and "first" in third
    html = page(client, "/?q=KG-01")
    assert "100 stations match" in html
    assert "0 stations match" in page(client, "/?q=%25")


def test_unknown_station_is_404(app: Flask, client: FlaskClient) -> None:
    assert client.get("/stations/NOPE").status_code == 404


def test_sorting_by_turnout_and_silence(app: Flask, client: FlaskClient, setup: Setup, clock: FakeClock) -> None:
    for name, identified in (("KG-0001", 10), ("KG-0002", 90)):
        unit = setup.units[name]
        post(client, [unit.record("turnout_snapshot", {"identified": identified, "ballots": identified,
                                                       "registered": 100})])
        clock.advance(60)
    body = page(client, "/?sort=turnout").split("<tbody>")[1]
    assert body.index("KG-0002") < body.index("KG-0001")
    body = page(client, "/?sort=silent").split("<tbody>")[1]
    assert body.index("KG-0001") < body.index("KG-0002")
