"""The README's walk-through, followed literally: its commands, in order, against a real ``make run``.

The test reads the commands out of README.md (every line of a code block that
starts with ``.venv/bin/pollbox``) and the ``run`` recipe out of the Makefile,
starts that recipe's ``pollbox run --with-receiver`` as a subprocess on a fresh
demo station in a temporary folder (free ports for the screen and the
receiver), runs each README line in a shell from that folder, and checks what
each one printed. A README line without a check here fails the test, so the
walk-through and this test change together.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device.control import request
from device.demo import demo_pins
from tests.process_station import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEMO = "var/demo"
READY_WITHIN = 90.0
"""Seconds a fresh ``pollbox run`` may take to answer on its control socket (generous for a loaded CI machine)."""
DELIVERED_WITHIN = 90.0
"""Seconds the demo receiver may take to acknowledge every record (a few uplink rounds)."""


def walkthrough() -> list[str]:
    """The README's commands, in order."""
    blocks = re.findall(r"^```\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(".venv/bin/pollbox ")]


def make_run_recipe() -> list[str]:
    """The Makefile's ``run`` recipe, with its variables filled in for this Python and the demo folder."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [line.strip().replace("$(PY)", sys.executable).replace("$(DEMO)", DEMO) for line in recipe]


def words(line: str) -> str:
    """The command of a README line: ``sim scan`` for ``.venv/bin/pollbox sim scan 227... # ...``."""
    argv = line.split("#", 1)[0].split()[1:]
    return " ".join(argv[:2]) if argv[0] in ("sim", "chair") else argv[0]


class Station:
    """A clone's working folder with a demo station, and ``make run``'s appliance running on it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        self.env.pop("POLLBOX_CONFIG", None)
        self.socket = folder / DEMO / "data" / "control.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.web_port, self.receiver_port = free_port(), free_port()

    def install_command(self) -> None:
        """``.venv/bin/pollbox`` in the working folder: this checkout's ``pollbox`` for this Python."""
        script = self.folder / ".venv" / "bin" / "pollbox"
        script.parent.mkdir(parents=True)
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m device.cli "$@"\n', encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def shell(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", line], cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=120)

    def start(self) -> None:
        demo, run = make_run_recipe()
        made = self.shell(f"{sys.executable} -m device.cli demo {DEMO} --port {self.web_port} "
                          f"--receiver-port {self.receiver_port}")
        assert made.returncode == 0, made.stderr
        kept = self.shell(demo)
        assert kept.returncode == 0 and "demo station ready" in kept.stdout, kept.stderr
        with open(self.folder / "run.log", "wb") as log:
            self.proc = subprocess.Popen(["bash", "-c", run], cwd=self.folder, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.until(lambda: self.answers(), READY_WITHIN, "pollbox run to answer on its control socket")

    def answers(self) -> bool:
        try:
            return bool(request(self.socket, {"cmd": "status"}, timeout=5.0).get("ok"))
        except ConnectionError:
            return False

    def status(self) -> dict[str, Any]:
        answer = request(self.socket, {"cmd": "status"})
        assert answer["ok"], answer
        return answer["result"]  # type: ignore[no-any-return]

    def until(self, condition: Callable[[], bool], within: float, what: str) -> None:
        """Wait for ``condition``, checking that the appliance is still running between tries."""
        deadline = time.monotonic() + within
        while not condition():
            assert self.proc is not None
            try:
                self.proc.wait(timeout=0.2)  # the pause between tries, and an early exit is caught here
            except subprocess.TimeoutExpired:
                pass
            else:
                pytest.fail(f"'make run' exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {within:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return (self.folder / "run.log").read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # bash passes it on: pollbox stops its receiver and itself
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    running = Station(tmp_path_factory.mktemp("fresh-clone"))
    running.install_command()
    running.start()
    yield running
    running.stop()


def expected() -> dict[str, Callable[[str, dict[str, Any]], bool]]:
    """What each README command prints (``out``), and the station after it (``s``)."""
    pins = demo_pins(6)
    return {
        "chair open": lambda out, s: "the polls are open" in out and s["poll"] == "open",
        "sim pins": lambda out, s: out.split() == pins,
        "sim scan": lambda out, s: out.startswith("admitted, list line 1,") and s["counters"]["identified"] == 1,
        "sim drop": lambda out, s: "ballot dropped" in out and s["counters"]["ballots"] == 1,
        "sim image": lambda out, s: "the camera decoded: datamatrix\nadmitted, list line 3," in out,
        "sim type": lambda out, s: out.startswith("admitted, list line 6,") and s["counters"]["identified"] == 3,
        "sim lid-open": lambda out, s: "lid open" in out and [a["kind"] for a in s["alarms"]] == ["lid_opened"],
        "status": lambda out, s: "polls open" in out and "identified 3  ballots 1" in out and "ALARM 1 lid_opened" in out,
        "verify": lambda out, s: "chain intact; 3 identified, 1 ballots" in out,
    }


def test_the_walkthrough_opens_the_polls_first() -> None:
    lines = walkthrough()
    assert lines and words(lines[0]) == "chair open"
    assert set(map(words, lines)) <= set(expected()), "a README command has no check in this test"


def test_the_readme_walkthrough_works_on_a_fresh_clone(station: Station) -> None:
    for line in walkthrough():
        done = station.shell(line)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (line, done.stdout, done.stderr)
        check = expected()[words(line)]
        assert check(done.stdout, station.status()), (line, done.stdout)
    with urllib.request.urlopen(f"http://127.0.0.1:{station.web_port}/observer", timeout=10) as page:
        assert page.status == 200  # the chair's screen is up, as the README says


def test_the_readme_counts_the_voters_the_station_shows(station: Station) -> None:
    said = re.search(r"creates a demo station in `var/demo` \(([\d,]+) voters", README.read_text(encoding="utf-8"))
    assert said is not None
    assert int(said.group(1).replace(",", "")) == station.status()["counters"]["registered"]


def test_a_second_run_is_refused_in_one_sentence(station: Station) -> None:
    again = station.shell(f".venv/bin/pollbox --config {DEMO}/station.toml run")
    assert again.returncode == 2 and again.stderr.startswith("pollbox: pollbox is already running for this station")
    assert len(again.stderr.strip().splitlines()) == 1 and station.answers()


def test_export_with_nothing_left_to_carry_is_one_sentence(station: Station) -> None:
    station.until(lambda: station.status()["upstream"]["waiting"] == 0, DELIVERED_WITHIN,
                  "acknowledgement of every record by the demo receiver")
    stick = station.folder / DEMO / "usb-stick"
    done = station.shell(f".venv/bin/pollbox export {stick}")
    assert done.returncode == 2 and done.stderr.strip() == \
        "pollbox: nothing to export: the receiver has acknowledged every record"


def test_demo_reset_is_refused_while_the_station_runs(station: Station) -> None:
    done = station.shell(".venv/bin/pollbox demo --reset")
    assert done.returncode == 2 and "is running; stop it" in done.stderr
    assert station.answers() and (station.folder / DEMO / "data" / "journal.db").exists()
