"""The owner of the station's state: one thread that handles every message, one at a time.

Scanners, the ballot box, the chair's screen, the control socket and the timer
never change the station themselves: they put a message in the owner's inbox.
``post`` leaves a message and returns at once (hardware callbacks use it, so a
callback can never wait for the owner); ``call`` leaves one and waits for its
answer (chair actions, which must report a refusal). The owner thread takes
messages in order, runs each to the end, and runs ``on_idle`` (the appliance
publishes its status snapshot there) after each batch and before it answers a
request, so whoever asked then reads a snapshot that holds the answer. Nothing holds
a lock while it calls into hardware, so no two locks can ever be taken in
opposite orders: the hang of two threads each waiting for the other cannot
happen by construction.

Without a running thread (``start`` not called: tests that drive the station
step by step with a fake clock) the thread that posts drains the inbox itself,
so every message is still handled one at a time and in order; a message posted
while another is being handled (a box that answers ``lock()`` with a signal)
waits its turn instead of running inside the first.

The hand-over from draining in place to the owner thread: a hardware thread
may post (a scanner reporting its device found) in the moment the owner thread
starts, and so be draining in place when it does. The owner thread first waits
for that drain to end and then holds the right to drain for as long as it runs;
the thread that drained in place stops at its next message. Only the thread
holding that right ever records itself as the drainer, so a request the owner
thread makes of itself (the timer's tick) is always recognised and run in place.
(Before, the drain ending after the thread had started wiped that record, and
every tick from then on waited for itself until ``request_timeout``: the station
stalled and systemd's watchdog stopped it.)

A request still unanswered after ``stall_report`` seconds writes every thread's
stack to the debug log (logger ``pollbox.owner``), and again when it gives up
(``OwnerBusy``), so a stall names what the owner thread was doing.

``on_timer`` runs on the owner thread every ``interval`` seconds (the ticks
that expire tokens, time jams and feed the box's heartbeat).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from protocol.errors import UserError

log = logging.getLogger("pollbox.owner")

T = TypeVar("T")


class OwnerBusy(UserError, RuntimeError):
    """The owner did not answer a request within its timeout (the station is stuck or stopping)."""


@dataclass
class _Message:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    reply: _Reply | None = None


@dataclass
class _Reply:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


_STOP = _Message(lambda: None, ())


class Owner:
    """The inbox and the thread that drains it. ``on_idle`` runs after each batch."""

    def __init__(self, *, on_idle: Callable[[], None], name: str = "pollbox-owner",
                 request_timeout: float = 30.0, stall_report: float = 5.0) -> None:
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._draining = threading.Lock()
        self._drainer: int | None = None
        self._thread: threading.Thread | None = None
        self._on_idle = on_idle
        self._name = name
        self._timeout = request_timeout
        self._stall_report = min(stall_report, request_timeout)
        self.stopped = False

    @property
    def threaded(self) -> bool:
        """True once the owner thread runs (messages are then handled there only)."""
        return self._thread is not None

    # Sending ------------------------------------------------------------------------

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Leave a message; never waits for the owner."""
        self._inbox.put(_Message(fn, args))
        if self._thread is None:
            self._drain_here()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the owner and return its result (or raise its exception)."""
        if threading.get_ident() == self._drainer:
            return fn(*args)  # already the owner: a nested request runs in place
        if self.stopped and self._thread is not None:
            raise OwnerBusy("the station has stopped; the request was not carried out")
        reply = _Reply()
        self._inbox.put(_Message(fn, args, reply))
        if self._thread is None:
            self._drain_here()
        if not reply.done.wait(self._stall_report):
            log.warning("the owner thread has not answered %s for %g s; every thread's stack:\n%s",
                        _name(fn), self._stall_report, thread_stacks())
            if not reply.done.wait(self._timeout - self._stall_report):
                log.error("the owner thread did not answer %s within %g s; every thread's stack:\n%s",
                          _name(fn), self._timeout, thread_stacks())
                raise OwnerBusy(f"the station did not answer within {self._timeout:g} s; "
                                "if this repeats, restart the unit (everything recorded is kept)")
        if reply.error is not None:
            raise reply.error
        return reply.value  # type: ignore[no-any-return]

    def settle(self) -> None:
        """Return once every message posted before this call has been handled."""
        self.call(lambda: None)

    # The thread ---------------------------------------------------------------------

    def start(self, *, interval: float, on_timer: Callable[[], None]) -> None:
        """Start the owner thread; ``on_timer`` runs on it every ``interval`` seconds.

        The pace is real time even when the station runs on a fake clock: ``on_timer``
        reads the injected clock for everything it decides.
        """
        self._thread = threading.Thread(target=self._run, args=(interval, on_timer, time.monotonic),
                                        name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Handle what is queued, then end the thread. A second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout)

    def _run(self, interval: float, on_timer: Callable[[], None], monotonic: Callable[[], float]) -> None:
        with self._draining:  # a thread draining in place finishes its message first; none drains after
            self._drainer = threading.get_ident()
            try:
                self._loop(interval, on_timer, monotonic)
            finally:
                self._drainer = None

    def _loop(self, interval: float, on_timer: Callable[[], None], monotonic: Callable[[], float]) -> None:
        next_timer = monotonic() + interval
        while True:
            try:
                msg: _Message | None = self._inbox.get(timeout=max(0.0, next_timer - monotonic()))
            except queue.Empty:
                msg = None
            if msg is _STOP:
                break
            if msg is not None:
                self._handle(msg)
                if not self._handle_queued():
                    break
            if monotonic() >= next_timer:
                next_timer = monotonic() + interval
                self._guard(on_timer)
            self._guard(self._on_idle)
        self._fail_waiting()

    def _handle_queued(self) -> bool:
        """Handle what is in the inbox without waiting; False if the stop message came."""
        while True:
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                return True
            if msg is _STOP:
                return False
            self._handle(msg)

    def _drain_here(self) -> None:
        """No owner thread: this thread drains, unless another is draining (it will see the message).
        It stops at the next message once the owner thread has started (which then takes over)."""
        while not self._inbox.empty():
            if not self._draining.acquire(blocking=False):
                return
            try:
                self._drainer = threading.get_ident()
                while self._thread is None:
                    try:
                        msg = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if msg is _STOP:
                        break
                    self._handle(msg)
                self._guard(self._on_idle)
            finally:
                self._drainer = None
                self._draining.release()
            if self._thread is not None:
                return

    def _handle(self, msg: _Message) -> None:
        try:
            value = msg.fn(*msg.args)
        except BaseException as exc:  # noqa: BLE001 - a request's error goes back to its caller
            if msg.reply is None:
                log.exception("message %s failed", _name(msg.fn))
            else:
                msg.reply.error = exc
        else:
            if msg.reply is not None:
                msg.reply.value = value
        if msg.reply is not None:
            self._guard(self._on_idle)  # whoever asked reads a snapshot that holds what it asked for
            msg.reply.done.set()

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("%s failed", _name(fn))

    def _fail_waiting(self) -> None:
        """After the stop: anyone still waiting is told the station stopped."""
        while True:
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                return
            if msg.reply is not None:
                msg.reply.error = OwnerBusy("the station is stopping; the request was not carried out")
                msg.reply.done.set()


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def thread_stacks() -> str:
    """Every thread's name and current stack, innermost call last (for the debug log on a stall)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"Thread {names.get(ident, '?')} ({ident}):\n{stack}")
    return "\n".join(parts)
