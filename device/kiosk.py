"""The kiosk's supervisor: runs the compositor and browser that show the chair's screen, and restarts
them when nothing is drawn.

The unit ``pollbox-kiosk.service`` runs ``python -m device.kiosk -- <cage command>`` as its main
process. The supervisor starts the command in its own process group, then every ``POLL`` seconds
reads ``GET /kiosk/frames`` on the chair's screen (``web_ui/kiosk.py``): the count of frame beats the
page has posted from inside ``requestAnimationFrame``, which the browser runs only while it draws the
page into a shown window. ``FrameWatch`` decides from those readings alone, with the time passed in:

- no beat within ``FIRST_FRAME`` of a start: the browser never drew (its window never mapped); after
  restarts in a row that wait doubles, up to ``FIRST_FRAME_MAX``, so a slow start on a loaded unit is
  not cut short again and again;
- beats that stop for ``FRAMES_STOP`` once they came: the browser stopped drawing;
- a screen that does not answer, or answers without the heartbeat route (the first-boot refusal
  screen), blames nobody: the deadlines wait, since the page cannot send beats then.

On either verdict the command's whole process group gets SIGTERM, SIGKILL after ``STOP_GRACE``, and
the command starts again after a back-off that doubles from ``BACKOFF_FIRST`` to ``BACKOFF_MAX``;
a start that drew for ``HEALTHY_AFTER`` resets it. A command that exits by itself is started again
the same way. Each decision is one line on stderr (the unit sends it to the journal and the
console), saying why, so a technician can read what happened.

These delays belong to the kiosk, not to the appliance's core (``device/core/delays.py``); they are
here in one place. They allow for software emulation on a loaded host, where a healthy start takes
15-90 s; a Pi starts the browser in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.errors import UserError

FIRST_FRAME = 120.0
"""Seconds from starting the compositor and browser to the page's first frame beat before they are
restarted (a healthy start under software emulation took 15-86 s on a loaded host; on a Pi a few
seconds)."""
FIRST_FRAME_MAX = 480.0
"""The longest wait for a first frame, reached by doubling ``FIRST_FRAME`` for each restart in a row."""
FRAMES_STOP = 45.0
"""Seconds without a new frame beat, once beats came, before the kiosk is restarted (the page beats
every 5 s, ``BEAT_MS`` in ``web_ui/static/live.js``: nine beats missed)."""
POLL = 2.0
"""Seconds between two readings of the frame count and of the command's state."""
STOP_GRACE = 10.0
"""Seconds the command's process group has after SIGTERM before it gets SIGKILL."""
BACKOFF_FIRST = 2.0
"""Seconds before the first start again after a restart; doubled for each restart in a row."""
BACKOFF_MAX = 60.0
"""The longest wait before starting again."""
HEALTHY_AFTER = 120.0
"""Seconds of drawing after which a start counts as good: the next restart waits ``BACKOFF_FIRST`` again."""
READ_TIMEOUT = 5.0
"""Seconds one reading of the frame count may take."""
FRAMES_URL = "http://127.0.0.1:8080/kiosk/frames"
"""Where the chair's screen answers with its frame count (``web_ui/kiosk.py``)."""


class KioskError(UserError):
    """The kiosk's supervisor was started wrongly (no command to run)."""


@dataclass(frozen=True)
class Restart:
    """The verdict: stop the command and start it again, for ``reason``."""

    reason: str


class FrameWatch:
    """Whether one start of the kiosk is drawing, from frame counts read at times the caller gives.

    ``observe(now, frames)`` takes the count read at ``now`` (``None``: the screen did not answer or
    has no heartbeat) and returns a ``Restart`` or ``None``. Time spent without an answer does not
    count against the browser. A count lower than the last (the appliance restarted) is a new base.
    """

    def __init__(self, started: float, *, first_frame: float = FIRST_FRAME, frames_stop: float = FRAMES_STOP) -> None:
        self.started = started
        self.first_frame, self.frames_stop = first_frame, frames_stop
        self.base: int | None = None
        self.since = started
        """When the current wait began: the start, the last new beat, or the end of a time without answers."""
        self.first_beat: float | None = None
        self.blind = False

    @property
    def drawing(self) -> bool:
        return self.first_beat is not None

    def drew_for(self, now: float) -> float:
        """Seconds since this start's first beat (0 before it)."""
        return 0.0 if self.first_beat is None else now - self.first_beat

    def observe(self, now: float, frames: int | None) -> Restart | None:
        if frames is None:
            self.blind = True
            return None
        if self.blind:
            self.blind = False
            self.since = max(self.since, now)  # the page could not beat while the screen was away
        if self.base is None or frames < self.base:
            self.base = frames
            return self._verdict(now)
        if frames > self.base:
            self.base = frames
            self.since = now
            if self.first_beat is None:
                self.first_beat = now
            return None
        return self._verdict(now)

    def _verdict(self, now: float) -> Restart | None:
        waited = now - self.since
        if self.first_beat is None and waited >= self.first_frame:
            return Restart(f"no frame drawn within {self.first_frame:g} s of the start")
        if self.first_beat is not None and waited >= self.frames_stop:
            return Restart(f"frames stopped: none drawn for {self.frames_stop:g} s")
        return None


def backoff(restarts_in_a_row: int) -> float:
    """Seconds to wait before a start that follows ``restarts_in_a_row`` restarts (1 or more)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, restarts_in_a_row - 1))


class Command(Protocol):
    """A started kiosk command (``subprocess.Popen`` in the unit)."""

    pid: int

    def poll(self) -> int | None: ...


@dataclass
class Supervisor:
    """Starts ``argv``, watches its frames and restarts it; the world comes in through the callables.

    ``clock`` is monotonic seconds, ``read_frames`` one reading (``None`` when there is no answer),
    ``spawn`` starts the command, ``stop`` ends a started one, ``sleep`` waits and ``say`` logs a line.
    ``step`` is one poll; ``run`` polls until ``stopping`` returns true.
    """

    argv: Sequence[str]
    clock: Callable[[], float]
    read_frames: Callable[[], int | None]
    spawn: Callable[[Sequence[str]], Command]
    stop: Callable[[Command], None]
    sleep: Callable[[float], None]
    say: Callable[[str], None]
    command: Command | None = None
    watch: FrameWatch | None = None
    restarts: int = 0
    """Restarts in a row without a start that drew for ``HEALTHY_AFTER``."""
    starts: int = 0
    start_at: float = 0.0
    """When the next start is due (after a back-off)."""
    reported_first_frame: bool = False
    first_frame: float = FIRST_FRAME
    frames_stop: float = FRAMES_STOP
    poll: float = POLL

    def step(self) -> None:
        now = self.clock()
        if self.command is None:
            if now >= self.start_at:
                self._start(now)
            return
        assert self.watch is not None
        code = self.command.poll()
        if code is not None:
            self._again(now, f"the compositor exited with status {code}", stop=False)
            return
        verdict = self.watch.observe(now, self.read_frames())
        first = self.watch.first_beat
        if first is not None and not self.reported_first_frame:
            self.reported_first_frame = True
            self.say(f"start {self.starts}: the chair's screen is drawn,"
                     f" first frame {first - self.watch.started:.0f} s after the start")
        if self.restarts and self.watch.drew_for(now) >= HEALTHY_AFTER:
            self.restarts = 0
        if verdict is not None:
            self._again(now, verdict.reason, stop=True)

    def _start(self, now: float) -> None:
        self.starts += 1
        first_frame = min(max(self.first_frame, FIRST_FRAME_MAX), self.first_frame * 2.0 ** self.restarts)
        self.watch = FrameWatch(now, first_frame=first_frame, frames_stop=self.frames_stop)
        self.watch.observe(now, self.read_frames())  # the count before this start: only later beats are its own
        self.command = self.spawn(self.argv)
        self.reported_first_frame = False
        self.say(f"start {self.starts}: the compositor and browser started (pid {self.command.pid});"
                 f" waiting up to {first_frame:g} s for the first frame")

    def _again(self, now: float, reason: str, *, stop: bool) -> None:
        assert self.command is not None
        if stop:
            self.stop(self.command)
        self.command, self.watch = None, None
        self.restarts += 1
        wait = backoff(self.restarts)
        self.start_at = now + wait
        self.say(f"start {self.starts}: {reason}; restarting the compositor and browser in {wait:.0f} s"
                 f" (restart {self.restarts} in a row)")

    def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            self.step()
            self.sleep(self.poll)

    def shut(self) -> None:
        """End the running command, if any (the unit is stopping)."""
        if self.command is not None:
            self.stop(self.command)
            self.command = None


def read_frames(url: str = FRAMES_URL) -> int | None:
    """The screen's frame count, or ``None`` when it does not answer or has no heartbeat route."""
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as answer:
            value = json.loads(answer.read()).get("frames")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the kiosk command in a process group of its own (so a restart ends all of it)."""
    return subprocess.Popen(list(argv), start_new_session=True)


def stop_group(command: Command, *, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the command's process group, SIGKILL after ``grace``; waits for the command."""
    assert isinstance(command, subprocess.Popen)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(command.pid, sig)
        except ProcessLookupError:
            pass
        try:
            command.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(command.pid, signal.SIGKILL)  # whatever of the group outlived its leader
        except ProcessLookupError:
            pass
        return


def say(line: str) -> None:
    print(f"pollbox-kiosk: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device.kiosk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-url", default=FRAMES_URL, help="the screen's frame count (default: %(default)s)")
    parser.add_argument("--first-frame", type=float, default=FIRST_FRAME, metavar="SECONDS",
                        help="restart when a start draws nothing for this long (default: %(default)g)")
    parser.add_argument("--frames-stop", type=float, default=FRAMES_STOP, metavar="SECONDS",
                        help="restart when frames stop for this long (default: %(default)g)")
    parser.add_argument("--poll", type=float, default=POLL, metavar="SECONDS",
                        help="seconds between two readings (default: %(default)g)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the compositor and browser command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise KioskError("give the kiosk command after --, e.g. python -m device.kiosk -- cage -- chromium URL")
    stopping = [False]

    def on_term(signum: int, _frame: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    supervisor = Supervisor(argv=command, clock=time.monotonic, read_frames=lambda: read_frames(args.frames_url),
                            spawn=spawn, stop=stop_group, sleep=time.sleep, say=say,
                            first_frame=args.first_frame, frames_stop=args.frames_stop, poll=args.poll)
    try:
        supervisor.run(lambda: stopping[0])
    finally:
        supervisor.shut()
    say("stopped")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KioskError as exc:
        print(f"pollbox-kiosk: {exc}", file=sys.stderr)
        sys.exit(2)
