"""A refused chair action is explained in the screen's language, never in the appliance's English."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

from device.core import station as st
from device.core.errors import IllegalTransition, RefusalCode
from device.decision import ActionRefused
from web_ui.refusals import SENTENCES, refusal_text

from .conftest import open_polls, post

PARAMS: dict[RefusalCode, dict[str, Any]] = {
    RefusalCode.WRONG_STATE: {"state": "closed"},
    RefusalCode.ZERO_REPORT_FAILS: {"identified": 2, "ballots": 3},
    RefusalCode.ALARM_NOT_OPEN: {"alarm": 7},
    RefusalCode.BAD_UNIT_COUNT: {"count": -1},
    RefusalCode.NO_SUCH_LINE: {"line": 4321},
}


def test_every_refusal_code_has_a_sentence() -> None:
    assert set(SENTENCES) == set(RefusalCode)


@pytest.mark.parametrize("code", list(RefusalCode))
def test_each_sentence_is_translated_and_carries_its_numbers(web: Flask, code: RefusalCode) -> None:
    exc = ActionRefused("english sentence", code, PARAMS.get(code, {}))
    with web.test_request_context():
        texts = {}
        for lang in ("en", "ru", "ky"):
            with force_locale(lang):
                texts[lang] = refusal_text(exc)
    assert len(set(texts.values())) == 3, texts
    for value in PARAMS.get(code, {}).values():
        if isinstance(value, int) and value >= 0:
            assert all(str(value) in text for text in texts.values()), texts


def test_wrong_state_names_the_poll_state_in_the_language(web: Flask) -> None:
    exc = ActionRefused("polls: cannot resume the polls while setup", RefusalCode.WRONG_STATE, {"state": "setup"})
    with web.test_request_context(), force_locale("ru"):
        assert refusal_text(exc) == "Сейчас это невозможно. Состояние голосования: Голосование ещё не открыто."


def test_a_refused_resume_is_explained_in_russian(chair: FlaskClient, app: Any) -> None:
    post(chair, "/lang/ru")
    before = app.journal.last_seq
    page = post(chair, "/chair/resume")
    text = page.get_data(as_text=True)
    assert page.status_code == 409
    assert "Сейчас это невозможно" in text and "Голосование ещё не открыто" in text
    assert "cannot" not in text
    assert app.journal.last_seq == before


def test_a_missing_list_line_is_explained_in_kyrgyz(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    post(chair, "/lang/ky")
    page = post(chair, "/chair/undo", {"line": "999999", "reason": "ката"})
    text = page.get_data(as_text=True)
    assert page.status_code == 409
    assert "шайлоочулар тизмесинде" in text and "999999" in text and "there is no line" not in text


def test_acknowledging_an_alarm_twice_is_explained(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    app.sim.box.drop()  # a ballot without identification: nothing about it persists
    alarm = app.status()["alarms"][0]["id"]
    assert post(chair, f"/chair/alarms/{alarm}/acknowledge").status_code in (200, 303)
    page = post(chair, f"/chair/alarms/{alarm}/acknowledge")
    assert page.status_code == 409
    assert f"Alarm {alarm} is not open: it was already acknowledged." in page.get_data(as_text=True)


def test_the_appliance_gives_codes_with_its_refusals(app: Any) -> None:
    with pytest.raises(ActionRefused) as undo:
        app.undo_checkin(99999, "mistake")
    assert (undo.value.code, undo.value.params) == (RefusalCode.NO_SUCH_LINE, {"line": 99999})
    with pytest.raises(ActionRefused) as resume:
        app.resume_polls()
    assert (resume.value.code, resume.value.params) == (RefusalCode.WRONG_STATE, {"state": "setup"})


def test_the_zero_report_refusal_carries_what_is_recorded() -> None:
    state = st.StationState()
    state.identified, state.ballots = 0, 1
    with pytest.raises(IllegalTransition) as refused:
        st.decide_open(state)
    assert refused.value.code is RefusalCode.ZERO_REPORT_FAILS
    assert refused.value.params == {"identified": 0, "ballots": 1}


@pytest.mark.parametrize(("code", "lang", "words"), [
    ("revoked_key", "ru", "ЦИК отозвала ключ этого устройства"),
    ("unknown_key", "ky", "түзмөк каттоодон өткөн эмес"),
    ("chain_broken", "en", "The CEC refuses this unit's records."),
    ("unit_mismatch", "ru", "для другого устройства этого участка"),
    ("unit_mismatch", "ky", "ушул участоктун башка түзмөгү үчүн"),
])
def test_a_receiver_refusal_is_explained_on_the_status_screen(client: FlaskClient, app: Any, monkeypatch: Any,
                                                             code: str, lang: str, words: str) -> None:
    assert app.upstream is not None
    real = app.upstream.status
    monkeypatch.setattr(app.upstream, "status", lambda: {**real(), "refused": code, "last_error": code})
    app.tick()  # the appliance publishes what its parts report on its next step
    post(client, f"/lang/{lang}")
    page = client.get("/").get_data(as_text=True)
    assert f'class="state bad" data-link="online" data-refused="{code}"' in page  # red, not green
    details = client.get("/details").get_data(as_text=True)
    assert f'data-refused="{code}"' in details and words in details


def test_no_refusal_no_banner(client: FlaskClient, app: Any) -> None:
    assert 'data-refused' not in client.get("/").get_data(as_text=True)


def test_opening_while_an_update_installs_is_explained_in_kyrgyz_and_russian(chair: FlaskClient, app: Any,
                                                                              tmp_path: Any) -> None:
    import threading

    from device.updates.sim import SimUpdater, sim_bundle
    app.updater = SimUpdater(tmp_path / "update-sim")
    bundle = tmp_path / "held.bundle"
    bundle.write_text(sim_bundle(version="0.9.1", hold=True))
    done: dict[str, Any] = {}
    install = threading.Thread(target=lambda: done.update(app.update(bundle)))
    install.start()
    try:
        app.settle()
        deadline = threading.Event()
        for _ in range(2000):  # the install journals update_started on the owner thread before it holds
            if app.state.update.value == "installing":
                break
            deadline.wait(0.01)
        assert app.state.update.value == "installing"
        texts = {}
        for lang in ("ky", "ru"):
            assert chair.get("/report/zero").status_code == 200  # the chair shows it before each opening
            post(chair, f"/lang/{lang}")
            page = post(chair, "/chair/open")
            assert page.status_code == 409
            texts[lang] = page.get_data(as_text=True)
        assert "0.9.1" in texts["ky"] and "орнотулуп жатат" in texts["ky"]
        assert "0.9.1" in texts["ru"] and "устанавливается обновление" in texts["ru"]
        assert all("being installed" not in t and "cannot" not in t for t in texts.values())
        assert app.status()["poll"] == "setup"
    finally:
        (tmp_path / "update-sim" / "release").touch()
        install.join(timeout=60)
    assert done["slot"] == "B"
    open_polls(chair)


@pytest.mark.parametrize(("bundle_kw", "budget", "ru_words", "ky_words"), [
    ({"signed_by": "someone"}, 1 << 20, "оно не подписано ЦИК", "ага БШК кол койгон эмес"),
    ({"compatible": "pollbox-rpi"}, 1 << 20, "для другого оборудования", "башка жабдуу үчүн"),
    ({}, 10, "файл больше допустимого", "уруксат берилгенден чоң"),
    (None, 1 << 20, "файл обрезан", "файл кесилген"),
])
def test_a_refused_bundle_is_explained_on_the_details_page_and_nothing_is_written(
        chair: FlaskClient, app: Any, tmp_path: Any, bundle_kw: dict[str, Any] | None, budget: int,
        ru_words: str, ky_words: str) -> None:
    from device.updates import UpdateError
    from device.updates.sim import SimUpdater, sim_bundle
    folder = tmp_path / "update-sim"
    app.updater = SimUpdater(folder, budget=budget)
    bundle = tmp_path / "bad.bundle"
    text = sim_bundle(version="0.7.0", **bundle_kw) if bundle_kw is not None else sim_bundle(version="0.7.0")[:25]
    bundle.write_text(text)
    with pytest.raises(UpdateError, match="update refused"):
        app.update(bundle)
    app.settle()
    assert not list(folder.glob("slot-*"))  # nothing written to either slot
    pages = {}
    for lang in ("ru", "ky", "en"):
        post(chair, f"/lang/{lang}")
        pages[lang] = chair.get("/details").get_data(as_text=True)
    assert 'data-update="refused"' in pages["ru"] and ru_words in pages["ru"]
    assert ky_words in pages["ky"]
    assert "refused" not in pages["ru"].split('data-update="refused"', 1)[1].split("</dd>", 1)[0]
    assert "Nothing was installed" in pages["en"] and "Nothing was installed" not in pages["ky"]
