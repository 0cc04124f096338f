"""Readiness is not READY until the chair has set the PIN on the unit's screen."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from provisioning.readiness import _chair_pin
from web_ui.pin import set_pin


def config(tmp_path: Path) -> Any:
    return SimpleNamespace(web_dir=tmp_path / "web")


def test_no_pin_is_not_ready_and_says_who_sets_it(tmp_path: Path) -> None:
    check = _chair_pin(config(tmp_path))
    assert not check.ok and "the chair sets it on the unit's screen" in check.detail


def test_a_damaged_or_foreign_pin_file_is_not_ready(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    for text in ("{not json", '{"format": "something-else"}', "[]"):
        (tmp_path / "web" / "chair_pin.json").write_text(text)
        check = _chair_pin(config(tmp_path))
        assert not check.ok and "reset" in check.detail


def test_a_pin_set_on_the_screen_is_ready_and_never_shown(tmp_path: Path) -> None:
    set_pin(tmp_path / "web" / "chair_pin.json", "385027")
    check = _chair_pin(config(tmp_path))
    assert check.ok and "385027" not in check.detail
