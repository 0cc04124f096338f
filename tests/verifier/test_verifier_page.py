"""The verifier page in real Chromium at phone size (390x844), reading QR codes from a fake camera.

Each case launches Chromium with ``--use-file-for-fake-video-capture`` playing a Y4M video of a QR code
drawn by the station's own close-report renderer (``web_ui.report.qr_svg``): the genuine close report of
a real polling day (``scene``), and every way a forger or an accident could change it. Linux Chromium has
no ``BarcodeDetector``, so these runs read every code with the zxing-wasm decoder built into the page.
Nothing sleeps: every wait is on the DOM.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from verifier_scene import Scene

from protocol.envelope import make_record, parse_line
from protocol.keys import public_b64
from receiver.registry import Registry, Revocation
from tests.browser_kit import PHONE, launch, playwright_or_skip
from verifier.fakecamera import camera_frames
from web_ui.report import qr_svg

pytestmark = pytest.mark.browser

CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
"""Chromium's fake camera, allowed without asking; each test names the video it shows."""
WAIT_MS = 30_000

sync_api = playwright_or_skip()
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def renderer(playwright: Any) -> Iterator[Any]:
    browser = launch(playwright, *CAMERA)
    yield browser.new_page()
    browser.close()


def qr_picture(renderer: Any, text: str) -> Image.Image:
    """The QR code of ``text`` as the station's close-report page draws it, photographed by the browser."""
    renderer.set_content(f'<body style="margin:0;background:#fff"><div id="qr" style="width:380px">'
                         f'{qr_svg(text)}</div></body>')
    renderer.add_style_tag(content="#qr svg{width:380px;height:auto;display:block}")
    return Image.open(io.BytesIO(renderer.locator("#qr svg").screenshot()))


def scan(playwright: Any, video: Path, url: str, cut_network: bool = False) -> tuple[Any, Any, Any]:
    """Open the page, start the camera showing ``video``, wait for the verdict; returns (browser, context, page)."""
    browser = launch(playwright, *CAMERA, f"--use-file-for-fake-video-capture={video}")
    context = browser.new_context(permissions=["camera"], **PHONE)
    page = context.new_page()
    page.goto(url)
    page.evaluate("window.pollboxVerifier.ready")
    if cut_network:
        context.route("**/*", lambda route: route.abort())
        context.set_offline(True)
    page.locator("#scan").tap()
    expect(page.locator("#verdict")).to_be_visible()
    return browser, context, page


def signed(scene: Scene, **change: Any) -> str:
    """The close report signed again, with the ``key``, ``at``, ``body`` or ``training`` flag changed."""
    fields = parse_line(scene.line).fields
    at = change.pop("at", None)
    when = at if at is not None else datetime.strptime(fields["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=UTC).timestamp()
    return make_record(key=change.pop("key", scene.device_key), station=fields["station"], seq=fields["seq"],
                       prev=fields["prev"], at=when, type_=fields["type"], body=change.pop("body", fields["body"]),
                       training=change.pop("training", False)).line()


def test_genuine_close_report_passes_with_the_chain_and_the_cec_proof(playwright: Any, renderer: Any,
                                                                      scene: Scene, tmp_path: Path) -> None:
    video = camera_frames(qr_picture(renderer, scene.line), tmp_path / "genuine.y4m")
    browser, _, page = scan(playwright, video, scene.url + "/verify/")
    try:
        verdict = page.locator("#verdict")
        assert verdict.get_attribute("data-state") == "valid"
        body = parse_line(scene.line).fields["body"]
        facts = page.locator("#facts").inner_text()
        assert "KG-DEMO-0001" in facts and str(body["ballots"]) in facts and str(body["identified"]) in facts
        expect(page.locator("#note-proof")).to_have_attribute("data-state", "proof_ok")
        expect(page.locator("#note-chain")).to_contain_text("previous record")
        size = "e => parseFloat(getComputedStyle(e).fontSize)"
        assert page.locator("#verdict-word").evaluate(size) >= 24 and page.locator("#facts td").nth(1).evaluate(size) >= 24
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "nothing may overflow the phone's width"
        timings = page.evaluate("window.pollboxTimings")
        assert timings["decoder"] == "zxing-wasm" and timings["verdict"] >= timings["qr_read"] >= timings["camera"]
        for lang, word in (("ru", "ДЕЙСТВИТЕЛЕН"), ("ky", "ЧЫН"), ("en", "VALID")):
            page.locator(f"#langs button[data-lang={lang}]").tap()
            expect(page.locator("#verdict-word")).to_contain_text(word)
        expect(page.locator("#registry")).to_contain_text("CEC signature checked")
    finally:
        browser.close()


BAD = {
    "altered": lambda s: s.line.replace(f'"ballots":{parse_line(s.line).fields["body"]["ballots"]},', '"ballots":70,'),
    "foreign_key": lambda s: signed(s, key=Ed25519PrivateKey.generate()),
    "wrong_election": lambda s: signed(s, at=1_800_000_000.0 - 365 * 86_400),
    "training": lambda s: signed(s, training=True),
    "not_ours": lambda s: "WIFI:S:school-net;T:WPA;P:secret;;",
    "truncated": lambda s: s.line[: len(s.line) * 2 // 3],
    "extra_bytes": lambda s: s.line + " 0000",
}
WORDS = {"altered": "altered", "foreign_key": "foreign key", "wrong_election": "wrong election",
         "training": "training record", "not_ours": "not a pollbox report", "truncated": "truncated",
         "extra_bytes": "extra bytes"}


@pytest.mark.parametrize("code", list(BAD))
def test_every_alteration_fails_with_its_reason(playwright: Any, renderer: Any, scene: Scene, tmp_path: Path,
                                                code: str) -> None:
    text = BAD[code](scene)
    assert text != scene.line
    video = camera_frames(qr_picture(renderer, text), tmp_path / f"{code}.y4m")
    browser, _, page = scan(playwright, video, scene.url + "/verify/")
    try:
        verdict = page.locator("#verdict")
        assert (verdict.get_attribute("data-state"), verdict.get_attribute("data-code")) == ("invalid", code)
        page.locator("#langs button[data-lang=en]").tap()
        expect(page.locator("#verdict-word")).to_contain_text(f"NOT VALID: {WORDS[code]}")
        assert page.locator("#verdict").evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(176, 0, 32)"
        assert page.locator("#facts tr").count() == 0
        page.locator("#langs button[data-lang=ru]").tap()
        expect(page.locator("#verdict-word")).to_contain_text("НЕДЕЙСТВИТЕЛЕН:")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        browser.close()


def test_network_cut_after_load_still_verifies_and_the_page_reloads_offline(playwright: Any, renderer: Any,
                                                                            scene: Scene, tmp_path: Path) -> None:
    video = camera_frames(qr_picture(renderer, scene.line), tmp_path / "offline.y4m")
    browser = launch(playwright, *CAMERA, f"--use-file-for-fake-video-capture={video}")
    try:
        context = browser.new_context(permissions=["camera"], **PHONE)
        page = context.new_page()
        page.goto(scene.url + "/verify/")
        page.evaluate("window.pollboxVerifier.ready")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        assert page.evaluate("document.querySelector('link[rel=manifest]').href").endswith("/verify/verify.webmanifest")
        page.reload()  # now under the service worker, which keeps the page
        page.evaluate("window.pollboxVerifier.ready")
        context.set_offline(True)
        page.reload()  # from the service worker's cache: the receiver is unreachable
        page.evaluate("window.pollboxVerifier.ready")
        page.locator("#scan").tap()
        expect(page.locator("#verdict")).to_have_attribute("data-state", "valid")
        expect(page.locator("#note-proof")).to_have_attribute("data-state", "proof_offline")
    finally:
        browser.close()


def test_standalone_file_with_a_revoked_key_offline(playwright: Any, renderer: Any, scene: Scene,
                                                     tmp_path: Path) -> None:
    """The single file built with a registry snapshot that revokes the station's key, opened with no network."""
    from verifier.build import build

    registry = Registry.load(scene.registry_path, scene.cec_key.public_key())
    record = parse_line(scene.line)
    registry.revoke(record.key, record.fields["station"], Revocation(
        at="2027-01-15T10:00:00.000000Z", reason="stolen", by="CEC duty officer", last_seq=record.seq - 1))
    registry.sign_and_save(tmp_path / "revoked.json", scene.cec_key)
    trust = {"cec_key": public_b64(scene.cec_key.public_key()), "receiver_key": scene.receiver_public,
             "registry": (tmp_path / "revoked.json").read_text(), "election": None, "receiver_url": None,
             "source": "built"}
    sizes = build(tmp_path / "page", trust)
    assert sizes["verify.html"] <= 1_000_000
    video = camera_frames(qr_picture(renderer, scene.line), tmp_path / "revoked.y4m")
    browser = launch(playwright, *CAMERA, f"--use-file-for-fake-video-capture={video}")
    try:
        context = browser.new_context(permissions=["camera"], offline=True, **PHONE)
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.goto((tmp_path / "page" / "verify.html").as_uri())
        page.evaluate("window.pollboxVerifier.ready")
        page.locator("#scan").tap()
        expect(page.locator("#verdict")).to_have_attribute("data-code", "revoked_key")
        expect(page.locator("#verdict-word")).to_contain_text("revoked key")
        assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
        ok = page.evaluate("async (line) => (await window.pollboxVerifier.check(line)).code",
                           signed(scene, body=json.loads(json.dumps(record.fields["body"]))))
        assert ok == "revoked_key"
    finally:
        browser.close()


def _standalone(scene: Scene, tmp_path: Path, registry_text: str) -> Path:
    from verifier.build import build

    trust = {"cec_key": public_b64(scene.cec_key.public_key()), "receiver_key": scene.receiver_public,
             "registry": registry_text, "election": None, "receiver_url": scene.url, "source": "built"}
    build(tmp_path / "page", trust)
    return tmp_path / "page" / "verify.html"


def test_file_page_refreshes_its_registry_from_the_receiver(renderer: Any, scene: Scene, tmp_path: Path) -> None:
    """Built before the station was enrolled, the file learns the registry in force when online."""
    empty = Registry()
    empty.sign_and_save(tmp_path / "empty.json", scene.cec_key)
    page_file = _standalone(scene, tmp_path, (tmp_path / "empty.json").read_text())
    context = renderer.context.browser.new_context(**PHONE)
    try:
        offline = context.new_page()
        context.set_offline(True)
        offline.goto(page_file.as_uri())
        offline.evaluate("window.pollboxVerifier.ready")
        assert offline.evaluate("async (l) => (await window.pollboxVerifier.check(l)).code", scene.line) == "foreign_key"
        offline.close()
        context.set_offline(False)
        online = context.new_page()
        online.goto(page_file.as_uri())
        online.evaluate("window.pollboxVerifier.ready")
        expect(online.locator("#registry")).to_contain_text("from the CEC server")
        assert online.evaluate("async (l) => (await window.pollboxVerifier.check(l)).ok", scene.line) is True
        expect(online.locator("#note-proof")).to_have_attribute("data-state", "proof_ok")
    finally:
        context.close()


def test_an_older_registry_from_the_receiver_never_undoes_a_revocation(renderer: Any, scene: Scene,
                                                                       tmp_path: Path) -> None:
    registry = Registry.load(scene.registry_path, scene.cec_key.public_key())
    record = parse_line(scene.line)
    registry.revoke(record.key, record.fields["station"], Revocation(
        at="2027-01-15T10:00:00.000000Z", reason="stolen", by="CEC duty officer", last_seq=1))
    registry.sign_and_save(tmp_path / "revoked.json", scene.cec_key)
    page_file = _standalone(scene, tmp_path, (tmp_path / "revoked.json").read_text())
    context = renderer.context.browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(page_file.as_uri())
        page.evaluate("window.pollboxVerifier.ready")
        assert page.evaluate("async (l) => (await window.pollboxVerifier.check(l)).code", scene.line) == "revoked_key"
        expect(page.locator("#registry")).to_contain_text("copy in this page")
    finally:
        context.close()


def test_a_page_without_a_registry_checks_nothing(renderer: Any, scene: Scene, tmp_path: Path) -> None:
    from verifier.build import build

    build(tmp_path / "bare")
    context = renderer.context.browser.new_context(offline=True, **PHONE)
    try:
        page = context.new_page()
        page.goto((tmp_path / "bare" / "verify.html").as_uri())
        page.evaluate("window.pollboxVerifier.ready")
        expect(page.locator("#registry")).to_contain_text("No device registry")
        assert page.evaluate("async (l) => (await window.pollboxVerifier.check(l)).code", scene.line) == "registry_bad"
        expect(page.locator("#verdict-word")).to_contain_text("NOT VALID: no device registry")
    finally:
        context.close()


def test_the_browsers_barcode_detector_is_used_where_there_is_one(playwright: Any, renderer: Any, scene: Scene,
                                                                  tmp_path: Path) -> None:
    """Linux Chromium has no BarcodeDetector: a stand-in one (answering what a phone's would) shows the page
    takes the browser's detector, for QR codes only, when there is one. The real detector is not run here."""
    video = camera_frames(qr_picture(renderer, scene.line), tmp_path / "detector.y4m")
    browser = launch(playwright, *CAMERA, f"--use-file-for-fake-video-capture={video}")
    try:
        context = browser.new_context(permissions=["camera"], **PHONE)
        context.add_init_script(f"""window.BarcodeDetector = class {{
            static async getSupportedFormats() {{ return ["qr_code", "ean_13"]; }}
            constructor(options) {{ window.detectorFormats = options.formats; }}
            async detect(source) {{ return source.videoWidth ? [{{rawValue: {json.dumps(scene.line)}}}] : []; }}
        }};""")
        page = context.new_page()
        page.goto(scene.url + "/verify/")
        page.evaluate("window.pollboxVerifier.ready")
        page.locator("#scan").tap()
        expect(page.locator("#verdict")).to_have_attribute("data-state", "valid")
        assert page.evaluate("window.pollboxTimings.decoder") == "BarcodeDetector"
        assert page.evaluate("window.detectorFormats") == ["qr_code"]
    finally:
        browser.close()


def test_a_second_units_close_report_is_checked_against_its_own_chain(playwright: Any, renderer: Any, scene: Scene,
                                                                     tmp_path: Path) -> None:
    """desk-2 of the same station, enrolled with its own key, signs its own chain (``"unit": "desk-2"``): its
    close report verifies, with the chain checked against desk-2's record 1 fetched with ``?unit=``."""
    from receiver.registry import DeviceEntry

    fields = parse_line(scene.line).fields
    key = Ed25519PrivateKey.generate()
    registry = Registry.load(scene.registry_path, scene.cec_key.public_key())
    registry.add(DeviceEntry(station=fields["station"], serial="SN-DESK-2", public_key=public_b64(key.public_key()),
                             key_id=signed_key_id(key), software="test", enrolled_at="2026-11-20T10:00:00.000000Z"))
    registry.sign_and_save(scene.registry_path, scene.cec_key)
    at = datetime.strptime(fields["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    journal = {"journal_seq": 1, "journal_hash": "ab" * 32}
    opened = make_record(key=key, station=fields["station"], seq=1, prev="0" * 64, at=at - 3600, unit="desk-2",
                         type_="polls_opened", body={"identified": 0, "ballots": 0, **journal})
    closed = make_record(key=key, station=fields["station"], seq=2, prev=opened.hash, at=at, unit="desk-2",
                         type_="polls_closed", body={"identified": 3, "ballots": 3, "difference": 0, "alarms_total": 0,
                                                     "alarms_open": 0, **journal, "journal_seq": 9})
    outcome = scene.receiver.ingestor.ingest_records([opened, closed], "test")
    assert outcome.rejection is None and outcome.accepted == 2, outcome
    video = camera_frames(qr_picture(renderer, closed.line()), tmp_path / "desk-2.y4m")
    browser, _, page = scan(playwright, video, scene.url + "/verify/")
    try:
        expect(page.locator("#verdict")).to_have_attribute("data-state", "valid")
        expect(page.locator("#note-chain")).to_contain_text("previous record")
        expect(page.locator("#note-proof")).to_have_attribute("data-state", "proof_ok")
    finally:
        browser.close()


def signed_key_id(key: Ed25519PrivateKey) -> str:
    from protocol.keys import key_id
    return key_id(key.public_key())
