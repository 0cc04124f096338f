"""The screen's own font covers every character the screen can show, in every language, and is served."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tools import fontbuild

FONTS = fontbuild.TARGET_DIR


def cmap(path: Path) -> set[int]:
    from fontTools.ttLib import TTFont
    with TTFont(str(path)) as font:
        return set(font.getBestCmap())


@pytest.mark.parametrize("face", sorted(fontbuild.FACES.values()))
def test_the_shipped_font_has_every_character_the_screen_uses(face: str) -> None:
    covered = cmap(FONTS / face)
    missing = sorted({ch for ch in fontbuild.used_text() if ch.isprintable() and not ch.isspace()
                      and ord(ch) not in covered})
    assert missing == [], f"{face} lacks {''.join(missing)!r}: run make fonts"
    assert {ord(ch) for ch in "ҢңӨөҮү№«»—…✓⚠○◷−←⌫"} <= covered


def test_a_character_outside_the_font_is_found() -> None:
    covered = cmap(FONTS / "pollbox-sans.woff2")
    assert ord("ᚠ") not in covered and ord("ᚠ") in fontbuild.wanted(["ᚠ"])


def test_the_shipped_fonts_are_what_the_build_makes(tmp_path: Path) -> None:
    if not (fontbuild.SOURCE_DIR / "DejaVuSans.ttf").exists():
        if os.environ.get("CI"):
            raise RuntimeError("install Debian's fonts-dejavu-core to check the shipped fonts")
        pytest.skip("fonts-dejavu-core is not installed")
    built = fontbuild.build(target_dir=tmp_path)
    for path in built:
        assert cmap(path) == cmap(FONTS / path.name), f"{path.name} is stale: run make fonts"
    assert (FONTS / "LICENSE-DejaVu.txt").read_text() == (tmp_path / "LICENSE-DejaVu.txt").read_text()


def test_the_page_preloads_the_fonts_and_they_are_served(client: FlaskClient, app: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    for face in fontbuild.FACES.values():
        assert f"/static/fonts/{face}" in page
        with client.get(f"/static/fonts/{face}") as served:
            assert served.status_code == 200 and served.mimetype == "font/woff2"
            assert served.data == (FONTS / face).read_bytes()
