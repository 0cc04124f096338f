"""The heartbeat watchdog and the timer thread that drives a backend's ``check``.

``HeartbeatWatchdog`` remembers the last heartbeat from the station core and
says when none has come for ``Delays.heartbeat_timeout``; the backend then
locks the slot and refuses to arm until heartbeats return. Its clock starts
with the core's first heartbeat, not with the box: a backend starts (and
``wait_first`` resets) it waiting, because the station verifies its journal
between starting the box and its first heartbeat, and that may take longer
than the timeout (the slot is locked meanwhile; nothing can arm it before the
core runs). It reads time only from the injected clock, so tests advance a
fake clock and call ``check``.

``Ticker`` is the production timer: a daemon thread that calls a backend's
``check()`` every ``period`` seconds until stopped. Tests do not start it
(backends take ``tick_every=None``) and call ``check()`` themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from device.hardware.interfaces import Clock

log = logging.getLogger("pollbox.box")


class HeartbeatWatchdog:
    """Trips when no heartbeat has come for ``timeout`` seconds since the last one; a new heartbeat resets it.

    Before the first heartbeat (``last_beat`` is None) it waits and never trips.
    """

    def __init__(self, *, clock: Clock, timeout: float) -> None:
        self._clock = clock
        self.timeout = timeout
        self.last_beat: float | None = None
        self.tripped = False
        self.trips = 0

    def wait_first(self) -> None:
        """Wait for a first heartbeat again (a box starting): the clock starts with it."""
        self.last_beat = None
        self.tripped = False

    def beat(self) -> None:
        self.last_beat = self._clock.monotonic()
        self.tripped = False

    def check(self) -> bool:
        """True exactly when the watchdog trips now (it stays tripped until the next beat)."""
        if self.tripped or self.last_beat is None or self._clock.monotonic() - self.last_beat < self.timeout:
            return False
        self.tripped = True
        self.trips += 1
        return True

    @property
    def alive(self) -> bool:
        """True once heartbeats have started and the last one is recent."""
        return (not self.tripped and self.last_beat is not None
                and self._clock.monotonic() - self.last_beat < self.timeout)


class Ticker:
    """Calls ``action`` every ``period`` seconds on a daemon thread; ``on_error`` sees any exception."""

    def __init__(self, name: str, period: float, action: Callable[[], None],
                 on_error: Callable[[BaseException], None]) -> None:
        self._period = period
        self._action = action
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self._period + 1)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._action()
            except Exception as exc:  # the box must fail locked, never silently
                log.exception("ballot box timer failed")
                self._on_error(exc)
