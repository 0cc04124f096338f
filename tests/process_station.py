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
import time
from pathlib import Path
from typing import Any

from device.control import request

ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """The environment for a child ``pollbox``: this checkout's packages first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        """A control request that must succeed; returns its result."""
        answer = self.control(payload, timeout)
        assert answer.get("ok"), f"{payload.get('cmd')}: {answer.get('error')}"
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
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(self.stderr()) == before:
            _pause_briefly(self.proc)
        return self.stderr()[before:]

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM, as systemd stops the unit; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code


def _set_port(text: str, port: int) -> str:
    lines = [f"port = {port}" if line.startswith("port = ") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def _pause_briefly(proc: subprocess.Popen[bytes]) -> None:
    """Wait a little for the child (returns early if it exits): polling pace, not synchronisation."""
    try:
        proc.wait(0.05)
    except subprocess.TimeoutExpired:
        pass
