"""The simulated ballot box: a slot lock, drop sensor and lid you trigger by hand.

Chosen by ``ballot_box = "sim"`` in config and refused in production mode.
It keeps the same local safety rules as the GPIO unit (``boxes/unit.py``:
lock on drop, jam, lid, heartbeat loss, arm window) and emits the same
signals; its inputs are clean, so nothing is debounced. ``drop()``,
``block_beam()``, ``open_lid()``, ``unplug()`` and friends are what a person
does to the box; ``slot_open`` shows what the lock output would be.

``check()`` runs the timers: call it from tests after advancing a fake clock,
or pass ``tick_every`` (seconds) to run it on a timer thread in a demo. For the
self-test, ``expect_input`` makes the simulated technician exercise the input
at once, and ``read_back`` reports the simulated outputs.
"""

from __future__ import annotations

from typing import Any

from device.core.delays import DEFAULT_DELAYS, Delays
from device.hardware.boxes.unit import TEST_OUTPUTS, UnitState
from device.hardware.interfaces import BoxInputs, Clock, OnBoxSignal


class SimBallotBox:
    name = "sim"

    def __init__(self, *, clock: Clock, delays: Delays = DEFAULT_DELAYS, beam_blocked: bool = False,
                 lid_open: bool = False, tick_every: float | None = None) -> None:
        self._clock = clock
        self.unit = UnitState(clock=clock, delays=delays)
        self.unit.inputs.update(beam=beam_blocked, lid=lid_open)
        self._tick_every = tick_every
        self.last_heartbeat: float | None = None

    # BallotBox ---------------------------------------------------------------------------

    def start(self, on_signal: OnBoxSignal) -> BoxInputs:
        with self.unit.guard:
            self.unit.begin(on_signal, dict(self.unit.inputs))
            inputs = BoxInputs(beam_blocked=self.beam_blocked, lid_open=self.lid_open, unit_drops=None)
        self.unit.start_ticker(self._tick_every, self.check)
        return inputs

    def arm(self) -> None:
        with self.unit.guard:
            self.unit.arm()

    def lock(self) -> None:
        with self.unit.guard:
            self.unit.lock("asked")

    def heartbeat(self) -> None:
        with self.unit.guard:
            self.unit.heartbeat()
            self.last_heartbeat = self._clock.monotonic()

    def stop(self) -> None:
        self.unit.stop_ticker()
        with self.unit.guard:
            self.unit.end()

    def health(self) -> dict[str, Any]:
        with self.unit.guard:
            return {"backend": self.name, **self.unit.health()}

    def check(self) -> None:
        """Run the timers (jam, arm window, heartbeat)."""
        with self.unit.guard, self.unit.failsafe(lambda: None):
            self.unit.tick()

    # What the box shows ----------------------------------------------------------------------

    @property
    def slot_open(self) -> bool:
        return self.unit.slot_open

    @property
    def beam_blocked(self) -> bool:
        return self.unit.inputs["beam"]

    @property
    def lid_open(self) -> bool:
        return self.unit.inputs["lid"]

    @property
    def present(self) -> bool:
        return self.unit.inputs["present"]

    @property
    def arm_count(self) -> int:
        return self.unit.arms

    # What a person does to the box -------------------------------------------------------------

    def drop(self) -> None:
        """A ballot falls through the slot: the beam is blocked, then clear."""
        self.block_beam()
        self.clear_beam()

    def block_beam(self) -> None:
        """Something stays in the slot (hold it past ``jam_after`` for a jam)."""
        self._set("beam", True)

    def clear_beam(self) -> None:
        self._set("beam", False)

    def open_lid(self) -> None:
        self._set("lid", True)

    def close_lid(self) -> None:
        self._set("lid", False)

    def unplug(self) -> None:
        self._set("present", False)

    def replug(self) -> None:
        self._set("present", True)

    def _set(self, part: str, active: bool) -> None:
        with self.unit.guard:
            if self.unit.inputs[part] != active:
                self.unit.input_changed(part, active, self._clock.monotonic())

    # Self-test hooks ---------------------------------------------------------------------------

    def output_names(self) -> tuple[str, ...]:
        return TEST_OUTPUTS

    def input_names(self) -> tuple[str, ...]:
        return ("beam", "lid", "present")

    def set_output(self, name: str, active: bool) -> None:
        with self.unit.guard:
            self.unit.set_test_output(name, active)

    def read_back(self, name: str) -> bool | None:
        with self.unit.guard:
            return self.unit.outputs()[name]

    def read_input(self, name: str) -> bool:
        with self.unit.guard:
            return self.unit.inputs[name]

    def expect_input(self, name: str, active: bool) -> None:
        """The simulated technician does at once what the self-test asks."""
        self._set(name, active)
