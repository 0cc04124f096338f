"""Live updates: the SSE stream and the polling API carry the same rendered region."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from device.hardware.interfaces import ScanRead
from web_ui.api import sse_event

from .conftest import build_web, open_polls


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE body, following the HTML5 parsing rules we rely on."""
    out = []
    for block in text.split("\n\n"):
        kind, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((kind, "\n".join(data)))
    return out


def without_health(html: str) -> str:
    """The region without the device-health block (free storage moves as other programs write)."""
    return html.split('<section class="health">')[0]


@given(st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=["Cs"])))
def test_sse_event_round_trips(data: str) -> None:
    assert parse_sse(sse_event("live", data)) == [("live", data)]


def test_stream_sends_the_current_region(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    response = chair.get("/events?view=status")
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    assert body.startswith("retry: ")
    events = parse_sse(body)
    assert events[0][0] == "live" and 'data-outcome="admitted"' in events[0][1]
    api = chair.get("/api/status?view=status").get_json()
    assert without_health(api["html"]) == without_health(events[0][1])
    assert api["status"]["counters"]["identified"] == 1


def test_observer_stream_has_no_names(client: FlaskClient, app: Any, pins: list[str], chair: FlaskClient) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    name = app.status()["last_decision"]["name"]
    body = client.get("/events?view=observer").get_data(as_text=True)
    assert "admitted" in body and name not in body


def test_a_quiet_stream_says_it_is_alive(app: Any, instance: Any, clock: Any) -> None:
    """Nothing changes, yet the page hears from the unit: only silence shows "connection lost"."""
    web = build_web(app, instance, clock, SSE_MAX_SECONDS=0.3, SSE_POLL_SECONDS=0.01, SSE_KEEPALIVE_SECONDS=0.0)
    client = web.test_client()
    events = parse_sse(client.get("/events?view=status").get_data(as_text=True))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "live" and set(kinds[1:]) == {"alive"}
    page = client.get("/").get_data(as_text=True)
    assert 'data-stale-ms="5000"' in page  # three keepalive periods and five seconds of grace


def test_the_alarm_list_and_details_are_live_regions_too(client: FlaskClient, app: Any) -> None:
    app.sim.box.open_lid()
    assert app.status()["alarms"], "the lid alarm was not raised"
    page = client.get("/alarms").get_data(as_text=True)
    assert '<div id="live" data-view="alarms">' in page and 'data-live="alarms"' in page
    polled = client.get("/api/status?view=alarms").get_json()["html"]
    assert 'data-alarm-kind="lid_opened"' in polled and "data-poll-source" in polled
    streamed = parse_sse(client.get("/events?view=alarms").get_data(as_text=True))
    assert streamed[0][0] == "live" and streamed[0][1] == polled
    details = client.get("/api/status?view=details").get_json()["html"]
    assert 'class="details"' in details and "<svg" in details
    assert 'data-view="observer-details"' in client.get("/details?view=observer").get_data(as_text=True)


def test_the_alarm_list_opened_from_the_observer_view_offers_no_acknowledge(client: FlaskClient, app: Any) -> None:
    app.sim.box.open_lid()
    assert app.status()["alarms"], "the lid alarm was not raised"
    app.sim.box.close_lid()
    chair_view = client.get("/api/status?view=alarms").get_json()["html"]
    observer_view = client.get("/api/status?view=observer-alarms").get_json()["html"]
    assert "Acknowledge" in chair_view  # resolved: the chair may acknowledge it, from the chair's pages
    assert 'data-alarm-kind="lid_opened"' in observer_view and "Acknowledge" not in observer_view

