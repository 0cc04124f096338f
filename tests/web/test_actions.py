"""Chair actions: each one journaled, refused in the wrong poll state, and only with the form token."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from device.hardware.interfaces import ScanRead

from .conftest import CHAIR_PIN, open_polls, post, token


def kinds(app: Any, after: int = 0) -> list[str]:
    return [r.event.kind for r in app.journal.recorded(after)]


def test_post_without_token_is_refused_and_nothing_recorded(chair: FlaskClient, app: Any) -> None:
    chair.get("/report/zero")
    before = app.journal.last_seq
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        response = chair.post("/chair/open", data=data)
        assert response.status_code == 400
        assert "nothing was done" in response.get_data(as_text=True)
    assert app.journal.last_seq == before and app.status()["poll"] == "setup"


def test_token_from_another_session_is_refused(web: Any, chair: FlaskClient, app: Any) -> None:
    other = web.test_client()
    stolen = token(other)
    chair.get("/report/zero")
    assert chair.post("/chair/open", data={"csrf_token": stolen}).status_code == 400
    assert app.status()["poll"] == "setup"


def test_open_needs_the_zero_report_first(chair: FlaskClient, app: Any) -> None:
    response = post(chair, "/chair/open")
    assert response.status_code == 409 and "zero report" in response.get_data(as_text=True)
    assert app.status()["poll"] == "setup"


def test_open_is_journaled(chair: FlaskClient, app: Any) -> None:
    before = app.journal.last_seq
    open_polls(chair)
    assert kinds(app, before) == ["polls_opened"]


def test_actions_refused_in_the_wrong_state(chair: FlaskClient, app: Any) -> None:
    before = app.journal.last_seq
    assert post(chair, "/chair/resume").status_code == 409
    assert post(chair, "/chair/pause", {"reason": "lunch"}).status_code == 409
    assert post(chair, "/chair/close", {"confirm": "yes"}).status_code == 409
    assert post(chair, "/chair/undo", {"line": "1", "reason": "mistake"}).status_code == 409
    assert post(chair, "/chair/alarms/1/acknowledge").status_code == 409
    assert app.journal.last_seq == before
    open_polls(chair)
    chair.get("/report/zero")
    response = post(chair, "/chair/open")
    assert response.status_code == 409 and "The polls were not opened." in response.get_data(as_text=True)
    assert post(chair, "/chair/resume").status_code == 409


def test_pause_and_resume(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    before = app.journal.last_seq
    assert post(chair, "/chair/pause", {"reason": "lunch break"}).status_code == 303
    assert app.status()["poll"] == "paused"
    assert "Polls paused" in chair.get("/").get_data(as_text=True)
    assert post(chair, "/chair/resume").status_code == 303
    assert kinds(app, before) == ["polls_paused", "polls_resumed"]


def test_acknowledge_an_alarm(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    app.sim.box.drop()  # a ballot with no identification
    alarm = app.status()["alarms"][0]
    page = chair.get("/").get_data(as_text=True)
    assert "Ballot without identification" in page and "record it in the protocol" in page
    response = post(chair, f"/chair/alarms/{alarm['id']}/acknowledge", {"note": "voter X, noted in protocol"})
    assert response.status_code == 303
    assert app.status()["alarms"] == []
    assert kinds(app)[-1] == "alarm_acknowledged"


def test_undo_needs_line_and_reason(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    assert post(chair, "/chair/undo", {"line": "one", "reason": "x"}).status_code == 400
    assert post(chair, "/chair/undo", {"line": "1", "reason": "  "}).status_code == 400
    assert post(chair, "/chair/undo", {"line": "999999", "reason": "x"}).status_code == 409
    assert post(chair, "/chair/undo", {"line": "1", "reason": "wrong voter scanned"}).status_code == 303
    assert app.status()["counters"]["identified"] == 0
    assert "checkin_undone" in kinds(app)


def test_manual_number(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    assert post(chair, "/chair/manual", {"number": ""}).status_code == 400
    response = post(chair, "/chair/manual", {"number": pins[3]}, follow_redirects=True)
    assert "Admitted" in response.get_data(as_text=True)
    assert app.status()["last_decision"]["method"] == "manual"


def test_close_asks_for_confirmation_then_shows_the_report(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    app.sim.box.drop()
    assert "Close the polls?" in chair.get("/chair/close").get_data(as_text=True)
    assert post(chair, "/chair/close").status_code == 400
    assert app.status()["poll"] == "open"
    response = post(chair, "/chair/close", {"confirm": "yes"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/report/close")
    report = chair.get("/report/close").get_data(as_text=True)
    assert "Close report" in report and 'Voters identified</th><td>1<' in report
    assert kinds(app)[-1] == "polls_closed"


def test_logout_ends_the_chair_session(chair: FlaskClient) -> None:
    assert post(chair, "/chair/logout").status_code == 303
    assert chair.get("/chair").status_code == 303


def test_chair_session_expires_when_idle(chair: FlaskClient, web: Any, clock: Any) -> None:
    clock.advance(web.config["CHAIR_IDLE_SECONDS"] + 1)
    assert chair.get("/chair").status_code == 303


def test_an_idle_logout_in_a_form_comes_back_to_that_form(chair: FlaskClient, app: Any, clock: Any,
                                                          web: Any) -> None:
    open_polls(chair)
    clock.advance(web.config["CHAIR_IDLE_SECONDS"] + 1)
    response = post(chair, "/chair/undo", {"line": "1", "reason": "wrong voter"})
    assert response.status_code == 303 and response.headers["Location"] == "/chair/login?next=/chair/undo"
    back = post(chair, "/chair/login", {"pin": CHAIR_PIN, "next": "/chair/undo"})
    assert back.headers["Location"] == "/chair/undo"
    assert 'name="reason"' in chair.get("/chair/undo").get_data(as_text=True)


def test_while_paused_the_desk_hint_says_resume(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    assert post(chair, "/chair/pause", {"reason": "lunch"}).status_code == 303
    app.identify(ScanRead(pins[0], "qr", "t"))
    page = chair.get("/").get_data(as_text=True)
    assert "identification resumes when the chair resumes the polls" in page
    assert "starts when the chair opens the polls" not in page
