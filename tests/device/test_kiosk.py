"""The kiosk's supervisor (``device/kiosk.py``) on the host: its verdicts from frame counts, and its
restarts, back-off and log lines, with a fake clock, a fake screen and a fake command (no sleeps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device import kiosk
from device.kiosk import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    FIRST_FRAME,
    FIRST_FRAME_MAX,
    FRAMES_STOP,
    HEALTHY_AFTER,
    POLL,
    FrameWatch,
    KioskError,
    Restart,
    Supervisor,
    backoff,
)


def test_a_start_that_draws_is_left_alone() -> None:
    watch = FrameWatch(0.0)
    assert watch.observe(0.0, 7) is None
    assert watch.observe(FIRST_FRAME - 1, 7) is None
    assert watch.observe(FIRST_FRAME - 0.5, 8) is None and watch.drawing
    for t in range(1, 100):
        assert watch.observe(FIRST_FRAME + t * (FRAMES_STOP - 1), 8 + t) is None


def test_no_frame_within_the_first_frame_deadline_is_a_restart() -> None:
    watch = FrameWatch(100.0)
    assert watch.observe(100.0, 3) is None
    assert watch.observe(100.0 + FIRST_FRAME - 0.1, 3) is None
    verdict = watch.observe(100.0 + FIRST_FRAME, 3)
    assert verdict == Restart(f"no frame drawn within {FIRST_FRAME:g} s of the start")
    assert not watch.drawing


def test_frames_that_stop_are_a_restart() -> None:
    watch = FrameWatch(0.0)
    watch.observe(0.0, 0)
    watch.observe(20.0, 1)
    assert watch.observe(20.0 + FRAMES_STOP - 0.1, 1) is None
    assert watch.observe(20.0 + FRAMES_STOP, 1) == Restart(f"frames stopped: none drawn for {FRAMES_STOP:g} s")


def test_time_without_an_answer_does_not_count_against_the_browser() -> None:
    """The appliance restarting (or the first-boot screen, which has no heartbeat) blames nobody."""
    watch = FrameWatch(0.0)
    watch.observe(0.0, 0)
    for t in range(1, 200):
        assert watch.observe(float(t * 10), None) is None
    back = 2000.0
    assert watch.observe(back, 0) is None
    assert watch.observe(back + FIRST_FRAME - 0.1, 0) is None
    assert watch.observe(back + FIRST_FRAME, 0) is not None


def test_a_screen_without_the_heartbeat_is_never_a_restart() -> None:
    watch = FrameWatch(0.0)
    assert all(watch.observe(float(t), None) is None for t in range(0, 10_000, 7))


def test_a_count_that_falls_is_a_new_base_not_a_frame() -> None:
    """The appliance restarted and its count began again: only beats after that count."""
    watch = FrameWatch(0.0)
    watch.observe(0.0, 50)
    assert watch.observe(10.0, 2) is None and not watch.drawing
    assert watch.observe(11.0, 3) is None and watch.drawing


def test_the_back_off_doubles_to_its_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert backoff(50) == BACKOFF_MAX


@given(st.lists(st.floats(min_value=0.1, max_value=FRAMES_STOP - 0.1), min_size=1, max_size=40),
       st.floats(min_value=0.0, max_value=FIRST_FRAME - 0.1))
def test_beats_closer_than_the_deadlines_never_restart(gaps: list[float], first: float) -> None:
    watch = FrameWatch(0.0)
    watch.observe(0.0, 0)
    now, count = first, 1
    assert watch.observe(now, count) is None
    for gap in gaps:
        # a reading with no new beat just before the next one, then the beat
        assert watch.observe(now + gap, count) is None
        now += gap
        count += 1
        assert watch.observe(now, count) is None


# The supervisor with fakes ---------------------------------------------------------------------------

@dataclass
class FakeCommand:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class World:
    """The clock, the screen's frame count and the started commands, all under the test's control."""

    now: float = 0.0
    frames: int | None = 0
    started: list[FakeCommand] = field(default_factory=list)
    stopped: list[FakeCommand] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def spawn(self, argv: Sequence[str]) -> FakeCommand:
        assert list(argv) == ["cage", "--", "chromium"]
        command = FakeCommand(pid=100 + len(self.started))
        self.started.append(command)
        return command

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def supervisor(self) -> Supervisor:
        return Supervisor(argv=["cage", "--", "chromium"], clock=lambda: self.now, read_frames=lambda: self.frames,
                          spawn=self.spawn, stop=self.stopped.append, sleep=self.sleep, say=self.said.append)

    def run_for(self, sup: Supervisor, seconds: float, *, beat_every: float | None = None) -> None:
        """Poll for ``seconds``; the page beats every ``beat_every`` seconds if given."""
        end, next_beat = self.now + seconds, self.now + (beat_every or 0)
        while self.now < end:
            if beat_every is not None and self.now >= next_beat and self.frames is not None:
                self.frames += 1
                next_beat += beat_every
            sup.step()
            self.sleep(POLL)


def test_the_supervisor_starts_once_and_reports_the_first_frame() -> None:
    world = World()
    sup = world.supervisor()
    world.run_for(sup, 20 * 60, beat_every=5.0)
    assert len(world.started) == 1 and world.stopped == []
    assert "start 1: the compositor and browser started (pid 100)" in world.said[0]
    assert world.said[1] == "start 1: the chair's screen is drawn, first frame 6 s after the start"
    assert len(world.said) == 2


def test_the_supervisor_restarts_a_start_that_never_draws_then_backs_off() -> None:
    world = World()
    sup = world.supervisor()
    world.run_for(sup, FIRST_FRAME + POLL)
    assert world.stopped == world.started[:1]
    assert (f"start 1: no frame drawn within {FIRST_FRAME:g} s of the start; restarting the compositor and"
            f" browser in {BACKOFF_FIRST:g} s (restart 1 in a row)") in world.said
    world.run_for(sup, BACKOFF_FIRST + POLL)
    assert len(world.started) == 2
    assert world.said[-1].endswith(f"waiting up to {2 * FIRST_FRAME:g} s for the first frame"), \
        "a start after a restart gets longer for its first frame"
    # still nothing drawn: the next back-off is twice as long, and so on to the caps
    world.run_for(sup, 12 * (FIRST_FRAME_MAX + BACKOFF_MAX + 2 * POLL))
    waits = [line for line in world.said if "waiting up to" in line]
    assert waits[2].endswith(f"waiting up to {4 * FIRST_FRAME:g} s for the first frame")
    assert waits[-1].endswith(f"waiting up to {FIRST_FRAME_MAX:g} s for the first frame")
    restarts = [line for line in world.said if "; restarting" in line]
    assert restarts[1].endswith(f"in {2 * BACKOFF_FIRST:g} s (restart 2 in a row)")
    assert restarts[2].endswith(f"in {4 * BACKOFF_FIRST:g} s (restart 3 in a row)")
    assert restarts[-1].endswith(f"in {BACKOFF_MAX:g} s (restart {len(restarts)} in a row)")
    assert len(world.stopped) == len(restarts) and len(world.started) in (len(restarts), len(restarts) + 1)


def test_the_supervisor_heals_a_browser_that_stops_drawing_and_the_next_start_draws() -> None:
    world = World()
    sup = world.supervisor()
    world.run_for(sup, 60.0, beat_every=5.0)
    world.run_for(sup, FRAMES_STOP + POLL)  # the window is gone: no more beats
    assert world.stopped == world.started[:1]
    assert any(f"frames stopped: none drawn for {FRAMES_STOP:g} s; restarting" in line for line in world.said)
    world.run_for(sup, HEALTHY_AFTER + 60.0, beat_every=5.0)
    assert len(world.started) == 2 and len(world.stopped) == 1
    assert world.said[-1].startswith("start 2: the chair's screen is drawn")
    assert sup.restarts == 0, "a start that drew long enough resets the back-off"


def test_a_restart_in_a_row_without_healthy_drawing_keeps_the_back_off() -> None:
    world = World()
    sup = world.supervisor()
    world.run_for(sup, FIRST_FRAME + POLL)
    world.run_for(sup, BACKOFF_FIRST + POLL + 10.0, beat_every=5.0)  # draws briefly ...
    world.run_for(sup, FRAMES_STOP + POLL)  # ... then stops, before HEALTHY_AFTER
    assert sup.restarts == 2


def test_a_command_that_exits_is_started_again_without_a_kill() -> None:
    world = World()
    sup = world.supervisor()
    world.run_for(sup, 10.0, beat_every=5.0)
    world.started[0].code = 1
    world.run_for(sup, POLL)
    assert world.stopped == []
    assert "start 1: the compositor exited with status 1; restarting" in world.said[-1]
    world.run_for(sup, BACKOFF_FIRST + POLL)
    assert len(world.started) == 2


def test_the_first_boot_screen_without_a_heartbeat_is_left_running() -> None:
    world = World(frames=None)
    sup = world.supervisor()
    world.run_for(sup, 3600.0)
    assert len(world.started) == 1 and world.stopped == []


def test_stopping_ends_the_running_command() -> None:
    world = World()
    sup = world.supervisor()
    polls = iter(range(3))
    sup.run(lambda: next(polls, None) is None)
    assert len(world.started) == 1
    sup.shut()
    assert world.stopped == world.started


def test_no_command_is_a_clear_error() -> None:
    with pytest.raises(KioskError, match="after --"):
        kiosk.main(["--first-frame", "5"])
