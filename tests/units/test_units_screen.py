"""What the chair's screen of a unit says about the other units: a voter admitted elsewhere, home voting,
a conflict alarm with what to do, all in the chair's language."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.errors import UserError
from tests.web.conftest import CHAIR_PIN, build_web, post

from .stations import HOME_PIN, PINS, Station


def _chair(station: Station, uid: str, tmp_path: Path, lang: str) -> object:
    from web_ui.pin import set_pin
    instance = tmp_path / f"web-{uid}"
    set_pin(instance / "chair_pin.json", CHAIR_PIN)
    client = build_web(station.apps[uid], instance, station.clock).test_client()
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).status_code == 303
    post(client, f"/lang/{lang}")
    return client


def test_the_desk_says_admitted_elsewhere_and_home_voting_in_kyrgyz(station: Station, tmp_path: Path) -> None:
    station.apps["desk-1"].identify_manual(PINS[0])
    station.sync("desk-2")
    client = _chair(station, "desk-2", tmp_path, "ky")
    station.apps["desk-2"].identify_manual(PINS[0])
    page = client.get("/").get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Башка түзмөктө катталган" in page and "Admitted at another unit" not in page
    station.apps["desk-2"].identify_manual(HOME_PIN)
    page = client.get("/").get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Үйдөн добуш берүүгө катталган" in page


def test_a_conflict_alarm_tells_the_chair_what_to_do_in_russian(station: Station, tmp_path: Path) -> None:
    for uid in ("desk-1", "desk-2"):
        station.apps[uid].identify_manual(PINS[5])
    station.sync("desk-1")
    client = _chair(station, "desk-1", tmp_path, "ru")
    page = client.get("/").get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Избиратель допущен на двух устройствах" in page and "Сверьте записи обоих устройств" in page


def test_the_main_desk_says_which_units_it_waits_for_before_closing(station: Station, tmp_path: Path) -> None:
    client = _chair(station, "desk-1", tmp_path, "ru")
    answer = post(client, "/chair/close", {"confirm": "yes"})  # type: ignore[arg-type]
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "Итоговые записи desk-2, mobile ещё не получены" in page
    assert station.apps["desk-1"].status()["poll"] == "open"


def test_the_chair_closes_without_a_unit_out_of_reach_from_the_screen(station: Station, tmp_path: Path) -> None:
    station.apps["desk-2"].close_polls()
    station.sync("desk-1")
    station.sync("desk-1")
    client = _chair(station, "desk-1", tmp_path, "ky")
    answer = post(client, "/chair/close", {"confirm": "yes"})  # type: ignore[arg-type]
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "mobile түзмөгүсүз жабуу" in page and "desk-2 түзмөгүсүз" not in page
    assert post(client, "/chair/close-without", {"unit": "mobile", "reason": " "}).status_code == 400  # type: ignore
    done = post(client, "/chair/close-without", {"unit": "mobile", "reason": "the team is in the hills"})  # type: ignore
    assert done.status_code == 303
    assert post(client, "/chair/close", {"confirm": "yes"}).status_code == 303  # type: ignore[arg-type]
    report = station.apps["desk-1"].close_report()
    assert report is not None and report["units"]["absent"] == ["mobile"]


def test_the_units_page_shows_each_unit_how_far_it_is_held_and_last_contact(station: Station,
                                                                             tmp_path: Path) -> None:
    station.apps["desk-2"].identify_manual(PINS[7])
    station.apps["desk-2"].identify_manual(PINS[8])
    client = _chair(station, "desk-1", tmp_path, "ru")
    page = client.get("/units").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'data-unit="desk-2" data-state="not_reached"' in page and "ни разу" in page
    station.sync("desk-1")
    page = client.get("/units").get_data(as_text=True)  # type: ignore[attr-defined]
    row = page.split('data-unit="desk-2"')[1].split("</tr>")[0]
    assert 'data-state="up_to_date"' in row and "2 из 2" in row and "Актуально" in row
    assert 'data-unit="desk-1" data-state="own"' in page and "это устройство" in page
    assert 'data-units-state="up_to_date"' in page and "Все устройства в актуальном состоянии" in page
    details = client.get("/details").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'data-units-link href="/units"' in details and "Устройства участка" in details
    live = client.get("/api/status?view=observer-units").get_json()  # type: ignore[attr-defined]
    assert 'data-unit="mobile"' in live["html"]


def test_the_simulator_panel_cuts_and_restores_each_link(station: Station, tmp_path: Path) -> None:
    client = _chair(station, "desk-1", tmp_path, "ky")
    panel = client.get("/dev").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'data-unit-link="desk-2" data-up="0"' in panel and "desk-2 менен байланышты үзүү" in panel
    answer = post(client, "/dev/unit-link", {"peer": "desk-2", "up": "0"})  # type: ignore[arg-type]
    assert answer.status_code == 303
    unit_sync = station.apps["desk-1"].unit_sync
    assert unit_sync is not None and unit_sync.links.cut() == ["desk-2"]
    station.apps["desk-2"].identify_manual(PINS[9])
    station.sync("desk-1")
    page = client.get("/units").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'data-unit="desk-2" data-state="cut"' in page and "Байланыш үзүлгөн (симуляция)" in page
    assert 'data-units-state="behind"' in page
    assert 'data-unit="desk-2"' in page and "0" in page.split('data-unit="desk-2"')[1].split("</tr>")[0]
    panel = client.get("/dev").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'data-unit-link="desk-2" data-up="1"' in panel
    assert post(client, "/dev/unit-link", {"peer": "desk-2", "up": "1"}).status_code == 303  # type: ignore
    assert unit_sync.links.cut() == []
    refused = post(client, "/dev/unit-link", {"peer": "desk-1", "up": "0"}, follow_redirects=True)  # type: ignore
    assert "desk-1 бул участоктун башка түзмөгү эмес." in refused.get_data(as_text=True)
    assert unit_sync.links.cut() == []


def test_a_one_unit_station_says_so_on_the_units_page(tmp_path: Path) -> None:
    from device.compose import build_appliance
    from device.config import load_config
    from device.demo import make_demo_station
    from device.hardware.clock import FakeClock
    from tests.web.conftest import CHAIR_PIN as PIN
    from web_ui.pin import set_pin
    clock = FakeClock()
    app = build_appliance(load_config(make_demo_station(tmp_path / "one", voters=10)), clock=clock)
    app.start(background=False)
    try:
        set_pin(tmp_path / "web" / "chair_pin.json", PIN)
        client = build_web(app, tmp_path / "web", clock).test_client()
        post(client, "/lang/ky")
        page = client.get("/units").get_data(as_text=True)
        assert "Бул участокто бир түзмөк бар." in page and "data-units-link" not in client.get(
            "/details").get_data(as_text=True)
        assert "data-unit-link" not in client.get("/dev").get_data(as_text=True)
        with pytest.raises(UserError, match="simulated station of several units"):
            app.set_unit_link("desk-2", False)
    finally:
        app.stop()
