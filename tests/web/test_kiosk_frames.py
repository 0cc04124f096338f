"""The kiosk's frame heartbeat (``web_ui/kiosk.py``, ``static/live.js``) and its supervisor
(``device/kiosk.py``) through the real processes.

- In the app: both routes answer only a loopback peer, the beat needs the page's CSRF token, and the
  count is one number, nothing else.
- Through ``pollbox run``: a beat posted the way the page does raises the count; the real supervisor
  (``python -m device.kiosk``) run against it leaves a command that beats alone, and kills and starts
  again a command that never beats, saying why on its stderr.
- In real Chromium (browser): the status page loaded from 127.0.0.1 beats by itself; loaded under
  ``localhost`` (not the unit's own kiosk) it does not.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from device.kiosk import read_frames
from tests.process_station import RunningStation, child_env

from .conftest import token

PEER_DEADLINE = 30.0
"""How long the real processes may take to show what a test waits for (a loaded host)."""
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
BEATER = """
import http.client, os, re, sys, time
port, pids = int(sys.argv[1]), sys.argv[2]
open(pids, "a").write(f"{os.getpid()}\\n")
if sys.argv[3] == "beat":
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
    r = c.getresponse()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    tok = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode()).group(1)
    while True:
        c.request("POST", "/kiosk/frame", headers={"Host": f"127.0.0.1:{port}", "Cookie": cookie,
                                                    "X-CSRF-Token": tok, "Content-Length": "0"})
        assert c.getresponse().read() == b""
        time.sleep(0.5)
else:
    time.sleep(3600)
"""
"""A stand-in for cage and Chromium: records its pid, then beats like the page (``beat``) or never draws."""


def wait_until(what: str, check: Any, deadline: float = PEER_DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)  # polling pace for another process, not synchronisation
    raise AssertionError(f"not within {deadline:g} s: {what}")


# In the app ---------------------------------------------------------------------------------------

def test_only_a_loopback_peer_may_beat_or_read(web: Flask) -> None:
    outsider = web.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "192.168.7.20"
    assert outsider.get("/kiosk/frames").status_code == 403
    assert outsider.post("/kiosk/frame", headers={"X-CSRF-Token": token(outsider)}).status_code == 403
    local = web.test_client()
    assert local.get("/kiosk/frames").get_json() == {"frames": 0}


def test_a_beat_needs_the_page_s_token_and_is_counted(web: Flask) -> None:
    local = web.test_client()
    assert local.post("/kiosk/frame").status_code == 400
    assert local.get("/kiosk/frames").get_json() == {"frames": 0}
    for _ in range(3):
        assert local.post("/kiosk/frame", headers={"X-CSRF-Token": token(local)}).status_code == 204
    answer = local.get("/kiosk/frames")
    assert answer.get_json() == {"frames": 3}, "the count is the only thing it says"
    assert answer.headers["Cache-Control"] == "no-store"


def test_every_chair_page_carries_the_token_the_beat_needs(web: Flask) -> None:
    page = web.test_client().get("/").get_data(as_text=True)
    assert TOKEN.search(page) and "live.js" in page


# Through the real processes -------------------------------------------------------------------------

@pytest.fixture
def station(station_dir: Path) -> Iterator[RunningStation]:
    running = RunningStation(station_dir).start()
    yield running
    running.stop()


def post_beat(station: RunningStation) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", station.web_port, timeout=10)
    host = {"Host": f"127.0.0.1:{station.web_port}"}
    conn.request("GET", "/", headers=host)
    page = conn.getresponse()
    cookie = (page.getheader("Set-Cookie") or "").split(";")[0]
    match = TOKEN.search(page.read().decode())
    assert match and cookie
    conn.request("POST", "/kiosk/frame", headers={**host, "Cookie": cookie, "X-CSRF-Token": match.group(1),
                                                   "Content-Length": "0"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_the_running_unit_counts_beats(station: RunningStation) -> None:
    url = f"http://127.0.0.1:{station.web_port}/kiosk/frames"
    assert read_frames(url) == 0
    assert post_beat(station) == 204
    assert post_beat(station) == 204
    assert read_frames(url) == 2
    assert read_frames(f"http://127.0.0.1:{station.web_port}/no-such-route") is None


def supervise(station: RunningStation, tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path, Path]:
    script, pids, log = tmp_path / "beater.py", tmp_path / f"{mode}.pids", tmp_path / f"{mode}.log"
    script.write_text(BEATER)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "device.kiosk", "--frames-url", f"http://127.0.0.1:{station.web_port}/kiosk/frames",
             "--first-frame", "4", "--frames-stop", "4", "--poll", "0.5", "--",
             sys.executable, str(script), str(station.web_port), str(pids), mode],
            stderr=err, text=True, env=child_env())
    return proc, pids, log


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    assert proc.wait(PEER_DEADLINE) == 0


def test_the_supervisor_leaves_a_drawing_kiosk_alone(station: RunningStation, tmp_path: Path) -> None:
    proc, pids, log = supervise(station, tmp_path, "beat")
    try:
        wait_until("the first frame reported", lambda: "the chair's screen is drawn" in log.read_text())
        count = read_frames(f"http://127.0.0.1:{station.web_port}/kiosk/frames") or 0
        wait_until("more beats, past the 4 s deadline",
                   lambda: (read_frames(f"http://127.0.0.1:{station.web_port}/kiosk/frames") or 0) > count + 10)
    finally:
        stop(proc)
    assert len(pids.read_text().split()) == 1, log.read_text()
    assert "restarting" not in log.read_text()
    assert log.read_text().rstrip().endswith("pollbox-kiosk: stopped")


def test_the_supervisor_restarts_a_kiosk_that_never_draws(station: RunningStation, tmp_path: Path) -> None:
    proc, pids, log = supervise(station, tmp_path, "still")
    try:
        started = wait_until("a second start", lambda: pids.exists() and len(pids.read_text().split()) >= 2 and
                             pids.read_text().split())
    finally:
        stop(proc)
    said = log.read_text()
    assert ("pollbox-kiosk: start 1: no frame drawn within 4 s of the start; restarting the compositor and browser"
            " in 2 s (restart 1 in a row)") in said
    first = int(started[0])
    assert subprocess.run(["kill", "-0", str(first)], capture_output=True).returncode != 0, "the first start lives on"


# In real Chromium ----------------------------------------------------------------------------------

@pytest.mark.browser
def test_the_page_in_chromium_beats_from_127_0_0_1_only(station: RunningStation, browser: Any) -> None:
    url = f"http://127.0.0.1:{station.web_port}/kiosk/frames"
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(f"http://localhost:{station.web_port}/")
    page.wait_for_function("document.documentElement.classList.contains('js')")
    page.evaluate("new Promise(function (done) { requestAnimationFrame(function () { setTimeout(done, 500); }); })")
    assert read_frames(url) == 0, "a page not on the unit's own address beat"
    page.goto(f"http://127.0.0.1:{station.web_port}/")
    wait_until("the first beat", lambda: (read_frames(url) or 0) >= 1)
    wait_until("a later beat (every 5 s)", lambda: (read_frames(url) or 0) >= 2)
    assert page.evaluate("document.visibilityState") == "visible"
    page.close()
