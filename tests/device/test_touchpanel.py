"""The touch poller of the 7-inch panel: registers to contacts, contacts to input events, the loop and its start.

The I2C bus and ``/dev/uinput`` are replaced by fakes here; ``tests/image/test_kiosk.py`` runs the
real poller in a booted image against the kernel's ``i2c-stub`` and taps the kiosk with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.hardware.touchpanel import ft5x06, poller
from device.hardware.touchpanel.ft5x06 import (
    ABS_MT_POSITION_X,
    ABS_MT_POSITION_Y,
    ABS_MT_SLOT,
    ABS_MT_TRACKING_ID,
    ABS_X,
    ABS_Y,
    BLOCK,
    BTN_TOUCH,
    CONTACT,
    DOWN,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    NONE,
    UP,
    Event,
    FrameError,
    Geometry,
    Point,
    Touches,
    parse,
)

PANEL = Geometry()


def block(contacts: Sequence[tuple[int, int, int, int]], count: int | None = None) -> bytes:
    """The controller's register block for (flag, touch id, x, y) contacts, as a panel writes it."""
    data = bytearray(BLOCK)
    data[0] = len(contacts) if count is None else count
    for n, (flag, touch_id, x, y) in enumerate(contacts):
        data[1 + 6 * n: 7 + 6 * n] = bytes([flag << 6 | x >> 8, x & 0xFF, touch_id << 4 | y >> 8, y & 0xFF, 30, 0])
    return bytes(data)


def replay(events: Sequence[Event], slots: dict[int, tuple[int, Point]], state: dict[str, int]) -> None:
    """What a reader of protocol B makes of ``events``: live slots' (tracking id, point), BTN_TOUCH, ABS_X/Y."""
    for kind, code, value in events:
        if kind == EV_ABS and code == ABS_MT_SLOT:
            state["slot"] = value
        elif kind == EV_ABS and code == ABS_MT_TRACKING_ID:
            if value < 0:
                del slots[state["slot"]]
            else:
                assert all(value != tid for tid, _ in slots.values()), "a tracking id reused while live"
                slots[state["slot"]] = (value, (-1, -1))
        elif kind == EV_ABS and code in (ABS_MT_POSITION_X, ABS_MT_POSITION_Y):
            tid, (x, y) = slots[state["slot"]]
            slots[state["slot"]] = (tid, (value, y) if code == ABS_MT_POSITION_X else (x, value))
        elif kind == EV_KEY and code == BTN_TOUCH:
            state["touch"] = value
        elif kind == EV_ABS and code in (ABS_X, ABS_Y):
            state["x" if code == ABS_X else "y"] = value


def test_a_frame_gives_the_contacts_on_the_glass() -> None:
    frame = block([(DOWN, 0, 100, 200), (CONTACT, 3, 799, 479), (UP, 1, 5, 5)])
    assert parse(frame, PANEL) == {0: (100, 200), 3: (799, 479)}
    assert parse(block([]), PANEL) == {}
    assert parse(block([(NONE, 2, 9, 9)]), PANEL) == {}


def test_a_panel_mounted_otherwise_is_turned() -> None:
    frame = block([(CONTACT, 0, 10, 20)])
    assert parse(frame, Geometry(flip_x=True, flip_y=True)) == {0: (789, 459)}
    assert parse(frame, Geometry(swap_xy=True)) == {0: (20, 10)}
    assert Geometry(swap_xy=True).size == (480, 800)
    assert parse(block([(CONTACT, 0, 4000, 4000)]), PANEL) == {0: (799, 479)}  # clamped to the panel


@pytest.mark.parametrize(("frame", "words"), [
    (block([], count=0x0F), "reports 15 contacts"),
    (block([(CONTACT, 12, 1, 1)]), "touch id 12"),
    (block([(CONTACT, 1, 1, 1), (DOWN, 1, 2, 2)]), "touch id 1 is reported twice"),
    (block([])[:-1], "30 bytes, not 31"),
])
def test_a_frame_the_controller_cannot_have_sent_is_refused(frame: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        parse(frame, PANEL)


def test_a_panel_size_that_cannot_be_is_refused() -> None:
    with pytest.raises(ValueError, match="0x480 is not possible"):
        Geometry(0, 480)


@given(st.binary(min_size=BLOCK, max_size=BLOCK))
def test_any_block_is_contacts_on_the_panel_or_refused(raw: bytes) -> None:
    try:
        contacts = parse(raw, PANEL)
    except FrameError:
        return
    assert len(contacts) <= ft5x06.MAX_CONTACTS
    assert all(0 <= t <= ft5x06.MAX_TOUCH_ID and 0 <= x < 800 and 0 <= y < 480 for t, (x, y) in contacts.items())


contact_sets = st.dictionaries(st.integers(0, 9), st.tuples(st.integers(0, 799), st.integers(0, 479)), max_size=5)


@given(st.lists(contact_sets, max_size=12))
def test_the_events_say_exactly_the_contacts_of_each_frame(frames: list[Mapping[int, Point]]) -> None:
    touches, state = Touches(), {"slot": 0, "touch": 0}
    slots: dict[int, tuple[int, Point]] = {}
    before: Mapping[int, Point] = {}
    for contacts in [*frames, {}]:
        touches, events = touches.step(contacts)
        if contacts == before:
            assert events == []
            continue
        assert events[-1] == (EV_SYN, 0, 0) and all(kind != EV_SYN for kind, _, _ in events[:-1])
        replay(events, slots, state)
        assert {slot: point for slot, (_, point) in slots.items()} == dict(contacts)
        assert state["touch"] == int(bool(contacts))
        if contacts:
            assert (state["x"], state["y"]) == contacts[min(contacts)]
        before = contacts
    assert slots == {} and touches.slots == {}


def test_a_touch_held_and_moved_keeps_its_tracking_id() -> None:
    touches, down = Touches().step({2: (10, 10)})
    touches, moved = touches.step({2: (12, 10)})
    assert (EV_ABS, ABS_MT_TRACKING_ID, 0) in down
    assert moved == [(EV_ABS, ABS_MT_SLOT, 2), (EV_ABS, ABS_MT_POSITION_X, 12), (EV_ABS, ABS_X, 12), (EV_SYN, 0, 0)]
    touches, _ = touches.step({})
    _, again = touches.step({2: (12, 10)})
    assert (EV_ABS, ABS_MT_TRACKING_ID, 1) in again  # a new contact, a new tracking id


class Bus:
    """The controller's registers as a fake bus: one answer per read, then it stops the loop."""

    def __init__(self, answers: list[bytes | OSError]) -> None:
        self.answers, self.reads = answers, 0

    def read_block(self, register: int, length: int) -> bytes:
        assert (register, length) == (ft5x06.FIRST_REGISTER, BLOCK)
        answer = self.answers[self.reads]
        self.reads += 1
        if isinstance(answer, OSError):
            raise answer
        return answer

    def close(self) -> None:
        pass


class Screen:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: Sequence[Event]) -> None:
        self.events += events

    def close(self) -> None:
        pass


def run(answers: list[bytes | OSError]) -> tuple[Screen, list[float]]:
    bus, screen = Bus(answers), Screen()
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return bus.reads == len(answers)

    poller.poll(bus, screen, PANEL, poller.Panel(1, 0x38), wait)
    return screen, waits


def live(events: Sequence[Event]) -> dict[int, Point]:
    slots: dict[int, tuple[int, Point]] = {}
    replay(events, slots, {"slot": 0, "touch": 0})
    return {slot: point for slot, (_, point) in slots.items()}


def test_a_tap_is_a_touch_down_and_up(caplog: pytest.LogCaptureFixture) -> None:
    screen, waits = run([block([]), block([(DOWN, 0, 400, 240)]), block([(CONTACT, 0, 400, 240)]), block([])])
    touches = [v for kind, code, v in screen.events if (kind, code) == (EV_KEY, BTN_TOUCH)]
    assert touches == [1, 0] and live(screen.events) == {}
    assert waits == [poller.POLL] * 4


def test_a_panel_that_stops_answering_lifts_the_touch_and_is_read_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pollbox.touch")
    gone = OSError(121, "Remote I/O error")
    screen, waits = run([block([]), block([(DOWN, 0, 1, 1)]), gone, gone, block([]), block([(DOWN, 0, 5, 5)]),
                         block([(CONTACT, 0, 5, 5)])])
    touches = [v for kind, code, v in screen.events if (kind, code) == (EV_KEY, BTN_TOUCH)]
    assert touches == [1, 0, 1, 0]  # lifted when it stopped answering, and at the poller's stop
    assert waits == [poller.POLL, poller.POLL, poller.RETRY, poller.RETRY, poller.POLL, poller.POLL, poller.POLL]
    said = [r.getMessage() for r in caplog.records]
    assert said == ["the touch panel on i2c-1 at 0x38 does not answer (Remote I/O error); trying again every 1 s",
                    "the touch panel on i2c-1 at 0x38 answers again"]


def test_a_frame_not_understood_is_skipped_and_the_touch_kept(caplog: pytest.LogCaptureFixture) -> None:
    screen, _ = run([block([]), block([(DOWN, 0, 1, 1)]), block([], count=0xFF), block([(CONTACT, 0, 1, 1)])])
    touches = [v for kind, code, v in screen.events if (kind, code) == (EV_KEY, BTN_TOUCH)]
    assert touches == [1, 0]
    assert "touch frame 1 not understood, skipped: the touch controller reports 15 contacts" in caplog.text


@pytest.mark.parametrize("again", [False, True])
def test_a_touch_left_in_the_registers_from_before_is_not_a_touch(again: bool) -> None:
    """At the start (or once the panel answers again) the controller may still hold its last frame."""
    old = block([(CONTACT, 0, 1, 1)])
    before: list[bytes | OSError] = [block([]), OSError(121, "Remote I/O error")] if again else []
    screen, _ = run([*before, old, old, block([]), block([(DOWN, 0, 7, 7)]), block([])])
    assert live(screen.events) == {}
    points = [(v, code) for kind, code, v in screen.events if code in (ABS_MT_POSITION_X, ABS_MT_POSITION_Y)]
    assert points == [(7, ABS_MT_POSITION_X), (7, ABS_MT_POSITION_Y)]  # the old (1, 1) never came out
    screen, _ = run([old, block([(CONTACT, 0, 1, 1), (DOWN, 1, 9, 9)])])  # another finger: the status changes
    assert [v for kind, code, v in screen.events if code == ABS_MT_POSITION_X] == [1, 9]


def sysfs(root: Path, name: str, compatible: bytes, driver: str | None = None) -> None:
    device = root / "bus/i2c/devices" / name
    (device / "of_node").mkdir(parents=True)
    (device / "of_node/compatible").write_bytes(compatible)
    if driver:
        (root / "drivers" / driver).mkdir(parents=True)
        (device / "driver").symlink_to(root / "drivers" / driver)


def test_the_panel_is_found_where_the_overlay_put_it(tmp_path: Path) -> None:
    never = Probing(tmp_path, appears=None)
    assert "no touch panel in the device tree" in str(poller.find_panel(tmp_path, never))
    sysfs(tmp_path, "10-0045", b"raspberrypi,7inch-touchscreen-panel\0")
    sysfs(tmp_path, "11-0038", b"edt,edt-ft5406\0")
    assert poller.find_panel(tmp_path, never) == poller.Panel(11, 0x38)
    assert never.waits == 0


def tree_node(root: Path, path: str, compatible: bytes, status: bytes | None = None) -> None:
    node = root / "firmware/devicetree/base" / path
    node.mkdir(parents=True)
    (node / "compatible").write_bytes(compatible)
    if status is not None:
        (node / "status").write_bytes(status)


class Probing:
    """``wait`` for find_panel: the I2C device appears after ``appears`` waits (never when None)."""

    def __init__(self, root: Path, appears: int | None) -> None:
        self.root, self.appears, self.waits = root, appears, 0

    def __call__(self, seconds: float) -> bool:
        assert seconds == poller.RETRY
        self.waits += 1
        if self.waits == self.appears:
            sysfs(self.root, "11-0038", b"edt,edt-ft5406\0")
        return False


def test_a_panel_in_the_tree_whose_bus_is_still_probing_is_waited_for(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tree_node(tmp_path, "i2c-mux0/i2c@1/panel@45", b"raspberrypi,7inch-touchscreen-panel\0")
    tree_node(tmp_path, "i2c-mux0/i2c@1/touchscreen@38", b"edt,edt-ft5406\0", b"okay\0")
    probing = Probing(tmp_path, appears=3)
    assert poller.find_panel(tmp_path, probing) == poller.Panel(11, 0x38)
    assert probing.waits == 3
    assert "the device tree has a touch panel at /i2c-mux0/i2c@1/touchscreen@38; waiting for its I2C bus" in (
        capsys.readouterr().out)


def test_a_panel_in_the_tree_whose_bus_never_comes_up_is_given_up(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tree_node(tmp_path, "i2c-mux0/i2c@1/touchscreen@38", b"edt,edt-ft5406\0")
    probing = Probing(tmp_path, appears=None)
    with pytest.raises(poller.TouchSetupError, match="no I2C device for it came up within 60 s"):
        poller.find_panel(tmp_path, probing)
    assert probing.waits == poller.BUS_APPEARS / poller.RETRY
    too_late = Probing(tmp_path, appears=round(poller.BUS_APPEARS / poller.RETRY) + 1)
    with pytest.raises(poller.TouchSetupError):
        poller.find_panel(tmp_path, too_late)


def test_the_poller_stops_waiting_when_told_to(tmp_path: Path) -> None:
    tree_node(tmp_path, "soc/i2c@7e804000/touchscreen@38", b"edt,edt-ft5406\0")
    assert "stopped while waiting" in str(poller.find_panel(tmp_path, lambda seconds: True))


def test_a_disabled_or_other_node_in_the_tree_is_no_panel(tmp_path: Path) -> None:
    tree_node(tmp_path, "soc/i2c@7e804000/touchscreen@38", b"edt,edt-ft5406\0", b"disabled\0")
    tree_node(tmp_path, "soc/i2c@7e804000/rtc@68", b"nxp,pcf8523\0")
    never = Probing(tmp_path, appears=None)
    assert "no touch panel in the device tree" in str(poller.find_panel(tmp_path, never))
    assert never.waits == 0


def test_a_panel_that_never_comes_up_exits_so_it_is_not_restarted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tree_node(tmp_path, "i2c-mux0/i2c@1/touchscreen@38", b"edt,edt-ft5406\0")
    monkeypatch.setattr(poller, "BUS_APPEARS", 0.0)
    assert poller.main([], sys_root=tmp_path) == poller.NEVER_CAME_UP == 3
    assert "pollbox-touch: the device tree has a touch panel at /i2c-mux0/i2c@1/touchscreen@38, but no I2C" in (
        capsys.readouterr().err)


def test_a_panel_a_kernel_driver_took_is_left_to_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sysfs(tmp_path, "11-0038", b"edt,edt-ft5406\0", driver="edt_ft5x06")
    assert poller.main([], sys_root=tmp_path) == 0
    assert "the kernel's driver (edt_ft5x06) takes the touch panel on 11-0038: nothing to do" in capsys.readouterr().out


def test_a_bus_that_is_not_there_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert poller.main(["--bus", "7"], sys_root=tmp_path, dev=tmp_path) == 1
    assert f"{tmp_path}/i2c-7 is missing: is the i2c-dev module loaded?" in capsys.readouterr().err


@pytest.mark.parametrize("typed", ["0x99", "panel", "2"])
def test_an_address_that_cannot_be_is_refused(typed: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        poller.main(["--bus", "1", "--address", typed])
    assert stopped.value.code == 2
    assert f"{typed!r} is not an I2C device address (0x03 to 0x77, such as 0x38)" in capsys.readouterr().err


def test_a_panel_size_that_cannot_be_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    assert poller.main(["--bus", "1", "--width", "0"]) == 2
    assert "a touch panel of 0x480 is not possible" in capsys.readouterr().err
