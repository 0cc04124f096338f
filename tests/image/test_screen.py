"""The display classifier of the boot tests (``screen.classify``) held to frames known to be right.

The browser tests' screenshots of the chair's status screen (Chromium at 800x480, ``docs/screenshots``)
must read as the status screen; a frame of one colour as blank; a mostly black frame with a little
text as the console. Fast: no image, no virtual machine.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from .screen import classify

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_the_browser_tests_status_screens_read_as_the_status_screen() -> None:
    for name in ("status-setup.png", "status-ky.png", "status-ru.png"):
        assert classify(SHOTS / name) == "status", name


def test_blank_and_console_frames_are_told_apart(tmp_path: Path) -> None:
    Image.new("RGB", (640, 400), (0, 0, 0)).save(tmp_path / "black.png")
    assert classify(tmp_path / "black.png") == "blank"
    console = Image.new("RGB", (640, 400), (0, 0, 0))
    draw = ImageDraw.Draw(console)
    for row in range(0, 400, 16):
        draw.text((4, row), "[  OK  ] Started something.service.", fill=(170, 170, 170))
    console.save(tmp_path / "console.png")
    assert classify(tmp_path / "console.png") == "console"
    refusal = Image.new("RGB", (640, 400), (253, 230, 227))
    ImageDraw.Draw(refusal).rectangle((100, 60, 130, 340), fill=(163, 20, 12))
    refusal.save(tmp_path / "refusal.png")
    assert classify(tmp_path / "refusal.png") == "refusal"
