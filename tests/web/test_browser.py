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

from tests.browser_kit import CHROMIUM, playwright_or_skip
from web_ui.pin import set_pin

from .live_station import LiveStation

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ["POLLBOX_SCREENSHOTS"]) if os.environ.get("POLLBOX_SCREENSHOTS") else None
WAIT_MS = 60_000
"""How long a browser action or expectation may wait (a bound, not a measure: a passing run never waits it out).
A screenshot once took over 20 s on a machine whose two cores were also running an emulated unit's boot."""

sync_api = playwright_or_skip()
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)


NEW_PIN = "385027"

FITS = """() => {
  const out = {height: document.documentElement.scrollHeight, small_targets: [], small_text: []};
  const seen = (el) => { const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== "hidden" && r.bottom > 0 && r.top < 480; };
  for (const el of document.querySelectorAll("a, button, input:not([type=hidden]), label.check")) {
    if (!seen(el) || el.closest("label.check") && el.tagName === "INPUT") continue;
    const r = el.getBoundingClientRect();
    if (r.height < 48 || r.width < 48) out.small_targets.push(el.outerHTML.slice(0, 80) + " " + r.width + "x" + r.height);
  }
  for (const el of document.querySelectorAll("body *:not(svg):not(svg *)")) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (own && seen(el) && parseFloat(getComputedStyle(el).fontSize) < 16)
      out.small_text.push(el.tagName + ": " + el.textContent.trim().slice(0, 40));
  }
  return out;
}"""


@pytest.fixture
def station(station_dir: Path, tmp_path: Path, clock: Any, pins: list[str]) -> Iterator[LiveStation]:
    live = LiveStation(station_dir, tmp_path / "web", clock, pins[:8])  # no chair PIN yet: a first start
    live.start()
    yield live
    live.stop()


def shot(page: Any, name: str) -> None:
    """Screenshot the page as it is now; kept as ``name``.png when screenshots are wanted."""
    page.wait_for_load_state()
    png = page.screenshot()
    assert png.startswith(b"\x89PNG")
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{name}.png").write_bytes(png)


def fits(page: Any, name: str) -> None:
    """The page as it is now fits the 800x480 screen, with touch targets and text large enough; screenshot."""
    page.wait_for_load_state()
    found = page.evaluate(FITS)
    assert found["height"] <= 480, f"{name}: {found['height']} px tall"
    assert found["small_targets"] == [], name
    assert found["small_text"] == [], name
    shot(page, name)


def new_page(browser: Any) -> Any:
    ctx = browser.new_context(viewport={"width": 800, "height": 480}, locale="en-US", has_touch=True)
    ctx.set_default_timeout(WAIT_MS)
    return ctx.new_page()


class Taps:
    """Counts the taps each of the chair's tasks takes."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.task = ""

    def __call__(self, page: Any, selector: str) -> None:
        page.locator(selector).first.tap()
        self.counts[self.task] = self.counts.get(self.task, 0) + 1

    def digits(self, page: Any, digits: str) -> None:
        for digit in digits:
            self(page, f"[data-keypad] button[data-key='{digit}']")


def test_the_chairs_day_by_touch_alone(station: LiveStation, browser: Any, clock: Any, pins: list[str]) -> None:
    base, app, tap = station.url, station.appliance, Taps()
    assert app is not None
    board = new_page(browser)  # the status screen, left open: it must update by itself
    board.goto(base + "/")
    expect(board.locator("#poll-badge")).to_contain_text("Not yet open")
    fits(board, "status-setup")

    chair = new_page(browser)
    chair.goto(base + "/")
    tap.task = "set the PIN"
    tap(chair, "a.button:has-text('Chair')")
    expect(chair.locator("h1")).to_have_text("Set the chair PIN")
    tap.digits(chair, NEW_PIN)
    tap(chair, "[data-keypad] button[data-key=enter]")
    tap.digits(chair, NEW_PIN)
    fits(chair, "pin-setup")
    tap(chair, "button[data-submit]")
    expect(chair.locator(".banner.ok")).to_contain_text("The chair PIN is set")
    fits(chair, "chair")

    tap.task = "open the polls"
    tap(chair, "a.button:has-text('Show the zero report')")
    expect(chair.locator(".verdict.ok")).to_be_visible()
    fits(chair, "zero-report")
    tap(chair, "button:has-text('Open the polls')")
    expect(chair.locator(".banner.ok")).to_have_text("The polls are open.")

    desk = new_page(browser)  # the simulator panel (simulation only) scans the first voter
    desk.goto(base + "/dev")
    with desk.expect_navigation():  # the form posts and comes back to /dev: a screenshot taken mid-way can hang
        desk.locator("form.inline button").first.tap()
    shot(desk, "devpanel")
    expect(board.locator(".decision")).to_have_attribute("data-outcome", "admitted")
    expect(board.locator("[data-counter=identified]")).to_have_text("1")
    fits(board, "decision-admitted")

    tap.task = "type a number by hand"
    tap(chair, "a.button:has-text('Type a number by hand')")
    tap.digits(chair, pins[1])
    tap(chair, "button:has-text('Check')")
    expect(chair.locator(".decision")).to_have_attribute("data-outcome", "admitted")
    clock.advance(app.delays.duplicate_read_window + 1)
    tap.task = "the next number by hand"
    tap.digits(chair, pins[1])
    tap(chair, "button:has-text('Check')")
    expect(chair.locator(".decision")).to_have_attribute("data-outcome", "already_voted")
    expect(chair.locator(".decision .outcome")).to_have_text("Already voted")
    fits(chair, "manual-already-voted")
    expect(board.locator(".decision")).to_have_attribute("data-outcome", "already_voted")
    fits(board, "decision-already-voted")

    line = str(app.status()["last_decision"]["line"])
    tap.task = "undo a check-in"
    tap(chair, "a.back")
    tap(chair, "a.button:has-text('Undo a check-in')")
    tap.digits(chair, line)
    tap(chair, "[data-keypad] button[data-key=enter]")
    expect(chair.locator("[data-keypad] button[data-key=layout]")).to_be_visible()  # the text keypad now
    tap(chair, "button[data-pick]")
    fits(chair, "undo")
    tap(chair, "button:has-text('Undo the check-in')")
    expect(chair.locator(".banner.ok")).to_contain_text(f"list line {line} was undone")
    for letter in "ab":  # the text keypad types too, in the screen's layouts
        chair.goto(base + "/chair/pause")
        chair.locator(f"[data-keypad] button[data-key='{letter}']").first.tap()
        assert chair.locator("input[name=reason]").input_value() == letter.upper()

    chair.goto(base + "/chair")
    expect(chair.locator("[data-chair-alarms]")).to_have_text("Alarms: 0")
    app.sim.box.open_lid()  # type: ignore[union-attr]
    app.sim.scanner.unplug()  # type: ignore[union-attr]
    expect(chair.locator("[data-chair-alarms]")).to_have_text("Alarms: 2")  # the chair's menu follows too
    top = board.locator("article.alarm.top")
    expect(top).to_have_attribute("data-alarm-kind", "lid_opened")
    expect(top.locator("[data-still-open]")).to_be_visible()
    expect(board.locator("[data-more-alarms]")).to_have_text("1 more alarm")
    fits(board, "alarm")
    board.locator("[data-more-alarms]").tap()
    expect(board.locator("article.alarm")).to_have_count(2)
    fits(board, "alarms")
    board.locator("a.back").tap()
    app.sim.box.close_lid()  # type: ignore[union-attr]
    expect(top.locator("[data-still-open]")).to_have_count(0)

    chair.goto(base + "/")
    tap.task = "acknowledge an alarm"
    tap(chair, "article.alarm.top a.button:has-text('Acknowledge')")
    tap(chair, "button[data-pick]")
    fits(chair, "acknowledge")
    tap(chair, "button:has-text('Acknowledge')")
    expect(chair.locator(".banner.ok")).to_have_text("Alarm acknowledged.")
    expect(board.locator("article.alarm.top")).to_have_attribute("data-alarm-kind", "scanner_lost")

    board.locator("a.button:has-text('Observers')").tap()
    expect(board.locator("[data-counter=identified]")).to_have_text("1")
    assert board.locator("#live form").count() == 0
    board.locator("a.back").tap()
    expect(board).to_have_url(base + "/")
    board.locator("a.button:has-text('Observers')").tap()
    expect(board).to_have_url(base + "/")  # untouched, the observer view goes back by itself
    observer = new_page(browser)
    observer.goto(base + "/observer")
    fits(observer, "observer")
    board.locator("a.button:has-text('Details')").tap()
    expect(board.locator("svg.chart")).to_be_visible()
    fits(board, "details")
    board.locator("a.back").tap()

    for lang, words, name in (("ru", "Голосование открыто", "status-ru"), ("ky", "Добуш берүү ачык", "status-ky")):
        board.locator(f"button[lang={lang}]").tap()
        expect(board.locator("#poll-badge")).to_have_text(words)
        fits(board, name)

    tap.task = "close the polls"
    chair.goto(base + "/chair")
    tap(chair, "a.button:has-text('Close the polls')")
    tap(chair, "input[name=confirm]")
    fits(chair, "close-confirm")
    tap(chair, "button.danger")
    expect(chair.locator("h1")).to_have_text("Close report")
    fits(chair, "close-report")
    chair.locator("details.report-alarms summary").tap()
    expect(chair.locator("table.list")).to_be_visible()
    expect(board.locator("#poll-badge")).to_contain_text("жабылды")
    _read_qr_if_signed(chair, station)
    print("taps per task:", tap.counts)
    assert tap.counts == {"set the PIN": 15, "open the polls": 2, "type a number by hand": 2 + len(pins[1]),
                          "the next number by hand": 1 + len(pins[1]),
                          "undo a check-in": 5 + len(line), "acknowledge an alarm": 3, "close the polls": 3}


def test_logging_in_by_touch(station: LiveStation, browser: Any) -> None:
    set_pin(station.instance / "chair_pin.json", NEW_PIN)
    page, tap = new_page(browser), Taps()
    page.goto(station.url + "/")
    tap.task = "log in"
    tap(page, "a.button:has-text('Chair')")
    expect(page.locator("h1")).to_have_text("Chair PIN")
    tap.digits(page, NEW_PIN)
    fits(page, "login")
    tap(page, "button[data-submit]")
    expect(page.locator("a.button:has-text('Show the zero report')")).to_be_visible()
    assert tap.counts == {"log in": 8}


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


def test_banner_when_a_hung_unit_stops_sending(station: LiveStation, browser: Any) -> None:
    """The connection stays open but nothing comes (a hung server): the page still says so."""
    page = new_page(browser)
    page.route("**/events*", lambda route: None)  # the stream is accepted and never answered
    page.route("**/api/status*", lambda route: None)
    page.goto(station.url + "/")
    expect(page.locator("#conn-lost")).to_be_visible()
    assert page.evaluate(FITS)["height"] <= 480


def test_alarm_list_and_details_update_without_a_reload(station: LiveStation, browser: Any) -> None:
    """The alarm list and the details page follow the unit like the status screen, and say when it is lost."""
    app = station.appliance
    assert app is not None
    alarms, details = new_page(browser), new_page(browser)
    alarms.goto(station.url + "/alarms")
    details.goto(station.url + "/details?view=observer")
    for page in (alarms, details):
        page.wait_for_function("document.querySelector('#live') !== null")
        page.evaluate("window.notReloaded = true")  # gone if the page were loaded again
    expect(alarms.locator(".alarm-list p.none")).to_be_visible()
    expect(details.locator("#poll-badge")).to_contain_text("Not yet open")

    app.sim.box.open_lid()  # type: ignore[union-attr]
    card = alarms.locator("article.alarm[data-alarm-kind=lid_opened]")
    expect(card).to_be_visible()
    expect(card.locator("[data-still-open]")).to_be_visible()
    expect(alarms.locator(".alarm-list .count")).to_have_text("1")
    fits(alarms, "alarms-live")
    app.sim.box.close_lid()  # type: ignore[union-attr]
    expect(card.locator("a.button:has-text('Acknowledge')")).to_be_visible()  # resolved: it may be acknowledged

    app.open_polls()
    expect(details.locator("#poll-badge")).to_contain_text("Polls open")
    scanner = details.locator(".health dd").nth(4)
    expect(scanner).to_have_text("connected")
    app.sim.scanner.unplug()  # type: ignore[union-attr]
    expect(scanner).to_have_text("disconnected")
    assert details.locator("#live a.button:has-text('Acknowledge')").count() == 0  # opened from the observer view
    fits(details, "details-live")
    assert alarms.evaluate("window.notReloaded") and details.evaluate("window.notReloaded")

    station.stop()
    for page in (alarms, details):
        expect(page.locator("#conn-lost")).to_be_visible()
    assert alarms.evaluate(FITS)["height"] <= 480
    shot(alarms, "alarms-connection-lost")


def test_every_chair_page_fits_in_kyrgyz_and_russian(station: LiveStation, browser: Any) -> None:
    """Longer Kyrgyz and Russian labels must not push any page past 480 px (the undo form once did, by 20 px)."""
    set_pin(station.instance / "chair_pin.json", NEW_PIN)
    app = station.appliance
    assert app is not None
    app.open_polls()
    app.sim.box.open_lid()  # type: ignore[union-attr]
    app.sim.scanner.unplug()  # type: ignore[union-attr]
    page = new_page(browser)
    page.goto(station.url + "/chair")
    for digit in NEW_PIN:
        page.locator(f"[data-keypad] button[data-key='{digit}']").tap()
    with page.expect_navigation():
        page.locator("button[data-submit]").tap()
    for lang in ("ky", "ru"):
        with page.expect_navigation():
            page.locator(f"button[lang={lang}]").tap()
        for path in ("/", "/alarms", "/details", "/chair", "/chair/alarms", "/chair/manual", "/chair/undo",
                     "/chair/pause", "/chair/close", "/report/zero"):
            page.goto(station.url + path)
            found = page.evaluate(FITS)
            name = f"{lang} {path}"
            assert found["height"] <= 480, f"{name}: {found['height']} px tall"
            assert found["small_targets"] == [] and found["small_text"] == [], (name, found)
