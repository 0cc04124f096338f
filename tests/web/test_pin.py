"""The chair PIN: hashed at rest, five tries, then a lock that doubles and survives a restart."""

from __future__ import annotations

import errno
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from web_ui import lockout, pin
from web_ui.pin import ChairPin, Outcome, PinError, set_pin

from .conftest import CHAIR_PIN, build_web, post

BASE = 30.0


def pin_notes(app: Any) -> list[str]:
    return [r.event.text for r in app.journal.recorded() if r.event.kind == "annotation"]


def test_pin_file_holds_no_pin_and_is_private(instance: Path) -> None:
    path = instance / "chair_pin.json"
    assert CHAIR_PIN not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["kdf"] == "scrypt"


@pytest.mark.parametrize("bad", ["", "12345", "12345a", "1234567890123", "١٢٣٤٥٦"])
def test_set_pin_refuses_malformed_pins(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PinError, match="6 to 12 digits"):
        set_pin(tmp_path / "p.json", bad)


def test_missing_pin_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PinError, match="the chair sets it on the screen"):
        ChairPin(tmp_path / "none.json", lockout_base=BASE).check("123456", 0.0)


def test_wrong_pins_lock_then_double(instance: Path) -> None:
    pin = ChairPin(instance / "chair_pin.json", lockout_base=BASE)
    now = 1000.0
    for left in (4, 3, 2, 1):
        assert pin.check("000000", now) .tries_left == left
    locked = pin.check("000000", now)
    assert locked.outcome is Outcome.LOCKED and locked.just_locked and locked.locked_for == BASE
    assert pin.check(CHAIR_PIN, now + BASE - 0.5).outcome is Outcome.LOCKED  # the right PIN does not help
    again = pin.check("000000", now + BASE)
    assert again.outcome is Outcome.LOCKED and again.locked_for == 2 * BASE
    assert pin.check(CHAIR_PIN, now + 3 * BASE).outcome is Outcome.ACCEPTED
    assert pin.attempts() == lockout.Attempts()


def test_lock_survives_a_restart(instance: Path) -> None:
    for _ in range(5):
        ChairPin(instance / "chair_pin.json", lockout_base=BASE).check("999999", 50.0)
    fresh = ChairPin(instance / "chair_pin.json", lockout_base=BASE)
    assert fresh.check(CHAIR_PIN, 51.0).outcome is Outcome.LOCKED


def test_login_lockout_is_shown_and_journaled(client: FlaskClient, app: Any, clock: Any) -> None:
    for _ in range(4):
        response = post(client, "/chair/login", {"pin": "111111"})
        assert response.status_code == 403 and "tries left" in response.get_data(as_text=True)
    response = post(client, "/chair/login", {"pin": "111111"})
    assert response.status_code == 429 and "locked for 30 seconds" in response.get_data(as_text=True)
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).status_code == 429
    notes = pin_notes(app)
    assert len(notes) == 5 and "locked for 30 s" in notes[-1]
    assert all(CHAIR_PIN not in n and "111111" not in n for n in notes)
    clock.advance(BASE)
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).status_code == 303


def test_without_a_pin_the_chair_sets_one_at_the_station(app: Any, tmp_path: Path, clock: Any) -> None:
    web_dir = tmp_path / "fresh"
    client = build_web(app, web_dir, clock).test_client()
    assert client.get("/chair/login").headers["Location"] == "/chair/setup"
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).headers["Location"] == "/chair/setup"
    post(client, "/lang/ky")
    assert "Төраганын ПИН-кодун коюу" in client.get("/chair/setup").get_data(as_text=True)
    post(client, "/lang/en")
    for new, again, why in (("123456", "123456", "too easy"), ("444444", "444444", "too easy"),
                            ("98765", "98765", "6 to 12 digits"), ("284915", "284916", "differ")):
        response = post(client, "/chair/setup", {"pin": new, "again": again})
        assert response.status_code == 400 and why in response.get_data(as_text=True)
    assert not (web_dir / "chair_pin.json").exists()
    response = post(client, "/chair/setup", {"pin": "284915", "again": "284915"})
    assert response.status_code == 303 and response.headers["Location"] == "/chair"
    assert client.get("/chair").status_code == 200  # the chair who set it is logged in
    assert pin_notes(app)[-1] == "chair PIN set at the station by the chair"
    assert not any("284915" in n for n in pin_notes(app)) and "284915" not in (web_dir / "chair_pin.json").read_text()
    stranger = build_web(app, web_dir, clock).test_client()
    assert post(stranger, "/chair/setup", {"pin": "739162", "again": "739162"}).headers["Location"] == "/chair/login"
    assert ChairPin(web_dir / "chair_pin.json", lockout_base=BASE).check("284915", 0.0).outcome is Outcome.ACCEPTED


def test_the_technician_resets_a_forgotten_pin(instance: Path, app: Any, clock: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert pin.main(["reset", str(instance)]) == 0
    assert "asks the chair for a new one" in capsys.readouterr().out
    assert not (instance / "chair_pin.json").exists()
    assert build_web(app, instance, clock).test_client().get("/chair").headers["Location"].startswith("/chair/login")
    assert pin.main(["reset", str(instance)]) == 0 and "no chair PIN was set" in capsys.readouterr().out


@pytest.mark.parametrize(("new", "again", "rule"), [
    ("123456", "123456", pin.PinRule.WEAK), ("0987654321", "0987654321", pin.PinRule.WEAK),
    ("901234", "901234", pin.PinRule.WEAK), ("1234567890123", "", pin.PinRule.LENGTH),
    ("12a456", "12a456", pin.PinRule.LENGTH), ("385027", "385072", pin.PinRule.MISMATCH),
    ("385027", "385027", None), ("112233", "112233", None)])
def test_pin_rules(new: str, again: str, rule: pin.PinRule | None) -> None:
    assert pin.pin_rule_broken(new, again) is rule


def test_a_damaged_pin_file_is_explained_in_the_page_language(app: Any, instance: Path, clock: Any) -> None:
    (instance / "chair_pin.json").write_text("{not json")
    client = build_web(app, instance, clock).test_client()
    post(client, "/lang/ru")
    response = post(client, "/chair/login", {"pin": CHAIR_PIN})
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and "Файл ПИН-кода председателя" in page and "damaged" not in page


@given(st.integers(min_value=0, max_value=40), st.floats(min_value=1, max_value=3600))
def test_lock_grows_and_never_shrinks(failures: int, base: float) -> None:
    assert lockout.lock_seconds(failures, base) <= lockout.lock_seconds(failures + 1, base)
    if failures < lockout.FREE_TRIES:
        assert lockout.lock_seconds(failures, base) == 0
    elif failures < lockout.FREE_TRIES + lockout.MAX_DOUBLINGS:
        assert lockout.lock_seconds(failures + 1, base) == 2 * lockout.lock_seconds(failures, base)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=30))
def test_failures_count_and_lock_never_moves_back(times: list[float]) -> None:
    state = lockout.Attempts()
    for i, now in enumerate(sorted(times), start=1):
        new = lockout.after_failure(state, now, BASE)
        assert new.failures == i and new.locked_until >= state.locked_until
        state = new


def disk_full(*_: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_lockout_holds_in_memory_when_the_pin_file_cannot_be_written(instance: Path, monkeypatch: Any) -> None:
    path = instance / "chair_pin.json"
    monkeypatch.setattr(pin, "write_private", disk_full)
    checker = ChairPin(path, lockout_base=BASE)
    outcomes = [checker.check("000000", 100.0).outcome for _ in range(30)]
    assert outcomes[:4] == [Outcome.WRONG] * 4 and set(outcomes[4:]) == {Outcome.LOCKED}
    assert checker.check(CHAIR_PIN, 100.0).outcome is Outcome.LOCKED
    assert json.loads(path.read_text())["failures"] == 0  # the file never took it: memory did
    monkeypatch.undo()                                     # space is back: the next check saves the lock
    assert checker.check(CHAIR_PIN, 101.0).outcome is Outcome.LOCKED
    assert ChairPin(path, lockout_base=BASE).attempts() == checker.attempts()
    assert checker.attempts().failures == 5


def test_a_right_pin_on_a_full_disk_still_logs_in(instance: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(pin, "write_private", disk_full)
    checker = ChairPin(instance / "chair_pin.json", lockout_base=BASE)
    checker.check("000000", 10.0)
    assert checker.check(CHAIR_PIN, 11.0).outcome is Outcome.ACCEPTED
    assert checker.attempts() == lockout.Attempts()  # memory holds the reset the file could not take


def test_thirty_wrong_pins_on_a_full_disk_lock_the_pin(client: FlaskClient, app: Any, monkeypatch: Any) -> None:
    """Issue: on a full disk every wrong PIN got HTTP 500, nothing locked, then the right PIN worked."""
    monkeypatch.setattr(pin, "write_private", disk_full)
    monkeypatch.setattr(app, "annotate", lambda topic, text: disk_full())  # the journal is full as well
    post(client, "/lang/ky")
    codes = [post(client, "/chair/login", {"pin": "111111"}).status_code for _ in range(30)]
    assert codes[:4] == [403] * 4 and set(codes[4:]) == {429}
    response = post(client, "/chair/login", {"pin": CHAIR_PIN})
    page = response.get_data(as_text=True)
    assert response.status_code == 429 and "30 секундага бөгөттөлдү" in page
    assert client.get("/chair").status_code == 303
