"""The technician guide, run as written: every ``sh`` block of docs/technician-guide.md, in order.

The guide's commands are taken verbatim from the document, one command line
at a time, on a simulated unit in a temporary folder: the unit's paths
(``/var/lib/pollbox``, the stick at ``/media/POLLBOX``, the backup stick at
``/media/pollbox-backup``) are mapped into that folder, ``POLLBOX_CONFIG``
names a simulation-mode station config (the image bakes its own into
``/etc/pollbox/station.toml``), ``sudo`` is dropped and ``systemctl
start|stop pollbox`` starts and stops ``pollbox run`` as a subprocess. The
CEC's commands run in the CEC's folder, where the election plan is written
first (the plan is the CEC's own document, described in docs/provisioning.md).

A ``text`` block right after a command block is the output the guide
promises: each of its lines must appear in what the commands printed (``…``
stands for what differs from one unit to the next). Comments in the guide
drive what happens on the unit's screen at that point, in a real Chromium at
800x480 with touch (``<!-- guide-check: NAME -->``): ``receiver`` serves the
CEC receiver with the registry the guide's enrollment wrote, ``screen-set-pin``
has the chair choose the PIN on the screen's keypad, ``screen-status`` checks
the screen a technician looks at before sealing. ``one-unit`` and
``many-units`` mark the two ways through the CEC step: the whole path runs
with the first, and the second is run up to the installation of the package.
Screenshots go where ``POLLBOX_SCREENSHOTS`` says (``make screenshots``).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.browser_kit import launch
from tests.process_station import ROOT, RunningStation, child_env, free_port

from .test_browser import NEW_PIN, expect, fits, new_page, sync_api

pytestmark = pytest.mark.browser

DOC = ROOT / "docs" / "technician-guide.md"
STATION = "KG-0001"
ELECTION = "kg-2026-guide"
PASSPHRASE = "guide passphrase 2026"
COMMAND_TIMEOUT = 120.0
ITEM = re.compile(r"<!-- guide-check: ([\w-]+) -->|```sh\n(.*?)```|```text\n(.*?)```", re.S)

PLAN = """[election]
id = "{election}"
name = "Guide election"
poll_date = "2026-11-29"
opens = "08:00"
closes = "20:00"
timezone = "Asia/Bishkek"
expires_at = "2099-12-31T00:00:00Z"

[receiver]
url = "http://127.0.0.1:{port}"
public_key = "{receiver}"

[documents]
pin_rule = {{ country = "KGZ" }}

[[stations]]
id = "{station}"
name = "School No. 5"
region = "Bishkek"
languages = ["ky", "ru"]
"""


@dataclass
class Step:
    kind: str  # "sh", "text" or "check"
    body: str
    tag: str = ""  # the check that marked this sh block ("one-unit", "many-units")


def guide_steps() -> list[Step]:
    steps: list[Step] = []
    tag = ""
    for check, sh, text in ITEM.findall(DOC.read_text(encoding="utf-8")):
        if check in ("one-unit", "many-units"):
            tag = check
        elif check:
            steps.append(Step("check", check))
        elif sh:
            steps.append(Step("sh", sh, tag))
            tag = ""
        else:
            steps.append(Step("text", text))
    return steps


def command_lines(block: str) -> list[str]:
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def expected(text: str) -> list[re.Pattern[str]]:
    return [re.compile(".*?".join(re.escape(part) for part in line.strip().split("…")))
            for line in text.splitlines() if line.strip()]


class Unit:
    """The simulated unit, the technician's stick and the CEC's folder, with the guide's paths mapped into them."""

    def __init__(self, root: Path, stack: ExitStack) -> None:
        self.root, self.stack = root, stack
        self.cec, self.unit, self.stick, self.backup = root / "cec", root / "unit", root / "stick", root / "backup"
        for folder in (self.cec, self.unit / "data", self.stick, self.backup):
            folder.mkdir(parents=True)
        self.receiver_key = Ed25519PrivateKey.generate()
        self.receiver_socket = stack.enter_context(socket.socket())
        self.receiver_socket.bind(("127.0.0.1", 0))
        raw = self.receiver_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        (self.cec / "election.toml").write_text(PLAN.format(
            election=ELECTION, station=STATION, port=self.receiver_socket.getsockname()[1],
            receiver=base64.b64encode(raw).decode()))
        self.paths = {"/var/lib/pollbox": str(self.unit / "data"), "/media/POLLBOX": str(self.stick),
                      "/media/pollbox-backup": str(self.backup)}
        self.station: RunningStation | None = None
        self.env = {**child_env(), "POLLBOX_CONFIG": str(self.unit / "station.toml"),
                    "POLLBOX_CEC_PASSPHRASE": PASSPHRASE,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def configure(self) -> None:
        """The station config the image would carry: this election and the CEC key the guide made."""
        public = (self.cec / "cec.key.pub").read_text().strip()
        (self.unit / "station.toml").write_text(
            f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{public}"\n'
            'station_package = "data/station.pkg"\ndata_dir = "data"\n[uplink]\ntransport = "sim"\n'
            f"[web]\nport = {free_port()}\n")

    def mapped(self, line: str) -> str:
        for guide, here in self.paths.items():
            line = line.replace(guide, here)
        return line

    def unmapped(self, text: str) -> str:
        for guide, here in self.paths.items():
            text = text.replace(here, guide)
        return text

    def run(self, line: str) -> str:
        """One command line of the guide; returns what it printed (with the guide's paths)."""
        line = line.removeprefix("sudo ")
        if line in ("systemctl start pollbox", "systemctl stop pollbox"):
            self.service(line.split()[1])
            return ""
        if "unit " in line and not (self.unit / "station.toml").exists():
            self.configure()
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + self.mapped(line)], cwd=self.cec,
                              env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        out = self.unmapped(done.stdout + done.stderr)
        assert done.returncode == 0, f"the guide's command failed ({done.returncode}): {line}\n{out}"
        return out

    def service(self, verb: str) -> None:
        if verb == "start":
            assert self.station is None, "the guide starts pollbox twice"
            self.station = RunningStation(self.unit).start()
        else:
            assert self.station is not None, "the guide stops pollbox that is not running"
            assert self.station.stop() == 0, self.station.stderr()
            self.station = None

    def close(self) -> None:
        if self.station is not None:
            self.station.stop()


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    with ExitStack() as stack:
        made = Unit(tmp_path, stack)
        yield made
        made.close()


@pytest.fixture
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


def serve_receiver(unit: Unit) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "provisioning"))
    from prov_helpers import serve_receiver as serve
    public = (unit.cec / "cec.key.pub").read_text().strip()
    (unit.root / "receiver").mkdir()
    unit.stack.enter_context(serve(unit.receiver_socket, unit.root / "receiver", unit.cec / "registry.json",
                                   public, unit.receiver_key))


def set_pin_on_screen(unit: Unit, chromium: Any) -> None:
    """The chair, at the opening, chooses the PIN on the screen's keypad (the technician never sees it)."""
    assert unit.station is not None, "the guide has the chair set the PIN while pollbox is stopped"
    page = new_page(chromium)
    page.goto(f"http://127.0.0.1:{unit.station.web_port}/")
    with page.expect_navigation():  # the language is a form post; the next tap must land on the page it returns
        page.locator("button[lang=en]").tap()
    page.locator("a.button:has-text('Chair')").tap()
    expect(page.locator("h1")).to_have_text("Set the chair PIN")
    for digit in NEW_PIN + "E" + NEW_PIN:
        page.locator("[data-keypad] button[data-key='" + ("enter" if digit == "E" else digit) + "']").tap()
    fits(page, "technician-pin-setup")
    page.locator("button[data-submit]").tap()
    expect(page.locator(".banner.ok")).to_contain_text("The chair PIN is set")
    page.context.close()


def check_status_screen(unit: Unit, chromium: Any) -> None:
    """What the technician checks before sealing: the station's name and zero counts, nothing open."""
    assert unit.station is not None, "the guide looks at the screen while pollbox is stopped"
    page = new_page(chromium)
    page.goto(f"http://127.0.0.1:{unit.station.web_port}/")
    with page.expect_navigation():  # the language is a form post; the next tap must land on the page it returns
        page.locator("button[lang=en]").tap()
    expect(page.locator("[data-station]")).to_have_text("School No. 5")
    expect(page.locator("[data-counter=identified]")).to_have_text("0")
    expect(page.locator("[data-counter=ballots]")).to_have_text("0")
    expect(page.locator("#poll-badge")).to_contain_text("Not yet open")
    fits(page, "technician-status-ready")
    backup = unit.station.status()["backup"]
    assert backup["configured"], backup  # the folder set with 'unit backup' on the data partition is in use
    page.context.close()


def walk(unit: Unit, chromium: Any, way: str, *, until: str | None = None) -> list[str]:
    """Run the guide's steps the ``way`` given; stop before the check ``until``. Returns the commands run."""
    ran: list[str] = []
    printed = ""
    for step in guide_steps():
        if step.kind == "check":
            if step.body == until:
                return ran
            printed = ""
            {"receiver": lambda: serve_receiver(unit), "screen-set-pin": lambda: set_pin_on_screen(unit, chromium),
             "screen-status": lambda: check_status_screen(unit, chromium)}[step.body]()
        elif step.kind == "sh":
            if step.tag and step.tag != way:
                printed = ""
                continue
            printed = "".join(unit.run(line) for line in command_lines(step.body))
            ran += command_lines(step.body)
        elif printed:
            missing = [p.pattern for p in expected(step.body) if not p.search(printed)]
            assert not missing, f"the guide promises output the tool does not print: {missing}\n--- printed:\n{printed}"
            printed = ""
    return ran


def test_the_guide_has_the_technicians_whole_path() -> None:
    steps = guide_steps()
    commands = " ".join(" ".join(command_lines(s.body)) for s in steps if s.kind == "sh")
    for needed in ("cec keygen --encrypt", "unit keygen", "unit enroll-request", "cec enroll", "cec package ",
                   "cec packages", "--enrollments-dir", "unit install-package", "unit backup --directory",
                   "unit readiness", "unit zeroize"):
        assert needed in commands, needed
    checks = [s.body for s in steps if s.kind == "check"]
    assert checks == ["receiver", "screen-set-pin", "screen-status"], checks


def test_the_technician_guide_runs_as_written(unit: Unit, chromium: Any) -> None:
    ran = walk(unit, chromium, "one-unit")
    assert any("unit zeroize" in line for line in ran)
    assert not (unit.unit / "data" / "device.key").exists()  # zeroized
    assert (unit.stick / "pollbox" / "zeroize-record.json").exists()
    assert "RESULT: READY" in (unit.stick / "pollbox" / f"readiness-{STATION}.txt").read_text()


def test_the_guides_bulk_path_puts_the_enrollment_on_the_stick(unit: Unit, chromium: Any) -> None:
    ran = walk(unit, chromium, "many-units", until="screen-set-pin")
    assert any("cec packages" in line for line in ran)
    assert any("install-package" in line for line in ran)
    assert (unit.unit / "data" / "enrollment.json").exists()
