"""The chair's screen in a real browser: Debian's Chromium driven by Playwright, 800x480.

One station runs in this process (appliance on a fake clock, waitress on a
free loopback port). The test walks through a polling day as the chair and
an observer would, taking a screenshot of each screen at 800x480. They are
saved where ``POLLBOX_SCREENSHOTS`` says: ``make test`` and ``make screenshots``
set it to docs/screenshots/ (shown in the README and the chair's guide); a bare
pytest run saves nothing. Nothing sleeps: every wait is on the DOM.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from web_ui.pin import set_pin

from .conftest import CHAIR_PIN
from .live_station import LiveStation

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ["POLLBOX_SCREENSHOTS"]) if os.environ.get("POLLBOX_SCREENSHOTS") else None
WAIT_MS = 20_000

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests")
    pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def station(station_dir: Path, tmp_path: Path, clock: Any, pins: list[str]) -> Iterator[LiveStation]:
    set_pin(tmp_path / "web" / "chair_pin.json", CHAIR_PIN)
    live = LiveStation(station_dir, tmp_path / "web", clock, pins[:8])
    live.start()
    yield live
    live.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    """Screenshot the page as it is now; kept as ``name``.png when screenshots are wanted."""
    page.wait_for_load_state()
    page.bring_to_front()
    png = page.screenshot()
    assert png.startswith(b"\x89PNG")
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{name}.png").write_bytes(png)


def new_page(browser: Any, context: Any = None) -> Any:
    ctx = context or browser.new_context(viewport={"width": 800, "height": 480}, locale="en-US")
    ctx.set_default_timeout(WAIT_MS)
    return ctx.new_page()


def sim(page: Any, base: str, action: str) -> None:
    page.goto(f"{base}/dev")
    page.click(f"button[data-sim='{action}']")


def login(page: Any, base: str) -> None:
    page.goto(f"{base}/chair")
    expect(page.locator("h1")).to_have_text("Chair PIN")
    for digit in CHAIR_PIN:
        page.click(f".keypad button[data-key='{digit}']")
    shot(page, "login")
    page.click(".keypad button[type=submit]")
    expect(page.locator("h2").first).to_have_text("The polls")


def test_a_polling_day_in_the_browser(station: LiveStation, browser: Any, clock: Any, pins: list[str]) -> None:
    base = station.url
    chair = new_page(browser)
    board = new_page(browser)  # the status screen, left open: it must update by itself
    board.goto(base + "/")
    expect(board.locator("#poll-badge")).to_contain_text("Not yet open")
    shot(board, "status-setup")

    login(chair, base)
    chair.click("a.button:has-text('Show the zero report')")
    expect(chair.locator(".verdict.ok")).to_be_visible()
    shot(chair, "zero-report")
    chair.click("button:has-text('Open the polls')")
    expect(chair.locator(".banner.ok")).to_have_text("The polls are open.")

    desk = new_page(browser)
    desk.goto(base + "/dev")
    desk.fill("#text", pins[0])
    desk.click("button:has-text('Scan')")
    shot(desk, "devpanel")
    decision = board.locator(".decision")
    expect(decision).to_have_attribute("data-outcome", "admitted")
    expect(board.locator("[data-counter=identified]")).to_have_text("1")
    shot(board, "decision-admitted")

    sim(desk, base, "drop")
    expect(board.locator("[data-counter=ballots]")).to_have_text("1")
    expect(board.locator(".counter.diff")).to_contain_text("Counts match")

    clock.advance(station.appliance.delays.duplicate_read_window + 1)  # type: ignore[union-attr]
    desk.goto(base + "/dev")
    desk.fill("#text", pins[0])
    desk.click("button:has-text('Scan')")
    expect(decision).to_have_attribute("data-outcome", "already_voted")
    expect(decision).to_contain_text("First identified at")
    shot(board, "decision-already-voted")

    sim(desk, base, "lid-open")
    alarm = board.locator("article.alarm[data-alarm-kind=lid_opened]")
    expect(alarm).to_contain_text("Pause the polls, close and seal the lid")
    board.evaluate("document.querySelector('.alarms').scrollIntoView()")
    shot(board, "alarm")
    sim(desk, base, "lid-close")
    chair.goto(base + "/chair")
    chair.fill("form.alarm input[name=note]", "lid sealed again in front of observers")
    chair.click("form.alarm button")
    expect(chair.locator(".banner.ok")).to_contain_text("acknowledged")
    shot(chair, "chair")
    expect(board.locator(".alarms .none")).to_be_visible()

    board.click("button[lang=ru]")
    expect(board.locator("#poll-badge")).to_have_text("Голосование открыто")
    shot(board, "status-ru")
    board.click("button[lang=ky]")
    expect(board.locator("#poll-badge")).to_have_text("Добуш берүү ачык")
    shot(board, "status-ky")

    observer = new_page(browser)
    observer.goto(base + "/observer")
    expect(observer.locator("[data-counter=identified]")).to_have_text("1")
    assert observer.locator("#live form").count() == 0
    shot(observer, "observer")

    chair.goto(base + "/chair/close")
    chair.check("input[name=confirm]")
    shot(chair, "close-confirm")
    chair.click("button.danger")
    expect(chair.locator("h1")).to_have_text("Close report")
    shot(chair, "close-report")
    expect(board.locator("#poll-badge")).to_contain_text("жабылды")
    _read_qr_if_signed(chair, station)


def _read_qr_if_signed(page: Any, station: LiveStation) -> None:
    """When the appliance provides the signed close record, the QR on screen must read back as it."""
    report = station.appliance.close_report()  # type: ignore[union-attr]
    if report is None or not report.get("signed"):
        assert page.locator("figure.qr svg").count() == 0
        return
    import io

    import zxingcpp
    from PIL import Image
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(page.locator("figure.qr svg").screenshot())))
    assert [r.text for r in found] == [report["signed"]]


def test_banner_while_the_station_restarts(station: LiveStation, browser: Any, pins: list[str]) -> None:
    page = new_page(browser)
    page.goto(station.url + "/")
    expect(page.locator("#live")).to_be_visible()
    page.wait_for_function("document.querySelector('#live').dataset.view === 'status'")
    station.stop()
    expect(page.locator("#conn-lost")).to_be_visible()
    shot(page, "connection-lost")
    station.start()
    station.appliance.sim.feed(pins[1])  # type: ignore[union-attr]
    expect(page.locator("#conn-lost")).to_be_hidden()
    expect(page.locator(".decision")).to_have_attribute("data-outcome", "polls_not_open")


def test_chromium_is_debian_s(browser: Any) -> None:
    assert shutil.which("chromium") == str(CHROMIUM) and browser.version
