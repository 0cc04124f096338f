"""What a directly driven ballot box unit does with its debounced inputs: the local safety rules.

``UnitState`` is shared by the GPIO backend and the simulated box, so both keep
the same contract. It holds the debounced inputs, the slot, the arm window,
jam detection and the heartbeat watchdog, decides the lamps and buzzer, and
emits ``BoxSignal``s. The backend feeds it debounced edges
(``input_changed``) and calls ``tick`` from its timer; ``drive`` (given by the
backend) writes the outputs and is called before any signal goes out, so the
slot is locked before the station hears of a drop.

Local rules (defence in depth; the station's interlock decides the count):
the slot locks on a drop (one ballot per ``arm``), a jam (beam blocked for
``Delays.jam_after``), the lid opening, the unit going missing, the arm window
(``Delays.arm_timeout``) ending, heartbeat loss (``Delays.heartbeat_timeout``
after the core's last heartbeat, counted from its first one: not during the
station's start checks) and any error. ``arm`` is refused (the slot stays locked, ``arms_refused``
counts it) while the lid is open, the slot is jammed or the unit is missing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from device.core.delays import Delays
from device.hardware.interfaces import BoxSignal, Clock, OnBoxSignal

from .watchdog import HeartbeatWatchdog, Ticker

log = logging.getLogger("pollbox.box")

OnSignal = OnBoxSignal

_EDGES = {
    ("beam", True): BoxSignal.BEAM_BLOCKED, ("beam", False): BoxSignal.BEAM_CLEARED,
    ("lid", True): BoxSignal.LID_OPENED, ("lid", False): BoxSignal.LID_CLOSED,
    ("present", True): BoxSignal.UNIT_FOUND, ("present", False): BoxSignal.UNIT_LOST,
}
TEST_OUTPUTS = ("lock", "green", "red", "buzzer")


class UnitState:
    """The unit's state and rules; every method must be called holding ``guard``."""

    def __init__(self, *, clock: Clock, delays: Delays, drive: Callable[[], None] = lambda: None) -> None:
        self.guard = threading.RLock()
        self._clock = clock
        self._delays = delays
        self.drive = drive
        self.watchdog = HeartbeatWatchdog(clock=clock, timeout=delays.heartbeat_timeout)
        self.inputs = {"beam": False, "lid": False, "present": True}
        self.slot_open = False
        self.arm_until: float | None = None
        self.blocked_since: float | None = None
        self.jammed = False
        self.tests: dict[str, bool] = {}
        self.locks: Counter[str] = Counter()
        self.arms = 0
        self.arms_refused = 0
        self.drops = 0
        self.last_error = ""
        self._on_signal: OnSignal | None = None
        self._lost_unreported = False
        self._ticker: Ticker | None = None

    def begin(self, on_signal: OnSignal, levels: dict[str, bool]) -> None:
        """Start with the inputs read at start-up; the slot is already locked."""
        self.inputs.update(levels)
        self.slot_open = False
        self.blocked_since = self._clock.monotonic() if self.inputs["beam"] else None
        self.watchdog.wait_first()  # its clock starts with the core's first heartbeat
        self._lost_unreported = not self.inputs["present"]
        self._on_signal = on_signal

    def end(self) -> None:
        self.lock("stopped")
        self._on_signal = None

    # Commands -------------------------------------------------------------------------

    def arm(self) -> None:
        """Open the slot for one ballot (an arm also proves the station is alive)."""
        self.watchdog.beat()
        refusal = self.arm_refusal()
        if refusal:
            self.arms_refused += 1
            log.warning("slot not opened: %s", refusal)
            return
        self.slot_open = True
        self.arm_until = self._clock.monotonic() + self._delays.arm_timeout
        self.tests.clear()
        self.arms += 1

    def arm_refusal(self) -> str:
        """Why the slot may not open now, or an empty string."""
        if self.inputs["lid"]:
            return "the lid is open"
        if self.jammed:
            return "the slot is jammed"
        if not self.inputs["present"]:
            return "the ballot box unit is not connected"
        return ""

    def lock(self, reason: str) -> None:
        if self.slot_open:
            self.locks[reason] += 1
        self.slot_open = False
        self.arm_until = None

    def heartbeat(self) -> None:
        self.watchdog.beat()

    def set_test_output(self, name: str, active: bool) -> None:
        """Self-test: force one output (the lock included) until the next ``arm``."""
        if name not in TEST_OUTPUTS:
            raise ValueError(f"no output named {name!r} (outputs: {', '.join(TEST_OUTPUTS)})")
        if name == "lock":
            self.slot_open = active
            self.arm_until = None
        else:
            self.tests[name] = active

    # Inputs and time --------------------------------------------------------------------

    def input_changed(self, part: str, active: bool, at: float) -> None:
        """A debounced edge of ``part`` that began at ``at``."""
        self.inputs[part] = active
        if part == "beam":
            self._beam(active, at)
        if part == "lid" and active:
            self.lock("lid opened")
        if part == "present":
            self._lost_unreported = False
            if not active:
                self.lock("unit lost")
        self.drive()
        self.emit(_EDGES[(part, active)], at)

    def _beam(self, blocked: bool, at: float) -> None:
        if blocked:
            self.drops += 1
            self.blocked_since = at
            self.lock("drop")
        else:
            self.blocked_since = None
            self.jammed = False

    def tick(self) -> None:
        """Run the timers: jam, arm window, heartbeat, an absent unit at start-up."""
        now = self._clock.monotonic()
        if self.blocked_since is not None and not self.jammed and now - self.blocked_since >= self._delays.jam_after:
            self.jammed = True
            self.lock("jam")
        if self.arm_until is not None and now >= self.arm_until:
            self.lock("arm window ended")
        if self.watchdog.check():
            log.error("no heartbeat for %g s: slot locked", self._delays.heartbeat_timeout)
            self.lock("heartbeat lost")
        self.drive()
        if self._lost_unreported:
            self._lost_unreported = False
            self.emit(BoxSignal.UNIT_LOST, now)

    def emit(self, signal: BoxSignal, at: float) -> None:
        if self._on_signal is not None:
            self._on_signal(signal, at)

    # Outputs ------------------------------------------------------------------------------

    @property
    def fault(self) -> bool:
        return bool(self.inputs["lid"] or self.jammed or self.watchdog.tripped or not self.inputs["present"])

    def outputs(self) -> dict[str, bool]:
        """Whether each output is active: the lock (open), the lamps, the buzzer."""
        wanted = {
            "lock": self.slot_open,
            "green": self.slot_open,
            "red": not self.slot_open and self.fault,
            "buzzer": bool(self.inputs["lid"] or self.jammed),
        }
        wanted.update(self.tests)
        return wanted

    @contextmanager
    def failsafe(self, drive: Callable[[], None]) -> Iterator[None]:
        """Any error inside locks the slot (and tries to drive the lock output) before it propagates."""
        try:
            yield
        except Exception as exc:
            self.lock("error")
            self.last_error = f"{type(exc).__name__}: {exc}"
            try:
                drive()
            finally:
                raise

    # Timer thread ---------------------------------------------------------------------------

    def start_ticker(self, period: float | None, check: Callable[[], None]) -> None:
        if period is None:
            return
        self._ticker = Ticker("pollbox-box", period, check, self._ticker_failed)
        self._ticker.start()

    def stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def _ticker_failed(self, exc: BaseException) -> None:
        with self.guard:
            self.lock("error")
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.drive()

    def health(self) -> dict[str, Any]:
        return {
            "slot_open": self.slot_open, "beam_blocked": self.inputs["beam"], "lid_open": self.inputs["lid"],
            "present": self.inputs["present"], "jammed": self.jammed,
            "watchdog_tripped": self.watchdog.tripped, "watchdog_trips": self.watchdog.trips,
            "arms": self.arms, "arms_refused": self.arms_refused, "drops": self.drops,
            "locks": dict(self.locks), "last_error": self.last_error,
        }
