"""Fakes for the ballot box tests: a clock, the RPi.GPIO module, the MicroPython ``machine`` module, a wire.

``FakeGPIO`` is a module object with RPi.GPIO's names; it records every call
in ``calls`` and lets a test drive input levels (``drive``), which fires the
registered edge callbacks as the real library would (one call per level
change, bounces included). ``FakeMachine`` does the same for the Pico's
``machine.Pin``/``UART``/``WDT``. ``Wire`` joins the Pi backend and the
firmware byte streams and can lose, corrupt, duplicate or reorder frames.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeGPIO(types.ModuleType):
    """Stands in for ``RPi.GPIO``: records calls, holds levels, fires edge callbacks."""

    BCM, BOARD = 11, 10
    OUT, IN = 0, 1
    HIGH, LOW = 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
    RISING, FALLING, BOTH = 31, 32, 33

    def __init__(self) -> None:
        super().__init__("RPi.GPIO")
        self.calls: list[tuple[Any, ...]] = []
        self.levels: dict[int, int] = {}
        self.modes: dict[int, int] = {}
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self.mode: int | None = None
        self.fail_on: str | None = None

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail_on == call[0]:
            raise RuntimeError(f"fake failure in {call[0]}")

    def setwarnings(self, flag: bool) -> None:
        self._record("setwarnings", flag)

    def setmode(self, mode: int) -> None:
        self._record("setmode", mode)
        self.mode = mode

    def setup(self, channel: int, direction: int, pull_up_down: int = 20, initial: int = -1) -> None:
        self._record("setup", channel, direction, pull_up_down if direction == self.IN else initial)
        assert self.mode == self.BCM, "setup before setmode(BCM)"
        self.modes[channel] = direction
        if direction == self.OUT:
            self.levels[channel] = max(initial, 0)
        elif channel not in self.levels:
            self.levels[channel] = 1 if pull_up_down == self.PUD_UP else 0

    def output(self, channel: int, value: int | bool) -> None:
        self._record("output", channel, int(value))
        assert self.modes.get(channel) == self.OUT, f"output on channel {channel} not set up as output"
        self.levels[channel] = int(value)

    def input(self, channel: int) -> int:
        return self.levels[channel]

    def add_event_detect(self, channel: int, edge: int, callback: Callable[[int], None] | None = None,
                         bouncetime: int | None = None) -> None:
        self._record("add_event_detect", channel, edge, bouncetime)
        assert callback is not None
        self.callbacks[channel] = callback

    def remove_event_detect(self, channel: int) -> None:
        self._record("remove_event_detect", channel)
        self.callbacks.pop(channel, None)

    def cleanup(self, channels: Any = None) -> None:
        self._record("cleanup", channels)
        for ch in channels or list(self.modes):
            self.modes.pop(ch, None)

    # Test side -------------------------------------------------------------------

    def wire(self, channel: int, level: int) -> None:
        """Set an input level before start-up (what the wired sensor holds)."""
        self.levels[channel] = level

    def drive(self, channel: int, level: int) -> None:
        """The outside world changes an input: an edge fires the callback."""
        if self.levels.get(channel) == level:
            return
        self.levels[channel] = level
        callback = self.callbacks.get(channel)
        if callback is not None:
            callback(channel)

    def outputs_written(self, channel: int) -> list[int]:
        return [c[2] for c in self.calls if c[0] == "output" and c[1] == channel]


class FakePin:
    OUT, IN = 1, 0
    PULL_UP, PULL_DOWN = 1, 2

    def __init__(self, board: FakeMachine, gp: int, mode: int = -1, pull: int | None = None,
                 value: int | None = None) -> None:
        self._board, self.gp = board, gp
        if mode == self.OUT:
            board.levels[gp] = value or 0
        elif mode == self.IN and gp not in board.levels:
            board.levels[gp] = 1 if pull == self.PULL_UP else 0
        board.log.append(("pin", gp, mode, pull, value))

    def value(self, level: int | None = None) -> int | None:
        if level is None:
            return self._board.levels[self.gp]
        self._board.levels[self.gp] = level
        return None


class FakeUART:
    def __init__(self, board: FakeMachine, uart_id: int, baudrate: int = 9600, tx: Any = None,
                 rx: Any = None) -> None:
        self._board = board
        board.log.append(("uart", uart_id, baudrate))

    def read(self) -> bytes | None:
        data = self._board.rx
        self._board.rx = b""
        return data or None

    def write(self, data: bytes) -> int:
        self._board.tx.append(bytes(data))
        return len(data)


CHIP_ID = "e6605838834b2a2f"
"""The unique id of the fake Pico's chip, as the Pi reports it (hex)."""


class FakeMachine(types.ModuleType):
    """Stands in for MicroPython's ``machine`` module on the Pico."""

    def __init__(self) -> None:
        super().__init__("machine")
        self.levels: dict[int, int] = {}
        self.log: list[tuple[Any, ...]] = []
        self.rx = b""
        self.tx: list[bytes] = []
        self.chip_id = bytes.fromhex(CHIP_ID)  # what unique_id() returns: one chip's flash id
        board = self

        class Pin(FakePin):
            def __init__(self, gp: int, mode: int = -1, pull: int | None = None, value: int | None = None) -> None:
                super().__init__(board, gp, mode, pull, value)

        class UART(FakeUART):
            def __init__(self, uart_id: int, baudrate: int = 9600, tx: Any = None, rx: Any = None) -> None:
                super().__init__(board, uart_id, baudrate, tx, rx)

        class WDT:
            def __init__(self, timeout: int = 5000) -> None:
                board.log.append(("wdt", timeout))

            def feed(self) -> None:
                pass

        def unique_id() -> bytes:
            return board.chip_id

        self.Pin, self.UART, self.WDT, self.unique_id = Pin, UART, WDT, unique_id


class Wire:
    """Frames from the unit to the Pi pass through ``faults``; the other way goes straight through."""

    def __init__(self, machine: FakeMachine) -> None:
        self.machine = machine
        self.to_pi: list[bytes] = []
        self.fault: Callable[[list[bytes]], list[bytes]] | None = None
        self.pi_frames: list[bytes] = []

    # The Pi side (a Link)
    def read(self) -> bytes:
        frames, self.machine.tx = self.machine.tx, []
        if self.fault is not None:
            frames = self.fault(frames)
        return b"".join(frames)

    def write(self, data: bytes) -> None:
        self.pi_frames.append(bytes(data))
        self.machine.rx += bytes(data)

    def close(self) -> None:
        pass
