"""The TRAINING banner in a real browser: Chromium at 800x480 on ``pollbox run`` with a training package.

In Kyrgyz and in Russian, every screen the chair and an observer meet (status,
observer view, alarms, details, the reports, the PIN page, the chair's
pages) shows the banner in that language, at the top, within the screen
without scrolling and across its whole width; the close report and its QR
caption say TRAINING too. Nothing sleeps: every wait is on the DOM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo import DEMO_CHAIR_PIN, demo_pins
from tests.browser_kit import playwright_or_skip
from tests.process_station import RunningStation

from .kit import TrainingSetup

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
BANNER = {"ky": "ОКУУ РЕЖИМИ — машыгуу үчүн гана: бул жерде жазылгандардын эч бири шайлоодо эсепке алынбайт",
          "ru": "УЧЕБНЫЙ РЕЖИМ — только для обучения: ничего из записанного здесь не учитывается на выборах"}
REPORT_MARK = {"ky": "ОКУУ отчету", "ru": "УЧЕБНЫЙ отчёт"}
OPEN_PAGES = ["/", "/observer", "/observer?kiosk=1", "/alarms", "/details", "/report/zero", "/chair"]
CHAIR_PAGES = ["/chair", "/chair/manual", "/chair/alarms", "/chair/undo", "/chair/pause", "/chair/close",
               "/report/zero"]

sync_api = playwright_or_skip()
expect = sync_api.expect


@pytest.fixture
def station(tmp_path: Path) -> Iterator[RunningStation]:
    running = RunningStation(TrainingSetup.make(tmp_path).directory).start()
    yield running
    running.stop()


def banner_shown(page: Any, lang: str, where: str) -> None:
    """The banner is on the page in ``lang``, at the top of the 800x480 screen, full width, unscrolled."""
    banner = page.locator("#training-banner")
    expect(banner, where).to_be_visible(timeout=WAIT_MS)
    assert banner.inner_text().strip() == BANNER[lang], where
    box = banner.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 480, (where, box)
    assert box["width"] >= 780, (where, box)
    assert page.locator("html").get_attribute("lang") == lang, where


@pytest.mark.parametrize("lang", ["ky", "ru"])
def test_the_banner_is_on_every_screen(station: RunningStation, browser: Any, lang: str) -> None:
    base = f"http://127.0.0.1:{station.web_port}"
    ctx = browser.new_context(viewport={"width": 800, "height": 480}, locale="en-US")
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.new_page()
    page.goto(base + "/")
    page.locator(f"form.langs button[lang='{lang}']").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    for url in OPEN_PAGES:
        page.goto(base + url)
        banner_shown(page, lang, url)
        assert page.evaluate("document.documentElement.scrollHeight") <= 480, url  # the banner leaves the fit
    page.goto(base + "/chair")  # the PIN page
    for digit in DEMO_CHAIR_PIN:
        page.locator(f"[data-keypad] button[data-key='{digit}']").click()
    page.locator("button[data-submit]").click()
    expect(page.locator("[data-keypad]")).to_have_count(0)
    for url in CHAIR_PAGES:
        page.goto(base + url)
        banner_shown(page, lang, url)
    station.ok({"cmd": "open"})
    station.ok({"cmd": "manual", "number": demo_pins(1)[0]})
    station.ok({"cmd": "lid-open"})
    page.goto(base + "/")
    banner_shown(page, lang, "/ (open, with an alarm)")
    for alarm in station.status()["alarms"]:
        page.goto(base + f"/chair/alarms/{alarm['id']}")
        banner_shown(page, lang, "an alarm")
    station.ok({"cmd": "close"})
    page.goto(base + "/report/close")
    banner_shown(page, lang, "/report/close")
    marks = page.locator(".training-mark")
    expect(marks.first).to_contain_text(REPORT_MARK[lang])
    assert marks.count() == 2 or page.locator("figure.qr svg").count() == 0  # the QR's caption too, when signed
    ctx.close()
