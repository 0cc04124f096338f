"""Test rigs: one ballot box backend on its fake hardware, plus a small station driving the real interlock.

A ``Rig`` gives every backend the same verbs (``block``, ``clear``,
``open_lid``, ``unplug``...; ``slot_open`` reads the physical lock output),
so the contract and the fault scenarios run unchanged against the simulated
box, the GPIO backend on ``FakeGPIO`` and the smart box backend talking to
the real firmware (``Board`` on ``FakeMachine``) over a ``Wire``.

``Station`` stands in for the appliance: it feeds signals and time to the
pure interlock (``device.core.interlock.step``), arms the box on an admission,
locks it whenever the interlock says the slot should not be open, and sends
heartbeats every ``Delays.heartbeat_interval`` unless told to stop.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from device.core import interlock as il
from device.core.delays import Delays
from device.hardware.interfaces import BoxInputs, BoxSignal

from .fakes import FakeClock, FakeGPIO, FakeMachine, Wire

STEP = 0.005
TEST_DELAYS = Delays(arm_timeout=4.0, double_drop_window=10.0, jam_after=1.0, heartbeat_timeout=1.5,
                     heartbeat_interval=0.5, debounce=0.02)
FIRMWARE_MODULES = ("boxproto", "boxlogic", "boxstore", "board", "debounce", "main", "machine")


class Rig:
    name = ""
    box: Any

    def __init__(self, delays: Delays = TEST_DELAYS) -> None:
        self.clock = FakeClock()
        self.delays = delays
        self.signals: list[tuple[BoxSignal, float]] = []
        self.counts: list[tuple[BoxSignal, int | None]] = []
        self.units: list[tuple[BoxSignal, str | None]] = []
        self.listeners: list[Any] = []

    def on_signal(self, signal: BoxSignal, at: float, count: int | None = None, unit_id: str | None = None,
                  /) -> None:
        self.signals.append((signal, at))
        self.counts.append((signal, count))
        self.units.append((signal, unit_id))
        for listener in self.listeners:
            listener(signal, at)

    def start(self) -> BoxInputs:
        inputs: BoxInputs = self.box.start(self.on_signal)
        return inputs

    def names(self) -> list[BoxSignal]:
        return [s for s, _ in self.signals]

    def advance(self, seconds: float, each: Any = None) -> None:
        """Let ``seconds`` pass in small steps; ``each`` runs after every step."""
        for _ in range(max(1, round(seconds / STEP))):
            self.clock.advance(STEP)
            self.step()
            if each is not None:
                each()

    def step(self) -> None:
        self.box.check()

    def drop(self) -> None:
        """A ballot falls through the beam (60 ms)."""
        self.block()
        self.advance(0.06)
        self.clear()
        self.advance(0.06)

    # Per backend
    def block(self) -> None: ...
    def clear(self) -> None: ...
    def open_lid(self) -> None: ...
    def close_lid(self) -> None: ...
    def unplug(self) -> None: ...
    def replug(self) -> None: ...

    @property
    def slot_open(self) -> bool:
        raise NotImplementedError


class SimRig(Rig):
    name = "sim"

    def __init__(self, delays: Delays = TEST_DELAYS, beam_blocked: bool = False, lid_open: bool = False) -> None:
        super().__init__(delays)
        from device.hardware.sim.box import SimBallotBox
        self.box = SimBallotBox(clock=self.clock, delays=delays, beam_blocked=beam_blocked, lid_open=lid_open)

    def block(self) -> None:
        self.box.block_beam()

    def clear(self) -> None:
        self.box.clear_beam()

    def open_lid(self) -> None:
        self.box.open_lid()

    def close_lid(self) -> None:
        self.box.close_lid()

    def unplug(self) -> None:
        self.box.unplug()

    def replug(self) -> None:
        self.box.replug()

    @property
    def slot_open(self) -> bool:
        return bool(self.box.slot_open)


class GpioRig(Rig):
    name = "gpio"

    def __init__(self, gpio_module: Any, fake: FakeGPIO, delays: Delays = TEST_DELAYS,
                 beam_blocked: bool = False, lid_open: bool = False) -> None:
        super().__init__(delays)
        from device.hardware.boxes.pins import DEFAULT_PINS
        self.fake = fake
        self.pins = DEFAULT_PINS
        fake.wire(27, int(beam_blocked))
        fake.wire(22, int(lid_open))
        fake.wire(5, 0)
        self.box = gpio_module.GpioBallotBox(clock=self.clock, delays=delays, pins=DEFAULT_PINS, tick_every=None)

    def block(self) -> None:
        self.fake.drive(27, 1)

    def clear(self) -> None:
        self.fake.drive(27, 0)

    def open_lid(self) -> None:
        self.fake.drive(22, 1)

    def close_lid(self) -> None:
        self.fake.drive(22, 0)

    def unplug(self) -> None:
        self.fake.drive(5, 1)

    def replug(self) -> None:
        self.fake.drive(5, 0)

    @property
    def slot_open(self) -> bool:
        return self.fake.levels[17] == 1


class SmartRig(Rig):
    name = "smartbox"

    def __init__(self, firmware_dir: Path, delays: Delays = TEST_DELAYS, beam_blocked: bool = False,
                 lid_open: bool = False) -> None:
        super().__init__(delays)
        from device.hardware.boxes.smartbox import SmartBallotBox
        self.machine = FakeMachine()
        self.firmware_dir = firmware_dir
        self.machine.levels.update({3: int(beam_blocked), 4: int(lid_open)})
        self.board = self.boot_firmware()
        self.wire = Wire(self.machine)
        self.box = SmartBallotBox(clock=self.clock, delays=delays, link=self.wire, tick_every=None,
                                  wait=self.run_firmware)

    def boot_firmware(self) -> Any:
        """Power the Pico on (again): a fresh interpreter over the same flash."""
        for name in FIRMWARE_MODULES:
            sys.modules.pop(name, None)
        sys.modules["machine"] = self.machine
        board = importlib.import_module("board")
        from boxstore import CounterStore  # type: ignore[import-not-found]
        self.machine.rx = b""
        return board.Board(CounterStore(str(self.firmware_dir / "counters.txt")), self.ms())

    def ms(self) -> int:
        return int(round(self.clock.now * 1000))

    def run_firmware(self, seconds: float) -> None:
        for _ in range(max(1, round(seconds / STEP))):
            self.clock.advance(STEP)
            self.board.step(self.ms())

    def step(self) -> None:
        self.board.step(self.ms())
        self.box.check()

    def block(self) -> None:
        self.machine.levels[3] = 1

    def clear(self) -> None:
        self.machine.levels[3] = 0

    def open_lid(self) -> None:
        self.machine.levels[4] = 1

    def close_lid(self) -> None:
        self.machine.levels[4] = 0

    def unplug(self) -> None:
        self.wire.fault = lambda frames: []

    def replug(self) -> None:
        self.wire.fault = None

    @property
    def slot_open(self) -> bool:
        return self.machine.levels[2] == 1


class Station:
    """The appliance's part, reduced: the real interlock, arming, locking and heartbeats."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.state = il.InterlockState()
        self.outcomes: list[il.Outcome] = []
        self.unit_events: list[BoxSignal] = []
        self.heartbeats = True
        self._last_beat = rig.clock.monotonic()
        self._next_token = 1
        rig.listeners.append(self.on_signal)

    def start(self) -> BoxInputs:
        inputs = self.rig.start()
        now = self.rig.clock.monotonic()
        if inputs.beam_blocked:
            self._step(il.BeamBlocked(now, at_startup=True))
        if inputs.lid_open:
            self._step(il.LidOpened(now))
        return inputs

    def on_signal(self, signal: BoxSignal, at: float) -> None:
        if signal in (BoxSignal.UNIT_LOST, BoxSignal.UNIT_FOUND):
            self.unit_events.append(signal)
            return
        event = {BoxSignal.BEAM_BLOCKED: il.BeamBlocked, BoxSignal.BEAM_CLEARED: il.BeamCleared,
                 BoxSignal.LID_OPENED: il.LidOpened, BoxSignal.LID_CLOSED: il.LidClosed,
                 BoxSignal.JAMMED: il.JamReported}[signal](at)
        self._step(event)

    def admit(self) -> int:
        token = self._next_token
        self._next_token += 1
        self._step(il.Arm(token, self.rig.clock.monotonic()))
        if self.state.slot_should_open:
            self.rig.box.arm()
        return token

    def advance(self, seconds: float) -> None:
        self.rig.advance(seconds, each=self.tick)

    def tick(self) -> None:
        now = self.rig.clock.monotonic()
        self._step(il.Tick(now))
        if self.heartbeats and now - self._last_beat >= self.rig.delays.heartbeat_interval:
            self._last_beat = now
            self.rig.box.heartbeat()

    def _step(self, event: il.Input) -> None:
        self.state, out = il.step(self.state, event, self.rig.delays)
        self.outcomes.extend(out)
        if not self.state.slot_should_open:
            self.rig.box.lock()

    def counted(self) -> list[int | None]:
        return [o.token for o in self.outcomes if isinstance(o, il.Counted)]

    def alarms(self) -> list[str]:
        return [o.kind.value for o in self.outcomes if isinstance(o, il.Alarm)]

    def drop(self) -> None:
        self.rig.block()
        self.advance(0.06)
        self.rig.clear()
        self.advance(0.06)


class SmartStation:
    """The real ``Appliance`` on a demo station with the smart box backend, over a ``Wire`` to the real firmware.

    ``boot()`` starts the station software (a fresh backend and appliance over
    the same journal, as after a restart of the service); ``shutdown()`` stops
    it while the unit keeps running on its own; ``advance`` lets time pass for
    the firmware, the backend's timers and the appliance's ticks alike.
    """

    def __init__(self, station_dir: Path, firmware_dir: Path, delays: Delays = TEST_DELAYS) -> None:
        self.station_dir = station_dir
        self.delays = delays
        self.unit = SmartRig(firmware_dir, delays)
        self.clock = self.unit.clock
        self.app: Any = None

    def boot(self) -> Any:
        """Start the station software; the serial port opens afresh (bytes sent while it was closed are gone)."""
        from device.appliance import Appliance
        from device.compose import build_appliance
        from device.config import load_config
        from device.hardware.boxes.smartbox import SmartBallotBox
        assert self.app is None, "the station is already running"
        parts = build_appliance(load_config(self.station_dir / "station.toml"), clock=self.clock)
        box = SmartBallotBox(clock=self.clock, delays=self.delays, link=self.unit.wire, tick_every=None,
                             wait=self.unit.run_firmware)
        self.unit.machine.tx = []
        self.app = Appliance(package=parts.package, journal=parts.journal, box=box, scanner=parts.scanner,
                             identity=parts.identity, clock=self.clock, delays=self.delays,
                             data_dir=parts.data_dir, mode=parts.mode, upstream=parts.upstream)
        self.app.start(background=False)
        return self.app

    def shutdown(self) -> None:
        self.app.stop()
        self.app = None

    def advance(self, seconds: float) -> None:
        for _ in range(max(1, round(seconds / STEP))):
            self.clock.advance(STEP)
            self.unit.board.step(self.unit.ms())
            if self.app is not None:
                self.app.box.check()
                self.app.tick()

    def drop(self) -> None:
        """A ballot falls through the beam (60 ms), whether or not the station is listening."""
        self.unit.block()
        self.advance(0.06)
        self.unit.clear()
        self.advance(0.06)

    def restart_unit(self, erase: bool = False, chip_id: bytes | None = None) -> None:
        """Power the unit off and on; ``erase`` wipes its flash; ``chip_id`` puts another chip in its place."""
        if erase:
            (self.unit.firmware_dir / "counters.txt").unlink()
        if chip_id is not None:
            self.unit.machine.chip_id = chip_id
        self.unit.board = self.unit.boot_firmware()

    def events(self, kind: str) -> list[Any]:
        return [r.event for r in self.app.journal.recorded() if r.event.kind == kind]

    def alarms(self) -> list[tuple[str, str]]:
        return [(e.alarm_kind, e.detail) for e in self.events("alarm_raised")]
