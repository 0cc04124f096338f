"""The units panel in real Chromium: desk-1's screen shows how far it holds each other unit and when it last
reached it, updates without a reload as the units sync, and the simulator panel's switch cuts a link."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import playwright_or_skip

from .stations import PINS, Station

pytestmark = pytest.mark.browser

sync_api = playwright_or_skip()
expect = sync_api.expect
WAIT_MS = 20_000  # how long a page may take to show what the units did
expect.set_options(timeout=WAIT_MS)


def test_the_units_panel_and_the_link_switch(station: Station, desk1_screen: str, browser: Any) -> None:
    station.apps["desk-2"].identify_manual(PINS[3])
    station.apps["desk-2"].identify_manual(PINS[4])
    context = browser.new_context(viewport={"width": 800, "height": 480}, locale="ru-RU", has_touch=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(desk1_screen + "/units")
    desk2 = page.locator('tr[data-unit="desk-2"]')
    expect(desk2).to_have_attribute("data-state", "not_reached")
    expect(desk2).to_contain_text("ни разу")
    assert page.evaluate("document.documentElement.scrollHeight") <= 480, "the panel fits the 800x480 screen"
    station.sync("desk-1")
    expect(desk2).to_have_attribute("data-state", "up_to_date")  # live, without a reload
    expect(desk2).to_contain_text("2 из 2")
    expect(page.locator('tr[data-unit="mobile"]')).to_have_attribute("data-state", "up_to_date")
    expect(page.locator("[data-units-state]")).to_have_attribute("data-units-state", "up_to_date")
    panel = context.new_page()
    panel.goto(desk1_screen + "/dev")
    panel.locator('button[data-unit-link="desk-2"]').tap()
    expect(panel.locator('button[data-unit-link="desk-2"]')).to_have_attribute("data-up", "1")
    expect(desk2).to_have_attribute("data-state", "cut")
    expect(desk2).to_contain_text("Связь разорвана")
    expect(page.locator("[data-units-state]")).to_have_attribute("data-units-state", "behind")
    assert "Cut the link" not in panel.content() and "Link cut" not in page.content()
    panel.locator('button[data-unit-link="desk-2"]').tap()
    expect(panel.locator('button[data-unit-link="desk-2"]')).to_have_attribute("data-up", "0")
    station.sync("desk-1")
    expect(desk2).to_have_attribute("data-state", "up_to_date")
    context.close()
