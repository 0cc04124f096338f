"""The interfaces every hardware backend implements.

Backends call back into the appliance with plain values; they never touch the
journal or the core. Callbacks may come from a backend's own thread: the
appliance only posts them to its owner thread and returns, so a backend may
call back while holding its own lock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from device.core.inputs import BoxSignal as BoxSignal  # the signals are the core's words
from protocol.errors import PollboxError


class Clock(Protocol):
    """Wall time for records, monotonic time for timers."""

    def wall(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


# Ballot box -------------------------------------------------------------------

@dataclass(frozen=True)
class BoxInputs:
    """The unit's inputs as read at start-up.

    ``unit_drops`` is the unit's own persistent drop counter at start (a smart
    box keeps one across restarts); None for a unit without one, or one that
    did not answer yet (it then comes with ``UNIT_FOUND``). ``unit_id`` is
    the unit's own identity (hex) where it reports one.
    """

    beam_blocked: bool
    lid_open: bool
    unit_drops: int | None = None
    unit_id: str | None = None


class OnBoxSignal(Protocol):
    """The appliance's callback: ``(signal, monotonic_time)``, ``(signal, monotonic_time, count)`` or
    ``(signal, monotonic_time, count, unit_id)``.

    ``count`` comes only from a unit with a persistent drop counter: with
    ``BEAM_BLOCKED`` it is the unit's counter after that drop; with
    ``UNIT_FOUND`` it is the counter up to which every drop has been reported
    (the appliance journals any drop above what the journal holds). A unit
    that reports its identity adds ``unit_id`` to ``UNIT_FOUND``, so a
    replaced unit is told from drops the station did not hear. Units
    without a counter call with two arguments.
    """

    def __call__(self, signal: BoxSignal, at: float, count: int | None = None, unit_id: str | None = None,
                 /) -> None: ...


@runtime_checkable
class BallotBox(Protocol):
    """The ballot box unit: a slot lock, a drop sensor, a lid switch, lamps.

    Must: ``start`` locks the slot before anything else and returns the input
    state; ``arm`` opens the slot; ``lock`` closes it; ``heartbeat`` proves the
    core is alive (the backend locks the slot if heartbeats stop for
    ``Delays.heartbeat_timeout``; that clock starts with the first heartbeat
    after ``start``, which the station sends once its start checks are done);
    ``stop`` locks and releases the hardware.
    ``on_signal`` receives debounced edges as ``(signal, monotonic_time)``,
    plus the unit's drop counter where it has one (``OnBoxSignal``).
    """

    name: str

    def start(self, on_signal: OnBoxSignal) -> BoxInputs: ...

    def arm(self) -> None: ...

    def lock(self) -> None: ...

    def heartbeat(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


# Scanning -----------------------------------------------------------------------

class ScannerState(str, enum.Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    READING = "reading"


@dataclass(frozen=True)
class ScanRead:
    """One decoded symbol or typed line: the raw text never leaves memory."""

    text: str
    symbology: str
    source: str

    def __repr__(self) -> str:  # never print the payload
        return f"ScanRead(symbology={self.symbology!r}, source={self.source!r}, len={len(self.text)})"


@runtime_checkable
class ScanSource(Protocol):
    """A camera, a handheld scanner or the simulated source.

    ``start`` begins delivering reads to ``on_read`` and state changes to
    ``on_state`` (from the source's own thread); ``stop`` ends it.
    """

    name: str

    def start(self, on_read: Callable[[ScanRead], None], on_state: Callable[[ScannerState], None]) -> None: ...

    def stop(self) -> None: ...

    def state(self) -> ScannerState: ...


class Decoder(Protocol):
    """Turns a grayscale frame into the symbols it holds."""

    name: str

    def decode(self, gray: Any) -> list[ScanRead]:
        """``gray`` is a 2-D uint8 array (height x width)."""
        ...


# Uplink -------------------------------------------------------------------------

class UplinkError(PollboxError):
    """The link failed; the outbox keeps the records and retries later."""


# The ``Uplink`` protocol itself (``send``, ``probe``, ``close``) lives beside its
# reply type in ``device/upstream/uplink.py``.
