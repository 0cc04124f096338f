"""Every screen answers, shows what the appliance says, and escapes what it did not write."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from device.core.station import VoterEntry
from device.hardware.interfaces import ScanRead

from .conftest import build_web, open_polls, post


def test_status_page_shows_counters_and_state(client: FlaskClient, app: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Not yet open" in page
    assert 'data-counter="identified">0<' in page
    assert f"of {app.status()['counters']['registered']:,} on the list" in page
    assert "SIMULATION" in page


def test_every_get_route_answers(client: FlaskClient) -> None:
    for url in ("/", "/observer", "/api/status", "/api/status?view=observer", "/chair/login", "/dev",
                "/report/zero", "/events", "/static/app.css", "/static/live.js"):
        with client.get(url) as response:
            assert response.status_code == 200, url
    assert client.get("/report/close").status_code == 404
    assert client.get("/no-such-page").status_code == 404
    assert client.get("/api/status?view=bogus").status_code == 400


def test_chair_pages_need_the_pin(client: FlaskClient) -> None:
    for url in ("/chair", "/chair/close"):
        response = client.get(url)
        assert response.status_code == 303 and "/chair/login" in response.headers["Location"]


def test_decision_shows_who_to_chair_but_not_observer(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "code128", "test"))
    name = app.package.voters[next(h for h, e in app.package.voters.items() if e.line == 1)].name
    status = chair.get("/").get_data(as_text=True)
    assert "Admitted" in status and name in status and "List line 1" in status
    observer = chair.get("/observer").get_data(as_text=True)
    assert "Admitted" in observer and name not in observer and "List line" not in observer
    assert "<form" not in observer.split('id="live"')[1] and "/chair" not in observer


def test_already_voted_shows_first_time(chair: FlaskClient, app: Any, pins: list[str], clock: Any) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    clock.advance(app.delays.duplicate_read_window + 1)
    app.identify(ScanRead(pins[0], "qr", "t"))
    page = chair.get("/").get_data(as_text=True)
    assert 'data-outcome="already_voted"' in page and "First identified at" in page


def test_names_with_html_are_escaped(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    voter = next(h for h, e in app.package.voters.items() if e.line == 1)
    app.package.voters[voter] = VoterEntry(1, '<script>alert("x")</script><b>Bold</b>')
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    for body in (chair.get("/").get_data(as_text=True), chair.get("/api/status?view=status").get_json()["html"]):
        assert "<script>alert" not in body and "<b>Bold" not in body
    assert "name" not in chair.get("/api/status").get_json()["status"]["last_decision"]
    assert "&lt;script&gt;alert" in chair.get("/").get_data(as_text=True)


def test_pause_reason_with_html_is_escaped_on_error_pages(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    app.sim.box.open_lid()
    status = app.status()
    note = "<img src=x onerror=alert(1)>"
    post(chair, f"/chair/alarms/{status['alarms'][0]['id']}/acknowledge", {"note": note})
    assert note not in chair.get("/chair").get_data(as_text=True)


def test_status_stays_correct_across_an_appliance_restart(chair: FlaskClient, app: Any, make_app: Any,
                                                          instance: Any, clock: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    app.sim.box.drop()
    app.stop()
    restarted = make_app()
    web = build_web(restarted, instance, clock)
    client = web.test_client()
    client.set_cookie("session", chair.get_cookie("session").value)  # type: ignore[union-attr]
    counters = client.get("/api/status").get_json()["status"]["counters"]
    assert (counters["identified"], counters["ballots"]) == (1, 1)
    assert client.get("/chair").status_code == 200  # same secret key: the chair is still logged in


def test_dev_panel_drives_the_simulated_station(client: FlaskClient, app: Any, pins: list[str]) -> None:
    post(client, "/dev/scan", {"text": pins[0]})
    assert app.status()["last_decision"]["outcome"] == "polls_not_open"
    post(client, "/dev/lid-open")
    assert app.status()["interlock"]["lid_open"]
    assert post(client, "/dev/scan", {"text": ""}).status_code == 303
    assert post(client, "/dev/no-such-thing").status_code == 404


class ProductionView:
    """The appliance as a production unit would present it: no simulated parts."""

    sim = None

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def status(self) -> dict[str, Any]:
        return {**self._inner.status(), "mode": "production"}


def test_dev_panel_does_not_exist_in_production(app: Any, instance: Any, clock: Any) -> None:
    client = build_web(ProductionView(app), instance, clock).test_client()
    assert client.get("/dev").status_code == 404
    page = client.get("/").get_data(as_text=True)
    assert "/dev" not in page and "SIMULATION" not in page
