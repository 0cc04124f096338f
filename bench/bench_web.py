"""Benchmarks of the chair's screen: latency under load, and page weight.

A demo station with 3,000 check-ins (and their ballots) recorded is served by
waitress on a loopback port, as in ``pollbox run``. While a background thread
keeps identifying new voters (one scan every 20 ms, each committed to the
journal), the status page and ``/api/status?view=status`` are fetched over
HTTP and their p50/p95 latencies measured. The baseline is a trivial Flask
route on the same server in the same run, so the ratio shows what the
status rendering costs on this machine. The page weight is the status page
plus every asset it references, against the 200 KB budget.
"""

from __future__ import annotations

import http.client
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import demo_pins, make_demo_station
from device.hardware.clock import FakeClock
from device.hardware.interfaces import ScanRead
from device.webserver import ServerThread
from web_ui import create_app
from web_ui.serve import make_server

PAGE_BUDGET_BYTES = 200 * 1024
TARGET_P95_MS = 50.0
ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


def _station(root: Path, checkins: int, pins: list[str]) -> Appliance:
    config = make_demo_station(root / "station", voters=len(pins))
    appliance = build_appliance(load_config(config), clock=FakeClock())
    appliance.start(background=False)
    appliance.open_polls()
    for pin in pins[:checkins]:
        appliance.identify(ScanRead(pin, "code128", "bench"))
        appliance.sim.box.drop()
    return appliance


def _fetch(port: int, path: str) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start = time.perf_counter()
    conn.request("GET", path)
    body = conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed * 1000.0, body


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _scanner(appliance: Appliance, pins: list[str], stop: threading.Event) -> Callable[[], None]:
    def run() -> None:
        for pin in pins:
            if stop.wait(0.02):
                return
            appliance.identify(ScanRead(pin, "code128", "bench"))
    return run


def _row(name: str, value: float, unit: str, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 3), "unit": unit, "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 3) if baseline else 0.0}


def _page_weight(port: int) -> int:
    _, html = _fetch(port, "/")
    return len(html) + sum(len(_fetch(port, asset)[1]) for asset in sorted(set(ASSET.findall(html.decode()))))


def run(quick: bool = False) -> list[dict[str, Any]]:
    checkins, requests = (300, 40) if quick else (3000, 200)
    pins = demo_pins(checkins + 1500)
    with tempfile.TemporaryDirectory() as tmp:
        appliance = _station(Path(tmp), checkins, pins)
        web = create_app(appliance, instance_path=Path(tmp) / "web")
        web.add_url_rule("/bench-baseline", "bench_baseline", lambda: "ok")
        server = ServerThread(make_server(web, "127.0.0.1", 0)).start()
        stop = threading.Event()
        scans = threading.Thread(target=_scanner(appliance, pins[checkins:], stop), daemon=True)
        scans.start()
        try:
            port = server.port
            timings = {path: [_fetch(port, path)[0] for _ in range(requests)]
                       for path in ("/bench-baseline", "/", "/api/status?view=status")}
            weight = _page_weight(port)
        finally:
            stop.set()
            scans.join()
            server.stop()
            appliance.stop()
    base50, base95 = _percentiles(timings["/bench-baseline"])
    rows = []
    for label, path in (("status page", "/"), ("status API", "/api/status?view=status")):
        p50, p95 = _percentiles(timings[path])
        rows.append(_row(f"web: {label} p50 with {checkins} check-ins while scanning (baseline: trivial route p50)",
                         p50, "ms", base50))
        rows.append(_row(f"web: {label} p95 with {checkins} check-ins while scanning (baseline: trivial route p95)",
                         p95, "ms", base95))
    rows.append(_row("web: status page weight with all assets (baseline: 200 KB budget)", weight / 1024, "KB",
                     PAGE_BUDGET_BYTES / 1024))
    return rows


if __name__ == "__main__":
    for result in run(quick=True):
        print(result)
