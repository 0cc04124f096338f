"""The kiosk in the booted image: what the chair sees, and that a keyboard-mode scanner never types into it.

A test copy of the image (``guest.py``) boots with the demo station's stick. From outside, QMP
screendumps (``screen.classify``) show the kiosk's first frame of the chair's status screen. Inside,
the appliance is switched to a keyboard-mode scanner (``uinput_guest.py``, as in
``test_kernel_scanners``) while the kiosk runs. Whether a key reached the kiosk's Chromium is read in
the browser itself: for the test only, the browser is started with its DevTools port on the guest's
127.0.0.1 (``cdp_guest.py``) and the page gets a listener that counts every key event it sees.

- A document typed on the scanner admits the voter and the page counts no key: the appliance grabbed
  the device (``EVIOCGRAB``), so the compositor, and the browser under it, never saw one.
- The same document typed on a second virtual keyboard, which the appliance does not take, is counted
  by the page: the counter does see keys that reach the browser, so its zero above means something.
- With the kiosk stopped the display is no longer the status screen: the screen check can fail.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.demo_documents import make_td1

from .guest import ProbedUnit, boot_probed_unit, host_can_boot
from .screen import classify
from .test_kernel_scanners import SCANNER_NAME, SERVICE_STARTS, TEST_DIR, UINPUT, ScannerRig
from .vm import BOOT_DEADLINE, IMAGE_TEST_TIMEOUT, wait_for

pytestmark = [pytest.mark.image, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

CDP = Path(__file__).with_name("cdp_guest.py")
CDP_GUEST = f"{TEST_DIR}/cdp_guest.py"
DEVTOOLS_FLAGS = f"{TEST_DIR}/chromium-flags"
"""Debian's ``/usr/bin/chromium`` sources ``/etc/chromium.d/*``; the test binds a copy of its
``default-flags`` with ``--remote-debugging-port`` added over the original (the root is read-only)."""
KIOSK_STARTS = 300.0
"""How long the kiosk may take to draw again after a restart (cage and Chromium in software emulation)."""
KIOSK_STOPS = 60.0
"""How long the display may take to stop showing the kiosk once it is stopped."""
CONTROL_NAME = "pollbox kiosk control keyboard"
"""A second virtual keyboard: its name does not contain the scanner's, so the appliance leaves it alone."""
CONTROL_TYPER = f"{TEST_DIR}/control.sock"
COUNTER = ("window.__pollboxKeys === undefined ? null : window.__pollboxKeys")
INSTALL_COUNTER = ("(function () { if (window.__pollboxKeys === undefined) { window.__pollboxKeys = 0;"
                   " ['keydown', 'keyup', 'keypress'].forEach(function (name) {"
                   " window.addEventListener(name, function () { window.__pollboxKeys += 1; }, true); }); }"
                   " return window.__pollboxKeys; })()")
"""Counts every key event the page sees (capture phase on the window: before any handler can stop it)."""


def kiosk_shows_status(unit: ProbedUnit, deadline: float) -> float:
    """``vm.wait_for_screen("status")``; on failure the kiosk's own log in the message."""
    try:
        return unit.vm.wait_for_screen("status", deadline)
    except AssertionError as exc:
        _, said = unit.guest.run("systemctl status --no-pager pollbox-kiosk.service | head -12;"
                                  " journalctl -u pollbox-kiosk.service -n 40 --no-pager -o short-monotonic")
        raise AssertionError(f"{exc}\nthe kiosk's log:\n{said[-6000:]}") from None


class Kiosk:
    """The booted unit's display and its browser, as the test sees them."""

    def __init__(self, unit: ProbedUnit) -> None:
        self.unit, self.guest, self.vm = unit, unit.guest, unit.vm

    def shows(self) -> str:
        """What the display shows now (``screen.classify`` of a QMP screendump)."""
        return classify(self.vm.screendump(self.vm.workdir / "screen-now.ppm"))

    def open_devtools(self) -> None:
        """Restart the kiosk with its browser's DevTools port on 127.0.0.1:9222 (this boot only)."""
        self.guest.check(f"cp /etc/chromium.d/default-flags {DEVTOOLS_FLAGS}"
                         f" && echo 'export CHROMIUM_FLAGS=\"$CHROMIUM_FLAGS --remote-debugging-port=9222\"'"
                         f" >> {DEVTOOLS_FLAGS} && mount --bind {DEVTOOLS_FLAGS} /etc/chromium.d/default-flags"
                         " && systemctl restart pollbox-kiosk.service", timeout=KIOSK_STARTS)
        wait_for(lambda: self.guest.run(f"python3 {CDP_GUEST} 1")[0] == 0, "the kiosk's browser answering DevTools",
                 KIOSK_STARTS)

    def evaluate(self, expression: str) -> Any:
        """``expression`` evaluated in the kiosk's page, which must still be the chair's screen."""
        answer = json.loads(self.guest.check(f"python3 {CDP_GUEST} {shlex.quote(expression)}"))
        assert answer["url"].startswith("http://127.0.0.1:8080/"), answer
        return answer["value"]

    def keys_seen(self) -> int:
        """Key events the page has counted since ``INSTALL_COUNTER``; fails if the page was reloaded since."""
        count = self.evaluate(COUNTER)
        assert count is not None, "the kiosk's page was reloaded: its key counter is gone"
        return int(count)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("kiosk")
    made = boot_probed_unit(workdir)
    try:
        made.vm.wait_until_ready()
        made.guest.check(f"mkdir -p {TEST_DIR}")
        made.guest.push(UINPUT, f"{TEST_DIR}/uinput_guest.py")
        made.guest.push(CDP, CDP_GUEST)
        yield made
    finally:
        made.stop()


def test_the_kiosk_draws_the_status_screen_after_power_on(unit: ProbedUnit) -> None:
    """The first boot (the station imported from the stick): the kiosk's first status frame, timed."""
    first_frame = kiosk_shows_status(unit, BOOT_DEADLINE[unit.vm.accel])
    (unit.vm.workdir / "kiosk-times.json").write_text(json.dumps({"first_boot_to_status_frame_s": first_frame,
                                                                  "boot_to_ready_s": unit.vm.ready_after}))
    print(f"power-on to the kiosk's first status frame: {first_frame} s (ready after {unit.vm.ready_after} s)")


def test_a_scanner_in_keyboard_mode_never_types_into_the_kiosk(unit: ProbedUnit) -> None:
    kiosk = Kiosk(unit)
    kiosk.open_devtools()
    rig = ScannerRig(unit, unit.vm.workdir / "no-serial-line.sock")
    rig.plug()  # the scanner plugged in first: the appliance looks for it by name as it starts
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    unit.guest.control({"cmd": "open"})
    kiosk_shows_status(unit, KIOSK_STARTS)
    assert kiosk.evaluate(INSTALL_COUNTER) == 0

    document = make_td1(pin=next(rig.voters)) + "\n"
    before = rig.identified_on_screen()
    decision = rig.read_document(lambda: rig.type(document, "us"))
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"
    assert rig.identified_on_screen() == before + 1
    assert kiosk.keys_seen() == 0, "the kiosk's browser received keys typed on the grabbed scanner"
    assert kiosk.shows() == "status"

    # the same document on a keyboard the appliance does not take: these keys do reach the browser
    unit.guest.spawn(f"python3 {TEST_DIR}/uinput_guest.py plug {shlex.quote(CONTROL_NAME)} {CONTROL_TYPER}",
                     log=f"{TEST_DIR}/control.log")
    wait_for(lambda: unit.guest.run(f"test -S {CONTROL_TYPER}")[0] == 0, "the control keyboard plugged in",
             SERVICE_STARTS)
    encoded = base64.b64encode(document.encode()).decode()
    typed = json.loads(unit.guest.check(f"python3 {TEST_DIR}/uinput_guest.py type {CONTROL_TYPER} us 2 {encoded}"))
    seen = wait_for(lambda: kiosk.keys_seen() or None, "the control keyboard's keys counted in the page",
                    KIOSK_STOPS)
    assert seen >= typed["keys"], (seen, typed)
    assert rig.identified_on_screen() == before + 1, "the appliance read the keyboard it was not given"


def test_with_the_kiosk_stopped_the_display_is_not_the_status_screen(unit: ProbedUnit) -> None:
    """The screen check can fail: stop the kiosk and the frame is the text console, not the status
    screen; start it again and the status screen comes back."""
    kiosk_shows_status(unit, KIOSK_STARTS)
    unit.guest.check("systemctl stop pollbox-kiosk.service", timeout=KIOSK_STOPS)
    kiosk = Kiosk(unit)

    def not_status() -> str | None:
        what = kiosk.shows()
        return None if what == "status" else what
    shown = wait_for(not_status, "the kiosk's frame gone", KIOSK_STOPS)
    assert shown in ("console", "blank"), shown
    unit.guest.check("systemctl start pollbox-kiosk.service", timeout=KIOSK_STARTS)
    kiosk_shows_status(unit, KIOSK_STARTS)
