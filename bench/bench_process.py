"""The station as users run it: ``pollbox run`` with its owner thread, web server and control socket.

- ``run_start_to_ready``: process start until both the control socket and the
  chair's screen (``/api/status``) answer, against a bare Python start.
- ``run_rss_*``: resident memory of the running process (3,000-voter package)
  after start, after 500 voters with the screen polled, and after a document
  was shown to the simulated camera (which loads the decoder), against a bare
  Python process.
- ``run_checkin_to_armed_*``: a ``pollbox sim scan`` request through the control
  socket until the slot is armed and the answer is back, while a thread polls
  the chair's screen and ``/api/status`` ten times a second; against a
  ``status`` request through the same socket in the same run (the transport's
  own cost), so the ratio is what a check-in adds.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_core import entry
from tests.process_station import RunningStation, child_env, free_port

BARE = "import time; print(int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024)"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _bare() -> tuple[float, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE], capture_output=True, text=True, check=True,
                         env=child_env()).stdout
    return time.perf_counter() - t, int(out) / 2**20


def _station(template: Path, tmp: Path, name: str) -> RunningStation:
    target = tmp / name
    shutil.copytree(template, target)
    return RunningStation(target)


def _poll(station: RunningStation, stop: threading.Event) -> None:
    while not stop.is_set():
        station.http_get("/")
        station.http_get("/api/status")
        stop.wait(0.1)


def _day(station: RunningStation, pins: list[str]) -> tuple[list[float], list[float]]:
    """Check-in latencies and status round trips (ms), with the screen polled throughout."""
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(station, stop), daemon=True)
    poller.start()
    scans, plain = [], []
    try:
        station.ok({"cmd": "open"})
        for pin in pins:
            t = time.perf_counter()
            result = station.ok({"cmd": "scan", "text": pin})
            scans.append((time.perf_counter() - t) * 1000)
            decision = result.get("decision", result)  # a simulated read answers with the decision it caused
            assert decision["outcome"] == "admitted", result
            station.ok({"cmd": "drop"})
            t = time.perf_counter()
            station.ok({"cmd": "status"})
            plain.append((time.perf_counter() - t) * 1000)
    finally:
        stop.set()
        poller.join(5)
    return scans, plain


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def run(quick: bool = False) -> list[dict[str, object]]:
    from device.demo import demo_pins, make_demo_station
    voters = 100 if quick else 500
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        template = tmp / "template"
        make_demo_station(template, voters=3000, receiver_url=f"http://127.0.0.1:{free_port()}")
        bare = [_bare() for _ in range(3)]
        bare_wall, bare_rss = statistics.median(b[0] for b in bare), statistics.median(b[1] for b in bare)
        starts, rss_ready = [], []
        for n in range(3):
            station = _station(template, tmp, f"s{n}")
            t = time.perf_counter()
            station.start()
            starts.append(time.perf_counter() - t)
            assert station.proc is not None
            rss_ready.append(_rss_mb(station.proc.pid))
            if n == 0:
                scans, plain = _day(station, demo_pins(voters))
                rss_day = _rss_mb(station.proc.pid)
                station.ok({"cmd": "image", "path": str(station.dir / "documents" / "td1.png")})
                rss_camera = _rss_mb(station.proc.pid)
            station.stop()
        out.append(entry("run_rss_at_ready (3,000 voters; vs bare python)", statistics.median(rss_ready), "MB",
                         bare_rss))
        out.append(entry(f"run_rss_after_{voters}_voters (screen polled; vs bare python)", rss_day, "MB", bare_rss))
        out.append(entry("run_rss_after_camera_used (decoder loaded; vs bare python)", rss_camera, "MB", bare_rss))
        out.append(entry("run_start_to_ready (pollbox run until socket and screen answer; vs bare python)",
                         statistics.median(starts), "s", bare_wall))
        out.append(entry("run_checkin_to_armed_p50 (control socket, screen polled; vs socket status p50)",
                         _pct(scans, 0.5), "ms", _pct(plain, 0.5)))
        out.append(entry("run_checkin_to_armed_p99 (control socket, screen polled; vs socket status p99)",
                         _pct(scans, 0.99), "ms", _pct(plain, 0.99)))
    return out
