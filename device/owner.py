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

``on_timer`` runs on the owner thread every ``interval`` seconds (the ticks
that expire tokens, time jams and feed the box's heartbeat).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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
                 request_timeout: float = 30.0) -> None:
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._draining = threading.Lock()
        self._drainer: int | None = None
        self._thread: threading.Thread | None = None
        self._on_idle = on_idle
        self._name = name
        self._timeout = request_timeout
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
        if not reply.done.wait(self._timeout):
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
        self._drainer = threading.get_ident()
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
        """No owner thread: this thread drains, unless another is draining (it will see the message)."""
        while not self._inbox.empty():
            if not self._draining.acquire(blocking=False):
                return
            try:
                self._drainer = threading.get_ident()
                self._handle_queued()
                self._guard(self._on_idle)
            finally:
                self._drainer = None
                self._draining.release()

    def _handle(self, msg: _Message) -> None:
        try:
            value = msg.fn(*msg.args)
        except BaseException as exc:  # noqa: BLE001 - a request's error goes back to its caller
            if msg.reply is None:
                log.exception("message %s failed", getattr(msg.fn, "__name__", msg.fn))
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
            log.exception("%s failed", getattr(fn, "__name__", fn))

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
