"""Languages: every string translated in Kyrgyz and Russian, switchable, numbers in the locale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from flask.testing import FlaskClient

from device.core.catalogue import ALARM_ADVICE
from device.hardware.interfaces import ScanRead
from web_ui import i18n

from .conftest import open_polls, post

TRANSLATIONS = Path(i18n.__file__).parent / "translations"


def catalogue(code: str) -> Any:
    with open(TRANSLATIONS / code / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=code)


@pytest.mark.parametrize("code", ["ky", "ru"])
def test_every_message_is_translated(code: str) -> None:
    cat = catalogue(code)
    missing = [m.id for m in cat if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple)
                                                                      else [m.string]))]
    assert missing == []
    assert (TRANSLATIONS / code / "LC_MESSAGES" / "messages.mo").stat().st_mtime >= \
        (TRANSLATIONS / code / "LC_MESSAGES" / "messages.po").stat().st_mtime - 1


def test_catalogues_cover_every_string_in_the_code() -> None:
    """Every msgid the templates and modules use is in the template catalogue."""
    from babel.messages.extract import extract_from_dir

    import web_ui
    root = Path(web_ui.__file__).parent
    with open(root / "babel.cfg") as f:
        from babel.messages.frontend import parse_mapping_cfg
        method_map, options_map = parse_mapping_cfg(f)  # type: ignore[no-untyped-call]
    used = {m[2] if isinstance(m[2], str) else m[2][0] for m in extract_from_dir(root, method_map, options_map)}
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogue("ru")}
    assert used - known == set()


def test_alarm_advice_matches_the_audit_catalogue() -> None:
    assert {k.value: v for k, v in ALARM_ADVICE.items()} == {k: str(v._args[0]) for k, v in i18n.ALARM_ADVICE.items()}
    assert set(i18n.ALARM_TITLES) == set(i18n.ALARM_ADVICE)


def test_switching_language(client: FlaskClient, app: Any) -> None:
    response = post(client, "/lang/ru", {"next": "/observer"})
    assert response.status_code == 303 and response.headers["Location"] == "/observer"
    page = client.get("/").get_data(as_text=True)
    registered = format_decimal(app.status()["counters"]["registered"], locale="ru")
    assert "\xa0" in registered  # Russian groups thousands with a no-break space
    assert 'lang="ru"' in page and "Голосование ещё не открыто" in page and f"из {registered} в списке" in page
    post(client, "/lang/ky")
    page = client.get("/").get_data(as_text=True)
    assert 'lang="ky"' in page and "Добуш берүү али ачыла элек" in page
    assert post(client, "/lang/xx").status_code == 404


def test_switch_never_redirects_off_site(client: FlaskClient) -> None:
    response = post(client, "/lang/en", {"next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_alarm_advice_in_kyrgyz(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    app.sim.box.open_lid()
    post(chair, "/lang/ky")
    page = chair.get("/").get_data(as_text=True)
    assert "Шайлоо кутусунун капкагы ачык" in page


def test_browser_language_is_used_until_chosen(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert 'lang="ru"' in page


def test_station_language_wins_over_the_kiosk_browser(web: Any, client: FlaskClient) -> None:
    web.config["STATION_LANGUAGE"] = "ky"
    page = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert 'lang="ky"' in page
    post(client, "/lang/ru")
    assert 'lang="ru"' in client.get("/", headers={"Accept-Language": "en-US"}).get_data(as_text=True)


def test_times_in_the_station_time_zone(chair: FlaskClient, app: Any, pins: list[str]) -> None:
    open_polls(chair)
    app.identify(ScanRead(pins[0], "qr", "t"))
    # the fake clock starts at 1,800,000,000 s = 2027-01-15 08:00:00 UTC = 14:00 in Bishkek (UTC+6)
    assert "2:00:00\u202fPM" in chair.get("/").get_data(as_text=True)
    post(chair, "/lang/ru")
    assert "14:00:00" in chair.get("/").get_data(as_text=True)


def test_times_from_iso_strings_and_numbers_agree(web: Any) -> None:
    with web.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert i18n.fmt_time("2027-01-15T08:00:00.000000Z", True) == i18n.fmt_time(1_800_000_000.0, True) == "14:00:00"
        assert i18n.fmt_time(None) == "—"
        assert i18n.fmt_number(1234567) == "1\xa0234\xa0567"


def test_an_alarm_newer_than_the_screen_is_still_in_the_page_language(client: FlaskClient, app: Any,
                                                                      monkeypatch: Any) -> None:
    real = app.status
    newer = {"id": 7, "kind": "kind_from_a_newer_unit", "detail": "", "at": 1_800_000_000.0,
             "advice": "Free space on the card or call the technician."}
    monkeypatch.setattr(app, "status", lambda: {**real(), "alarms": [newer]})
    page = client.get("/").get_data(as_text=True)
    assert "Alarm (kind_from_a_newer_unit)" in page and "Free space on the card" in page
    post(client, "/lang/ky")
    page = client.get("/").get_data(as_text=True)
    assert "Эскертүү (kind_from_a_newer_unit)" in page and "Бул экранда бул эскертүү үчүн азырынча сөз жок" in page
    assert "Free space" not in page
