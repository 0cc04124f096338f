"""The link to the CEC on the status screen: "Offline" only while a failure stands."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from web_ui.view import link_state

from .conftest import post

RECEIPT = "2027-01-15T08:00:00.000000Z"


def upstream(**fields: Any) -> dict[str, Any]:
    base = {"waiting": 0, "delivered_through": 0, "last_seq": 0, "last_receipt_at": None, "online": None,
            "last_error": None, "refused": None, "failures": 0, "next_attempt_in": 0.0}
    return {**base, **fields}


@pytest.mark.parametrize(("fields", "state"), [
    ({"online": True}, "online"),
    ({"online": True, "waiting": 3}, "online"),
    ({"online": False, "failures": 2, "last_error": "no answer", "waiting": 3}, "offline"),
    ({"online": False, "failures": 1, "last_error": "no answer", "last_receipt_at": RECEIPT}, "offline"),
    # the last attempt went through (a probe after the link came back), nothing waits: not "Offline"
    ({"online": False, "delivered_through": 9, "last_seq": 9, "last_receipt_at": RECEIPT}, "delivered"),
    # after a restart: never tried yet, everything was receipted before
    ({"online": None, "delivered_through": 9, "last_seq": 9, "last_receipt_at": RECEIPT}, "delivered"),
    ({"online": None, "waiting": 2, "last_seq": 2}, "sending"),
    ({"online": None}, "idle"),
    ({"online": True, "refused": "revoked_key", "last_error": "revoked"}, "online"),
])
def test_link_state(fields: dict[str, Any], state: str) -> None:
    assert link_state(upstream(**fields)) == state


def test_no_link_configured() -> None:
    assert link_state(None) == "none"


def show(client: FlaskClient, app: Any, monkeypatch: Any, **fields: Any) -> str:
    assert app.upstream is not None
    monkeypatch.setattr(app.upstream, "status", lambda: upstream(**fields))
    app.tick()  # the appliance publishes what its parts report on its next step
    return client.get("/").get_data(as_text=True)


def test_everything_delivered_is_not_offline(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    page = show(client, app, monkeypatch, online=None, delivered_through=9, last_seq=9, last_receipt_at=RECEIPT)
    assert 'data-link="delivered"' in page and "Everything delivered" in page and "Offline" not in page
    post(client, "/lang/ky")
    assert "Баары жеткирилди" in client.get("/").get_data(as_text=True)


def test_a_standing_failure_is_offline(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    page = show(client, app, monkeypatch, online=False, failures=3, last_error="no answer", waiting=4)
    assert 'data-link="offline"' in page and "Offline" in page


def test_records_not_yet_tried_are_sending_not_offline(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    page = show(client, app, monkeypatch, online=None, waiting=2, last_seq=2)
    assert 'class="state wait" data-link="sending"' in page and "Offline" not in page
