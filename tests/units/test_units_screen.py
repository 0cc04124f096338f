"""What the chair's screen of a unit says about the other units: a voter admitted elsewhere, home voting,
a conflict alarm with what to do, all in the chair's language."""

from __future__ import annotations

from pathlib import Path

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
