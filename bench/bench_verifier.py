"""The observers' verifier page: its size, the time from a QR code in view to the verdict, the check alone.

The page is built (``verifier.build``) with a trust snapshot holding a CEC-signed registry of one device,
and opened from its file in Debian's Chromium at phone size with the network off. A close report signed by
that device is drawn as a QR code (segno, error correction M, as the station's close report draws it) and
played by Chromium's fake camera; Linux Chromium has no ``BarcodeDetector``, so the zxing-wasm decoder in
the page reads it.

* ``size``: bytes of ``verify.html`` (the budget is 1,000,000); baseline: the same page with the decoder's
  WebAssembly inlined as plain base64, as the build would make it without compressing it.
* ``QR in view to verdict``: from the camera stream playing (the code is in view from its first frame) to
  the verdict on screen, including the decoder's start; median of several fresh browsers. Baseline: from
  the same page, the verdict for the same line typed in (no camera, no decoding).
* ``verification``: the page's checks alone (parse, registry lookup, WebCrypto Ed25519, SHA-256) for one
  line, median; baseline: ``tools.verify_report.verify_line`` in Python (cryptography) on the same line.
"""

from __future__ import annotations

import base64
import gzip
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from protocol.chain import ZERO_HASH
from protocol.envelope import make_record
from protocol.keys import key_id, public_b64
from receiver.registry import DeviceEntry, Registry
from tools.verify_report import verify_line
from verifier.build import ZXING, build
from verifier.fakecamera import camera_frames

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
                         "has_touch": True}
BODY = {"identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2, "alarms_open": 0,
        "journal_seq": 1711, "journal_hash": "5e" * 32}


def _page(directory: Path) -> tuple[Path, str, dict[str, int], Any]:
    """The built page with a one-device registry, and a close report that device signed."""
    cec, device = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    registry = Registry()
    registry.add(DeviceEntry(station="KG-0001", serial="SN-1", public_key=public_b64(device.public_key()),
                             key_id=key_id(device.public_key()), software="bench",
                             enrolled_at="2026-11-20T10:00:00.000000Z"))
    registry.sign_and_save(directory / "registry.json", cec)
    trust = {"cec_key": public_b64(cec.public_key()), "receiver_key": None, "election": None, "receiver_url": None,
             "registry": (directory / "registry.json").read_text(), "source": "built"}
    sizes = build(directory / "page", trust)
    line = make_record(key=device, station="KG-0001", seq=57, prev=ZERO_HASH, at=1_800_000_000.0,
                       type_="polls_closed", body=BODY).line()
    return directory / "page" / "verify.html", line, sizes, device.public_key()


def _plain_size(sizes: dict[str, int]) -> int:
    """The page's size had the WebAssembly been inlined as plain base64 instead of gzip then base64."""
    wasm = (ZXING / "dist" / "reader" / "zxing_reader.wasm").read_bytes()
    packed = len(base64.b64encode(gzip.compress(wasm, 9, mtime=0)))
    return sizes["verify.html"] - packed + len(base64.b64encode(wasm))


def _browser_runs(page: Path, line: str, directory: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    from playwright.sync_api import expect, sync_playwright

    picture = Image.open(_qr_png(line, directory))
    video = camera_frames(picture, directory / "qr.y4m")
    to_verdict, typed, checks = [], [], []
    with sync_playwright() as p:
        for _ in range(runs):
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=[*ARGS, f"--use-file-for-fake-video-capture={video}"])
            try:
                context = browser.new_context(permissions=["camera"], offline=True, **PHONE)
                tab = context.new_page()
                tab.goto(page.as_uri())
                tab.evaluate("window.pollboxVerifier.ready")
                tab.locator("#scan").tap()
                expect(tab.locator("#verdict")).to_have_attribute("data-state", "valid", timeout=60_000)
                t = tab.evaluate("window.pollboxTimings")
                to_verdict.append(t["verdict"] - t["camera"])
                typed.append(tab.evaluate("""async (line) => { const s = performance.now();
                    await window.pollboxVerifier.check(line); return performance.now() - s; }""", line))
                checks.extend(tab.evaluate("""async (line) => { const out = [];
                    for (let i = 0; i < 20; i++) { await window.pollboxVerifier.check(line);
                      out.push(window.pollboxTimings.verify_ms); } return out; }""", line))
            finally:
                browser.close()
    return to_verdict, typed, checks


def _qr_png(line: str, directory: Path) -> Path:
    path = directory / "qr.png"
    segno.make(line, error="m", micro=False).save(str(path), scale=4, border=4)
    return path


def _python_check_ms(line: str, public: Any, repeat: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        assert verify_line(line, public).valid
    return (time.perf_counter() - start) * 1000 / repeat


def _entry(name: str, value: float, unit: str, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 3), "unit": unit, "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 4)}


def run(quick: bool = False) -> list[dict[str, Any]]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing (Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-verifier-") as tmp:
        directory = Path(tmp)
        page, line, sizes, public = _page(directory)
        to_verdict, typed, checks = _browser_runs(page, line, directory, 2 if quick else 5)
        python_ms = _python_check_ms(line, public)
    print(f"   verifier: page {sizes['verify.html']:,} bytes; QR in view to verdict "
          f"{statistics.median(to_verdict):.0f} ms (typed {statistics.median(typed):.1f} ms); "
          f"check {statistics.median(checks):.2f} ms (Python {python_ms:.2f} ms)", flush=True)
    return [
        _entry("verifier page size, one file with the zxing-wasm decoder (vs plain base64 WebAssembly)",
               sizes["verify.html"], "bytes", _plain_size(sizes)),
        _entry("verifier page, close-report QR in view to verdict, Chromium fake camera (vs the line typed in)",
               statistics.median(to_verdict), "ms", statistics.median(typed)),
        _entry("verifier page, checks of one close report in Chromium (vs Python verify_line)",
               statistics.median(checks), "ms", python_ms),
    ]
