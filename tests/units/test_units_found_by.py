"""How the ``/units`` page says each other unit was found: by the package's static address, on the LAN by
mDNS, or not found, next to when it was last heard, in the chair's language (ky, ru, en).

The data is the sync client's own (``PeerSeen.found_by``, set by the round that reached the peer): the
in-process tests drive real sync rounds between three appliances; the mDNS row is made by a real round
whose package address does not answer and whose discovered address (a stand-in name for what mDNS would
announce, resolved to the peer's real server) does. The browser test watches the row change live in
Chromium, and the process test reads the page served by ``pollbox run`` while two real units sync.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_kit import playwright_or_skip
from tests.web.conftest import CHAIR_PIN, build_web, post
from web_ui.pin import set_pin

from .stations import Station

ENGLISH = ("Found by", "package address", "LAN (mDNS)", "not found")
SHOWN = {
    "ky": {"head": "Кантип табылды", "package": "пакеттеги дарек", "mdns": "жергиликтүү тармак (mDNS)",
           "none": "табылган жок"},
    "ru": {"head": "Как найдено", "package": "адрес из пакета", "mdns": "локальная сеть (mDNS)",
           "none": "не найдено"},
    "en": {"head": "Found by", "package": "package address", "mdns": "LAN (mDNS)", "none": "not found"},
}


def _units_page(station: Station, tmp_path: Path, lang: str) -> Any:
    set_pin(tmp_path / "web" / "chair_pin.json", CHAIR_PIN)
    client = build_web(station.apps["desk-1"], tmp_path / "web", station.clock).test_client()
    assert post(client, "/chair/login", {"pin": CHAIR_PIN}).status_code == 303
    post(client, f"/lang/{lang}")
    return client


def _row(page: str, unit: str) -> str:
    return page.split(f'data-unit="{unit}"')[1].split("</tr>")[0]


@pytest.mark.parametrize("lang", ["ky", "ru", "en"])
def test_each_unit_says_how_it_was_found_in_the_chairs_language(station: Station, tmp_path: Path,
                                                                lang: str) -> None:
    client = _units_page(station, tmp_path, lang)
    words = SHOWN[lang]
    page = client.get("/units").get_data(as_text=True)
    assert words["head"] in page
    for unit in ("desk-2", "mobile"):
        row = _row(page, unit)
        assert 'data-found="none"' in row and words["none"] in row
    station.sync("desk-1")
    page = client.get("/units").get_data(as_text=True)
    for unit in ("desk-2", "mobile"):
        row = _row(page, unit)
        assert 'data-found="package"' in row and words["package"] in row
    assert 'data-unit="desk-1" data-state="own"' in page and 'data-found=""' in _row(page, "desk-1")
    if lang != "en":
        assert not [w for w in ENGLISH if w in page], "English on a translated units page"


def test_a_unit_reached_only_at_its_mdns_address_says_so(station: Station, tmp_path: Path) -> None:
    client_ = station.apps["desk-1"].unit_sync.client  # type: ignore[union-attr]
    static = {u.id: u.address for u in client_.units.units.peers}
    alias = {f"desk-2.announced.invalid:{static['desk-2'].rpartition(':')[2]}": static["desk-2"]}
    real_fetch = client_._fetch

    def lan(url: str, timeout: float, headers: dict[str, str]) -> bytes:
        """The package's address of desk-2 does not answer; the address announced for it reaches its server."""
        if f"//{static['desk-2']}/" in url:
            raise OSError("no answer at the package's address")
        for name, real in alias.items():
            url = url.replace(f"//{name}/", f"//{real}/")
        return real_fetch(url, timeout, headers)

    client_._fetch = lan
    client_._discovered = lambda unit: next(iter(alias)) if unit == "desk-2" else None
    station.sync("desk-1")
    page = _units_page(station, tmp_path, "ru").get("/units").get_data(as_text=True)
    desk2, mobile = _row(page, "desk-2"), _row(page, "mobile")
    assert 'data-state="up_to_date"' in desk2 and 'data-found="mdns"' in desk2
    assert "локальная сеть (mDNS)" in desk2 and "ни разу" not in desk2
    assert 'data-found="package"' in mobile and "адрес из пакета" in mobile
    station.apps["desk-1"].set_unit_link("desk-2", False)
    page = _units_page(station, tmp_path, "ru").get("/units").get_data(as_text=True)
    assert 'data-state="cut"' in _row(page, "desk-2") and 'data-found=""' in _row(page, "desk-2")


@pytest.mark.browser
def test_the_found_by_column_in_chromium_changes_live_in_kyrgyz(station: Station, desk1_screen: str,
                                                               browser: Any) -> None:
    expect = playwright_or_skip().expect
    context = browser.new_context(viewport={"width": 800, "height": 480}, locale="ky-KG", has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(desk1_screen + "/units")
    found = page.locator('tr[data-unit="desk-2"] td[data-found]')
    expect(found).to_have_attribute("data-found", "none")
    expect(found).to_have_text("табылган жок")
    expect(page.locator("thead")).to_contain_text("Кантип табылды")
    station.sync("desk-1")
    expect(found).to_have_attribute("data-found", "package", timeout=20_000)  # live, without a reload
    expect(found).to_have_text("пакеттеги дарек")
    assert page.evaluate("document.documentElement.scrollHeight") <= 480, "the panel fits the 800x480 screen"
    assert not [w for w in ENGLISH if w in page.content()]
    context.close()


@pytest.mark.slow
def test_the_units_page_of_a_running_unit_says_how_each_peer_was_found(tmp_path: Path) -> None:
    """Two ``pollbox run`` units sync over loopback; desk-1's page names desk-2 found by the package's
    address and the mobile unit (not started) not found, in the station's language."""
    from tests.units.test_units_process import SYNCED_WITHIN, Units

    units = Units(tmp_path / "units")
    try:
        units.start("desk-1")
        units.start("desk-2")
        units.wait_up_to_date("desk-1", "desk-2")
        deadline = time.monotonic() + SYNCED_WITHIN
        while True:
            code, body = units.running["desk-1"].http_get("/api/status?view=observer-units")
            assert code == 200
            html = json.loads(body)["html"]
            if 'data-found="package"' in _row(html, "desk-2"):
                break
            assert time.monotonic() < deadline, f"desk-2 not shown as found: {_row(html, 'desk-2')}"
            time.sleep(0.1)  # polling pace against a named deadline
        code, body = units.running["desk-1"].http_get("/units")
        page = body.decode()
        assert code == 200 and 'lang="ky"' in page
        assert 'data-found="package"' in _row(page, "desk-2") and SHOWN["ky"]["package"] in _row(page, "desk-2")
        assert 'data-found="none"' in _row(page, "mobile") and SHOWN["ky"]["none"] in _row(page, "mobile")
        assert not [w for w in ENGLISH if w in page]
    finally:
        units.stop_all()


def test_a_round_in_progress_keeps_the_last_rounds_word_until_it_ends(station: Station, tmp_path: Path) -> None:
    """While a round asks desk-2 again, the page still says desk-2 answered and how it was found (it used to say
    "not found, not reached" for as long as the round took: what a loaded unit's screen showed, flickering);
    a round in which desk-2 answers at no address says so once it ends."""
    client_ = station.apps["desk-1"].unit_sync.client  # type: ignore[union-attr]
    station.sync("desk-1")
    page = _units_page(station, tmp_path, "en")
    real_fetch = client_._fetch
    during: list[str] = []

    def watched(url: str, timeout: float, headers: dict[str, str]) -> bytes:
        if not during:
            during.append(_row(page.get("/units").get_data(as_text=True), "desk-2"))
        return real_fetch(url, timeout, headers)

    client_._fetch = watched
    station.sync("desk-1")
    assert 'data-state="up_to_date"' in during[0] and 'data-found="package"' in during[0], during[0]

    def silent(url: str, timeout: float, headers: dict[str, str]) -> bytes:
        if "//" + next(u.address for u in client_.units.units.peers if u.id == "desk-2") + "/" in url:
            raise OSError("desk-2 does not answer")
        return real_fetch(url, timeout, headers)

    client_._fetch = silent
    station.sync("desk-1")
    row = _row(page.get("/units").get_data(as_text=True), "desk-2")
    assert 'data-state="not_reached"' in row and 'data-found="none"' in row, row
