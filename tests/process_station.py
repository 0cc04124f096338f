"""A station unit as it really runs: ``pollbox run`` as a subprocess, driven from outside.

``RunningStation`` starts the real process (the owner thread, the web server,
the control socket, the simulated box and scanner with their own threads) on
a demo station in a temporary folder, and talks to it the way people and tools
do: the control socket (``pollbox sim …``/``pollbox chair …``) and HTTP (the
chair's screen and ``/api/status``). On a stall it asks the process for every
thread's stack (``SIGUSR1``, registered with ``faulthandler`` by ``pollbox run``)
so a hang names the threads and locks involved.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from device.control import request

ROOT = Path(__file__).resolve().parent.parent

STOP_WITHIN = 60.0
"""Seconds ``pollbox run`` has to end after SIGTERM. It takes about a second on an idle machine; the
margin is for a 2-core machine running two test workers, each starting processes. Past it, it hangs."""
STACKS_WITHIN = 5.0
"""Seconds the process has to write its threads' stacks after ``SIGUSR1``."""
KILLED_WITHIN = 10.0
"""Seconds the kernel has to reap a process after SIGKILL."""
TAIL_CHARS = 6000
"""How much of the process's stderr a failure quotes (its end: the latest lines)."""


def child_env() -> dict[str, str]:
    """The environment for a child ``pollbox``: this checkout's packages first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


PORT_BAND_LOW = 20000
"""The lowest port ``free_port`` hands out; its band ends below the kernel's ephemeral range."""
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux says which ports it picks for outgoing connections and for a bind to port 0."""


class _PortBand:
    """This process's slice of the ports below the ephemeral range, handed out in turn."""

    def __init__(self) -> None:
        try:
            high = int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError):
            high = 32768  # Linux's default
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest -n N
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
        index = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else 0
        self.size = max(1, (high - PORT_BAND_LOW) // max(1, workers))
        self.low = PORT_BAND_LOW + (index % max(1, workers)) * self.size
        self.turn = int.from_bytes(os.urandom(4), "big") % self.size  # two runs on one machine start apart
        self.lock = threading.Lock()

    def take(self) -> int:
        with self.lock:
            for _ in range(self.size):
                port = self.low + self.turn
                self.turn = (self.turn + 1) % self.size
                if _nothing_listens(port):
                    return port
        raise OSError(f"no free port between {self.low} and {self.low + self.size - 1}")


_band: _PortBand | None = None
_band_made = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that nothing uses now, for a process started soon after to listen on.

    A port the kernel picked for a bind to port 0 could be taken again, before the child binds it, by any
    outgoing connection or bind to port 0 on the machine (the other test worker starts processes and
    connects to them all the time). So the port comes from a band below the kernel's ephemeral range,
    which neither ever uses; each pytest-xdist worker has its own slice of the band, so two workers never
    hand out the same port; and a process hands its ports out in turn, so a port a stopping child may
    still hold is not given again soon. A port some other program holds is skipped.
    """
    global _band
    with _band_made:
        if _band is None:
            _band = _PortBand()
    return _band.take()


def _nothing_listens(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RunningStation:
    """``pollbox run`` on the demo station at ``station_dir`` (``station.toml`` inside)."""

    def __init__(self, station_dir: Path, *, web_port: int | None = None, extra_config: str = "") -> None:
        self.dir = station_dir
        self.config = station_dir / "station.toml"
        self.web_port = web_port or free_port()
        text = self.config.read_text(encoding="utf-8")
        text = _set_port(text, self.web_port) + extra_config
        self.config.write_text(text, encoding="utf-8")
        self.socket = station_dir / "data" / "control.sock"
        self.stderr_path = station_dir / "process.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_within: float = 60.0) -> RunningStation:
        self.socket.unlink(missing_ok=True)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "device.cli", "--config", str(self.config), "run"],
                                         stdout=subprocess.DEVNULL, stderr=err, cwd=self.dir, env=child_env())
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pollbox run exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                if self.control({"cmd": "status"}, timeout=2.0).get("ok") and self.http_get("/api/status")[0] == 200:
                    return self
            except (ConnectionError, OSError, ValueError):
                pass
            _pause_briefly(self.proc)
        raise AssertionError(f"pollbox run was not ready within {ready_within:g} s:\n{self.stderr()}")

    def control(self, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        return request(self.socket, payload, timeout=timeout)

    def ok(self, payload: dict[str, Any], timeout: float = 10.0) -> Any:
        """A control request that must succeed; returns its result. Unanswered, it fails naming every
        thread's stack; refused, it fails quoting the refusal and the end of the process's stderr."""
        try:
            answer = self.control(payload, timeout)
        except ConnectionError as exc:
            raise AssertionError(f"{payload.get('cmd')}: {exc}; the process's threads now:\n{self.stacks()}") from None
        assert answer.get("ok"), f"{payload.get('cmd')}: {answer.get('error')}\n{self.stderr()[-TAIL_CHARS:]}"
        return answer.get("result")

    def http_get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.web_port}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, body = self.http_get("/api/status")
        assert code == 200, body[:300]
        return json.loads(body)["status"]  # type: ignore[no-any-return]

    def stacks(self) -> str:
        """Every thread's stack of the running process (written to its stderr by faulthandler)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.stderr()
        before = len(self.stderr())
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + STACKS_WITHIN
        seen = before
        while time.monotonic() < deadline:  # until the dump has begun and stopped growing
            _pause_briefly(self.proc)
            now = len(self.stderr())
            if seen > before and now == seen:
                break
            seen = now
        return self.stderr()[before:]

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def stop(self, within: float = STOP_WITHIN) -> int:
        """SIGTERM, as systemd stops the unit; returns the exit code.

        A process still running ``within`` seconds later is a hang: every thread's stack is asked for
        (``SIGUSR1``), the process is killed, and ``StopTimedOut`` names the stacks and the stderr's tail.
        """
        if self.proc is None:
            return 0
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(within)
            except subprocess.TimeoutExpired:
                stacks = self.stacks()
                proc.kill()
                proc.wait(KILLED_WITHIN)
                self.proc = None
                raise StopTimedOut(f"pollbox run (pid {proc.pid}) did not stop within {within:g} s of SIGTERM; "
                                   f"killed. Its threads then:\n{stacks}\n--- its stderr, last "
                                   f"{TAIL_CHARS} characters:\n{self.stderr()[-TAIL_CHARS:]}") from None
        code = proc.returncode
        self.proc = None
        return code


class StopTimedOut(AssertionError):
    """``pollbox run`` did not end after SIGTERM within the harness's deadline (it was then killed)."""


def _set_port(text: str, port: int) -> str:
    lines = [f"port = {port}" if line.startswith("port = ") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def _pause_briefly(proc: subprocess.Popen[bytes]) -> None:
    """Wait a little for the child (returns early if it exits): polling pace, not synchronisation."""
    try:
        proc.wait(0.05)
    except subprocess.TimeoutExpired:
        pass
