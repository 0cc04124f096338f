"""Faults at the view boundary: one sentence in the page's language, the traceback in the debug log."""

from __future__ import annotations

import errno
import logging
import sqlite3
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from device.core.errors import RefusalCode
from device.decision import ActionRefused
from web_ui import faults
from web_ui.faults import Fault

from .conftest import open_polls, post

KY_FULL = "Түзмөктүн сактагычы толуп калды"
KY_UNEXPECTED = "Түзмөктө ката кетти"
RU_UNEXPECTED = "На устройстве произошла ошибка"


class StorageFull(Exception):
    """Shaped as the journal's storage errors are: a ``code`` naming the fault."""

    code = "storage_full"


def sqlite_full() -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    conn.execute("create table t (x)")
    conn.execute("pragma max_page_count = 1")
    try:
        conn.execute("insert into t values (zeroblob(100000))")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite took a row larger than its page limit")


def chained(outer: Exception, cause: BaseException) -> Exception:
    try:
        raise outer from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(("exc", "fault"), [
    (StorageFull("full"), Fault.STORAGE_FULL),
    (OSError(errno.ENOSPC, "No space left on device"), Fault.STORAGE_FULL),
    (OSError(errno.EROFS, "Read-only file system"), Fault.STORAGE_UNWRITABLE),
    (OSError(errno.EIO, "Input/output error"), Fault.STORAGE_DAMAGED),
    (chained(RuntimeError("commit failed"), OSError(errno.ENOSPC, "full")), Fault.STORAGE_FULL),
    (RuntimeError("a bug"), Fault.UNEXPECTED),
    (KeyError("x"), Fault.UNEXPECTED),
])
def test_classify(exc: Exception, fault: Fault) -> None:
    assert faults.classify(exc) is fault


def test_sqlite_full_is_a_full_disk() -> None:
    assert faults.classify(sqlite_full()) is Fault.STORAGE_FULL


def test_a_storage_fault_during_a_chair_action_is_one_kyrgyz_sentence(chair: FlaskClient, app: Any, monkeypatch: Any,
                                                                      caplog: Any) -> None:
    open_polls(chair)
    post(chair, "/lang/ky")

    def full(reason: str = "") -> None:
        raise StorageFull("journal.db: the storage is full")
    monkeypatch.setattr(app, "pause_polls", full)
    with caplog.at_level(logging.ERROR, logger="pollbox.web"):
        response = post(chair, "/chair/pause", {"reason": "lunch"})
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and 'lang="ky"' in page
    assert KY_FULL in page and "Добуш берүү токтотулган жок." in page
    assert "storage is full" not in page and "Traceback" not in page and "Internal" not in page
    assert any(r.exc_info and r.exc_info[0] is StorageFull for r in caplog.records)


def test_an_unexpected_error_on_the_status_page_is_a_sentence_not_a_500_page(client: FlaskClient, app: Any,
                                                                            monkeypatch: Any, caplog: Any) -> None:
    post(client, "/lang/ky")
    monkeypatch.setattr(app, "status", lambda: {}["boom"])
    with caplog.at_level(logging.ERROR, logger="pollbox.web"):
        response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and 'lang="ky"' in page and KY_UNEXPECTED in page
    assert "Internal Server Error" not in page and "KeyError" not in page
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_api_and_stream_answer_faults_with_the_sentence(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(app, "status", lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    response = client.get("/api/status", headers={"Accept-Language": "ru"})
    assert response.status_code == 503 and "Хранилище устройства заполнено" in response.get_json()["error"]
    body = client.get("/events?view=status", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "event: live" in body and "data-fault" in body and "Хранилище устройства заполнено" in body


def test_a_stream_logs_a_lasting_fault_once(web: Flask, app: Any, monkeypatch: Any, caplog: Any) -> None:
    from web_ui.api import _live_or_fault
    monkeypatch.setattr(app, "status", lambda: {}["boom"])
    seen: set[str] = set()
    with web.test_request_context("/events"), caplog.at_level(logging.ERROR, logger="pollbox.web"):
        first, second = _live_or_fault("status", seen), _live_or_fault("status", seen)
    assert first == second and "data-fault" in first
    assert len([r for r in caplog.records if r.name == "pollbox.web"]) == 1


def test_a_refusal_a_view_did_not_expect_is_explained(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    def refuse() -> None:
        raise ActionRefused("the journal failed verification", RefusalCode.JOURNAL_FAILED)
    monkeypatch.setattr(app, "zero_report", refuse)
    response = client.get("/report/zero", headers={"Accept-Language": "ru"})
    assert response.status_code == 409 and "Журнал не прошёл проверку" in response.get_data(as_text=True)


def test_a_refusal_code_without_a_sentence_yet_is_still_translated(chair: FlaskClient, app: Any,
                                                                   monkeypatch: Any) -> None:
    open_polls(chair)
    post(chair, "/lang/ru")
    for code, words in (("storage_full", "Хранилище устройства заполнено"), ("brand_new", "Устройство отказалось")):
        def refuse(reason: str = "", code: Any = code) -> None:
            raise ActionRefused("refused", code)
        monkeypatch.setattr(app, "pause_polls", refuse)
        response = post(chair, "/chair/pause", {"reason": "lunch"})
        assert response.status_code == 409 and words in response.get_data(as_text=True)


def test_http_errors_never_show_werkzeug_english(client: FlaskClient, web: Flask) -> None:
    post(client, "/lang/ky")
    page = post(client, "/api/status").get_data(as_text=True)  # GET only
    assert "Бул баракты мындай колдонууга болбойт" in page and "not allowed" not in page
    page = client.get("/api/status?view=bogus").get_data(as_text=True)
    assert "Мындай көрүнүш жок" in page and "view must be" not in page
