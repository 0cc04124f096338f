"""The ballot box unit wired straight to the Raspberry Pi's GPIO header (RPi.GPIO API).

Chosen by ``ballot_box = "gpio"``; built as ``GpioBallotBox(clock=, delays=,
pins=PinMap)``. ``RPi.GPIO`` is imported here and nowhere else: on a Pi 3, 4
or Zero 2 it is the RPi.GPIO package (``pip install .[pi]``); on a Pi 5 the
rpi-lgpio package provides the same module name (``pip install .[pi5]``).

Fail-safe: ``start`` drives the lock output to "locked" before any other pin
is touched; the slot locks again on every drop, on a jam, when the lid opens,
when the arm window ends, when heartbeats stop (``check``), on ``stop``, at
interpreter exit and on any error in a callback. Debouncing is ours
(``device.core.debounce``) with the injected clock; the library's
``bouncetime`` is not used. Edges arrive on RPi.GPIO's callback thread;
``check`` (called by a ``Ticker`` thread every ``tick_every`` seconds, or by
tests directly) samples the inputs again, confirms held edges and runs the
timers. All state changes happen under one re-entrant lock, and signals are
delivered in order.

The self-test hooks (``output_names``, ``set_output``, ...) serve
``selftest.run_selftest``.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

import RPi.GPIO as GPIO

from device.core.debounce import Debouncer
from device.core.delays import Delays
from device.hardware.interfaces import BoxInputs, Clock, OnBoxSignal

from .errors import BoxError
from .pins import DEFAULT_PINS, PinMap, PinSpec, pull_to_active
from .unit import UnitState

log = logging.getLogger("pollbox.box.gpio")

OnSignal = OnBoxSignal


class GpioBallotBox:
    """A slot lock, drop sensor, lid switch, lamps and buzzer on BCM pins."""

    name = "gpio"

    def __init__(self, *, clock: Clock, delays: Delays, pins: PinMap = DEFAULT_PINS,
                 tick_every: float | None = 0.005) -> None:
        self._clock = clock
        self._delays = delays
        self.pins = pins
        self._tick_every = tick_every
        self.unit = UnitState(clock=clock, delays=delays, drive=self._drive_if_started)
        self._debouncers: dict[str, Debouncer] = {}
        self._by_bcm: dict[int, str] = {spec.bcm: name for name, spec in pins.inputs().items()}
        self._driven: dict[str, bool] = {}
        self._keepalive_level = False
        self._started = False

    # BallotBox ---------------------------------------------------------------------

    def start(self, on_signal: OnSignal) -> BoxInputs:
        """Lock the slot first, then set up every other pin and read the inputs."""
        with self.unit.guard:
            GPIO.setwarnings(False)
            try:
                GPIO.setmode(GPIO.BCM)
                GPIO.setup(self.pins.lock.bcm, GPIO.OUT, initial=self._level(self.pins.lock, False))
            except Exception as exc:  # no GPIO chip, no access to it, the lock's line held by another program
                raise BoxError(f"ballot box GPIO cannot drive the slot lock on BCM {self.pins.lock.bcm} "
                               f"(is the GPIO chip there and free?): {exc}") from exc
            try:
                inputs = self._setup(on_signal)
            except Exception as exc:
                self._release()
                raise BoxError(f"ballot box GPIO set-up failed, slot left locked: {exc}") from exc
            atexit.register(self.stop)
            self._started = True
        self.unit.start_ticker(self._tick_every, self.check)
        return inputs

    def arm(self) -> None:
        with self.unit.guard:
            self._require_started()
            self.unit.arm()
            self._drive()

    def lock(self) -> None:
        with self.unit.guard:
            self.unit.lock("asked")
            self._drive_if_started()

    def heartbeat(self) -> None:
        self.unit.heartbeat()

    def stop(self) -> None:
        """Lock, turn everything off and release the pins (they fall back to their pull resistors)."""
        self.unit.stop_ticker()
        with self.unit.guard:
            self.unit.end()
            if self._started:
                self._drive()
                self._release()
            self._started = False
            atexit.unregister(self.stop)

    def health(self) -> dict[str, Any]:
        with self.unit.guard:
            return {"backend": self.name, "started": self._started, **self.unit.health(),
                    "pins": {name: {"bcm": s.bcm, "active_high": s.active_high}
                             for name, s in self.pins.parts().items()}}

    # Timer ---------------------------------------------------------------------------

    def check(self) -> None:
        """Sample the inputs, confirm held edges, run the timers and refresh the outputs."""
        with self.unit.guard:
            if not self._started:
                return
            with self.unit.failsafe(self._drive_if_started):
                for part in self._debouncers:
                    self._feed(part, GPIO.input(self._spec(part).bcm))
                for part, debouncer in self._debouncers.items():
                    if debouncer.settle(self._clock.monotonic()):
                        self.unit.input_changed(part, debouncer.level, self._when(debouncer))
                self.unit.tick()
                self._toggle_keepalive()
                self._drive()

    # Self-test hooks -----------------------------------------------------------------

    def output_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.pins.outputs() if name != "keepalive")

    def input_names(self) -> tuple[str, ...]:
        return tuple(self.pins.inputs())

    def set_output(self, name: str, active: bool) -> None:
        with self.unit.guard:
            self._require_started()
            self.unit.set_test_output(name, active)
            self._drive()

    def read_back(self, name: str) -> bool | None:
        """GPIO cannot see whether a lamp lit: the technician is asked."""
        return None

    def read_input(self, name: str) -> bool:
        with self.unit.guard:
            self._require_started()
            return self.unit.inputs[name]

    def expect_input(self, name: str, active: bool) -> None:
        """Real inputs are exercised by the technician; nothing to do here."""

    # Internals ---------------------------------------------------------------------

    def _setup(self, on_signal: OnSignal) -> BoxInputs:
        for name, spec in self.pins.outputs().items():
            if name != "lock":
                GPIO.setup(spec.bcm, GPIO.OUT, initial=self._level(spec, False))
        levels: dict[str, bool] = {}
        for name, spec in self.pins.inputs().items():
            towards_high = spec.level(pull_to_active(name))
            GPIO.setup(spec.bcm, GPIO.IN, pull_up_down=GPIO.PUD_UP if towards_high else GPIO.PUD_DOWN)
            levels[name] = spec.is_active(bool(GPIO.input(spec.bcm)))
            self._debouncers[name] = Debouncer(levels[name], self._delays.debounce)
        self.unit.begin(on_signal, levels)
        for spec in self.pins.inputs().values():
            GPIO.add_event_detect(spec.bcm, GPIO.BOTH, callback=self._edge)
        return BoxInputs(beam_blocked=levels["beam"], lid_open=levels["lid"], unit_drops=None)

    def _edge(self, channel: int) -> None:
        """RPi.GPIO's callback thread: one edge on ``channel``."""
        with self.unit.guard:
            part = self._by_bcm.get(channel)
            if part is None or not self._started:
                return
            with self.unit.failsafe(self._drive_if_started):
                self._feed(part, GPIO.input(channel))
                self._drive()

    def _feed(self, part: str, level: Any) -> None:
        debouncer = self._debouncers[part]
        if debouncer.feed(self._spec(part).is_active(bool(level)), self._clock.monotonic()):
            self.unit.input_changed(part, debouncer.level, self._when(debouncer))

    def _drive(self) -> None:
        wanted = self.unit.outputs()
        for name, active in wanted.items():
            spec = getattr(self.pins, name)
            if spec is not None and self._driven.get(name) != active:
                GPIO.output(spec.bcm, self._level(spec, active))
                self._driven[name] = active

    def _drive_if_started(self) -> None:
        if self._started:
            self._drive()

    def _toggle_keepalive(self) -> None:
        spec = self.pins.keepalive
        if spec is None:
            return
        self._keepalive_level = self.unit.slot_open and not self._keepalive_level
        GPIO.output(spec.bcm, self._keepalive_level)

    def _release(self) -> None:
        channels = [spec.bcm for spec in self.pins.parts().values()]
        for spec in self.pins.inputs().values():
            GPIO.remove_event_detect(spec.bcm)
        GPIO.output(self.pins.lock.bcm, self._level(self.pins.lock, False))
        GPIO.cleanup(channels)

    def _require_started(self) -> None:
        if not self._started:
            raise BoxError("the ballot box is not started")

    def _spec(self, part: str) -> PinSpec:
        spec = getattr(self.pins, part)
        assert isinstance(spec, PinSpec)
        return spec

    def _when(self, debouncer: Debouncer) -> float:
        return debouncer.changed_at if debouncer.changed_at is not None else self._clock.monotonic()

    @staticmethod
    def _level(spec: PinSpec, active: bool) -> int:
        return int(GPIO.HIGH if spec.level(active) else GPIO.LOW)
