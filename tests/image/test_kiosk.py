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
- A finger on the 7-inch panel's glass taps the kiosk: the image's touch poller, pointed at the
  kernel's ``i2c-stub`` playing the panel's controller (``touch_rig``), makes a touchscreen that the
  compositor hands to the browser, and a tap on the Chair button opens the chair's pages.
- With the kiosk stopped the display is no longer the status screen: the screen check can fail.

The kiosk heals itself (``device/kiosk.py``, the supervisor that is the unit's main process):

- after power-on, the first status frame is timed, with a timeline of what the display showed beside
  the page's frame-beat count (``/kiosk/frames``), and the supervisor's own lines (drawn at the first
  start, or restarted and why) are kept: the figures of ``docs/image.md`` come from these;
- a browser frozen with SIGSTOP stops beating: the supervisor says "frames stopped", kills and starts
  it again, and the status screen comes back, drawn by a new browser;
- a browser stopped before its window ever showed leaves cage's background on the display and no
  beat: the supervisor says "no frame drawn" and the next start draws the status screen.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from device.demo_documents import make_td1
from device.hardware.touchpanel.ft5x06 import Geometry
from device.kiosk import FIRST_FRAME, FRAMES_STOP

from . import touch_rig
from .guest import ProbedUnit, boot_probed_unit, host_can_boot
from .screen import classify, colours
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
KIOSK_HEALS = 480.0
"""How long the supervisor may take to notice a browser that draws nothing (``FRAMES_STOP`` without a
beat, or ``FIRST_FRAME`` from a start), end it (up to 2 x 10 s), wait its back-off and start one that
draws (15-90 s here)."""
SAMPLE_EVERY = 3.0
"""Pace of the first-frame timeline's samples (a screendump and a reading of the beat count)."""
FRAMES = ("python3 -c \"import urllib.request; print(urllib.request.urlopen("
          "'http://127.0.0.1:8080/kiosk/frames', timeout=10).read().decode())\"")
PAGE_CONNECTIONS = "awk '$3 ~ /:1F90$/ && $4 == \"01\"' /proc/net/tcp | wc -l"
"""Established connections to the chair's screen (port 8080) from a client in the unit: the kiosk's
page, once it runs, holds its live stream (``/events``) open; the image has no ``ss``."""
SAID = "journalctl -u pollbox-kiosk.service -o cat --no-pager | grep '^pollbox-kiosk:' || true"
BROWSER = "pgrep -P \"$(pgrep -u pollbox-kiosk -n -x cage)\" -x chromium 2>/dev/null"
"""The browser's main process: the ``chromium`` child of the newest cage (``/usr/bin/chromium`` execs it)."""
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

    def answer(self, expression: str) -> dict[str, Any]:
        """``cdp_guest.py``'s answer: the page's address as DevTools lists it (empty while the page changes) and the value."""
        return dict(json.loads(self.guest.check(f"python3 {CDP_GUEST} {shlex.quote(expression)}")))

    def evaluate(self, expression: str) -> Any:
        """``expression`` evaluated in the kiosk's page, which must still be the chair's screen."""
        answer = self.answer(expression)
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


def frames(unit: ProbedUnit) -> int | None:
    """The page's frame-beat count (``web_ui/kiosk.py``), or ``None`` if the screen does not answer."""
    rc, out = unit.guest.run(FRAMES, timeout=60)
    return json.loads(out)["frames"] if rc == 0 else None


def supervisor_said(unit: ProbedUnit) -> list[str]:
    """Every line the kiosk's supervisor has written this boot."""
    return [line for line in unit.guest.check(SAID, timeout=60).splitlines() if line.startswith("pollbox-kiosk:")]


def test_the_kiosk_draws_the_status_screen_after_power_on(unit: ProbedUnit) -> None:
    """The first boot (the station imported from the stick): the kiosk's first status frame, timed, with
    the display's and the beat count's timeline and whether the supervisor had to restart the kiosk."""
    vm = unit.vm
    timeline: list[dict[str, Any]] = []
    first_frame: float | None = None

    def drawn() -> bool | None:
        nonlocal first_frame
        frame = vm.screendump(vm.workdir / "screen-timeline.ppm")
        shown = classify(frame)
        with Image.open(frame) as image:
            colour = "#" + "".join(f"{c:02x}" for c in colours(image).most_common(1)[0][0])
        at = round(time.monotonic() - vm.started_at, 1)
        connections = unit.guest.run(PAGE_CONNECTIONS, timeout=60)[1].strip()
        timeline.append({"s": at, "screen": shown, "colour": colour, "frames": frames(unit),
                         "page_connections": connections})
        if shown == "status" and first_frame is None:
            first_frame = at
        said = supervisor_said(unit)
        return first_frame is not None and any("the chair's screen is drawn" in line for line in said) or None

    try:
        wait_for(drawn, "the status screen, drawn as the supervisor says", BOOT_DEADLINE[vm.accel])
    finally:
        said = supervisor_said(unit)
        record = {"first_boot_to_status_frame_s": first_frame, "boot_to_ready_s": vm.ready_after,
                  "restarts": [line for line in said if "restarting" in line], "supervisor": said,
                  "timeline": timeline}
        (vm.workdir / "kiosk-times.json").write_text(json.dumps(record, indent=1))
        print("KIOSK-FIRST-BOOT " + json.dumps(record))
    # the beats go on while the status screen is shown: the count is what the supervisor watches
    at_status = frames(unit) or 0
    wait_for(lambda: (frames(unit) or 0) > at_status or None, "the page's beats going on", KIOSK_STOPS)


def browser_pid(unit: ProbedUnit) -> int | None:
    rc, out = unit.guest.run(BROWSER)
    return int(out.split()[0]) if rc == 0 and out.strip() else None


def wait_for_said(unit: ProbedUnit, words: str, after: int, deadline: float) -> list[str]:
    """The supervisor's lines, once one after the first ``after`` contains ``words``."""
    return wait_for(lambda: (lambda said: said if any(words in line for line in said[after:]) else None)(
        supervisor_said(unit)), f"the supervisor saying {words!r}", deadline)


def test_a_frozen_browser_is_restarted_and_the_status_screen_comes_back(unit: ProbedUnit) -> None:
    kiosk_shows_status(unit, KIOSK_STARTS)
    wait_for_said(unit, "the chair's screen is drawn", 0, KIOSK_STARTS)
    before = len(supervisor_said(unit))
    frozen = wait_for(lambda: browser_pid(unit), "the kiosk's browser", KIOSK_STARTS)
    unit.guest.check(f"kill -STOP {frozen}")
    said = wait_for_said(unit, f"frames stopped: none drawn for {FRAMES_STOP:g} s; restarting", before, KIOSK_HEALS)
    print("KIOSK-HEAL-FROZEN " + json.dumps(said[before:]))
    said = wait_for_said(unit, "the chair's screen is drawn", before, KIOSK_HEALS)
    kiosk_shows_status(unit, KIOSK_STARTS)
    assert browser_pid(unit) not in (None, frozen), "the frozen browser is still the kiosk's"
    print("KIOSK-HEAL-FROZEN " + json.dumps(said[before:]))


def test_a_browser_that_never_draws_is_restarted(unit: ProbedUnit) -> None:
    """The browser stopped as soon as it starts, before its window shows: cage's background, no beat."""
    kiosk_shows_status(unit, KIOSK_STARTS)
    before = len(supervisor_said(unit))
    old = browser_pid(unit)
    unit.guest.spawn(f"while true; do p=$({BROWSER}); if [ -n \"$p\" ] && [ \"$p\" != \"{old}\" ]; then"
                     f" kill -STOP $p; echo $p > {TEST_DIR}/stopped-pid; break; fi; sleep 0.2; done",
                     log=f"{TEST_DIR}/stopped-at-start.log")
    # a fresh supervisor (no restarts in a row behind it, so its first wait is FIRST_FRAME)
    unit.guest.check("systemctl restart pollbox-kiosk.service", timeout=KIOSK_STARTS)
    stopped = wait_for(lambda: unit.guest.run(f"cat {TEST_DIR}/stopped-pid 2>/dev/null")[1].strip() or None,
                       "the new browser stopped at its start", KIOSK_HEALS)
    seen: list[tuple[str, int | None]] = []

    def verdict() -> list[str] | None:
        said = supervisor_said(unit)
        if any(f"no frame drawn within {FIRST_FRAME:g} s of the start; restarting" in line for line in said[before:]):
            return said
        seen.append((Kiosk(unit).shows(), frames(unit)))
        return None
    said = wait_for(verdict, "the supervisor restarting a kiosk that never drew", KIOSK_HEALS)
    print("KIOSK-HEAL-NEVER-DRAWN " + json.dumps({"seen_while_stopped": seen, "said": said[before:]}))
    assert seen and all(shown != "status" for shown, _ in seen), seen
    assert len({count for _, count in seen}) == 1, f"the page beat while nothing was drawn: {seen}"
    said = wait_for_said(unit, "the chair's screen is drawn", len(said), KIOSK_HEALS)
    kiosk_shows_status(unit, KIOSK_STARTS)
    assert browser_pid(unit) not in (None, int(stopped))


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


CHAIR_BUTTON = ("(function () { var r = document.querySelector('a.button[href=\"/chair\"]').getBoundingClientRect();"
                " return [(r.left + r.width / 2) / window.innerWidth, (r.top + r.height / 2) / window.innerHeight];"
                " })()")
"""Where the middle of the status screen's Chair button is, as a share of the window's width and height."""


def test_a_finger_on_the_panel_taps_the_kiosk(unit: ProbedUnit) -> None:
    """The touch poller, reading the kernel's i2c-stub in place of the panel's controller, is a touchscreen
    the kiosk takes like any other: a finger on the Chair button opens the chair's pages."""
    kiosk = Kiosk(unit)
    if unit.guest.run(f"python3 {CDP_GUEST} 1")[0] != 0:
        kiosk.open_devtools()
    kiosk_shows_status(unit, KIOSK_STARTS)
    bus = touch_rig.poll_the_stub(unit.guest, KIOSK_STOPS)
    assert kiosk.evaluate("location.pathname") == "/"
    share_x, share_y = kiosk.evaluate(CHAIR_BUTTON)
    width, height = Geometry().size
    tapped = touch_rig.tap(unit.guest, bus, round(share_x * (width - 1)), round(share_y * (height - 1)), KIOSK_STOPS)
    assert tapped["up"], tapped

    def opened() -> str | None:  # not evaluate(): mid-navigation DevTools may list the page with no address
        path = str(kiosk.answer("location.pathname")["value"])
        return path if path.startswith("/chair") else None
    assert wait_for(opened, "the chair's page opened by the tap", KIOSK_STOPS)
    kiosk.evaluate("location.assign('/')")  # back to the status screen for the next test
    kiosk_shows_status(unit, KIOSK_STARTS)


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
