"""The simulated ballot box: a slot lock, drop sensor and lid you trigger by hand.

Chosen by ``ballot_box = "sim"`` in config and refused in production mode.
``drop()``, ``open_lid()``, ``jam()`` and friends emit the same debounced
signals a real unit would; ``slot_open`` shows what the lock output would be.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from device.hardware.interfaces import BallotBox, BoxInputs, BoxSignal, Clock


class SimBallotBox(BallotBox):
    name = "sim"

    def __init__(self, *, clock: Clock, beam_blocked: bool = False, lid_open: bool = False) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._on_signal: Callable[[BoxSignal, float], None] | None = None
        self.beam_blocked = beam_blocked
        self.lid_open = lid_open
        self.slot_open = False
        self.present = True
        self.last_heartbeat: float | None = None
        self.arm_count = 0

    def start(self, on_signal: Callable[[BoxSignal, float], None]) -> BoxInputs:
        self.slot_open = False
        self._on_signal = on_signal
        return BoxInputs(beam_blocked=self.beam_blocked, lid_open=self.lid_open)

    def arm(self) -> None:
        self.slot_open = True
        self.arm_count += 1

    def lock(self) -> None:
        self.slot_open = False

    def heartbeat(self) -> None:
        self.last_heartbeat = self._clock.monotonic()

    def stop(self) -> None:
        self.slot_open = False
        self._on_signal = None

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "present": self.present, "slot_open": self.slot_open,
                "lid_open": self.lid_open, "beam_blocked": self.beam_blocked}

    # What a person does to the box -------------------------------------------------

    def drop(self) -> None:
        """A ballot falls through the slot: the beam is blocked, then clear."""
        self.block_beam()
        self.clear_beam()

    def block_beam(self) -> None:
        """Something stays in the slot (hold it for a jam)."""
        if not self.beam_blocked:
            self.beam_blocked = True
            self._emit(BoxSignal.BEAM_BLOCKED)

    def clear_beam(self) -> None:
        if self.beam_blocked:
            self.beam_blocked = False
            self._emit(BoxSignal.BEAM_CLEARED)

    def open_lid(self) -> None:
        if not self.lid_open:
            self.lid_open = True
            self._emit(BoxSignal.LID_OPENED)

    def close_lid(self) -> None:
        if self.lid_open:
            self.lid_open = False
            self._emit(BoxSignal.LID_CLOSED)

    def unplug(self) -> None:
        if self.present:
            self.present = False
            self._emit(BoxSignal.UNIT_LOST)

    def replug(self) -> None:
        if not self.present:
            self.present = True
            self._emit(BoxSignal.UNIT_FOUND)

    def _emit(self, signal: BoxSignal) -> None:
        with self._lock:
            if self._on_signal is not None:
                self._on_signal(signal, self._clock.monotonic())
