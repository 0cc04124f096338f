"""Fake devices for the scan-source tests: a clock, a scripted keyboard, camera and serial port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from device.hardware.decoders.frames import FrameSkipper
from device.hardware.interfaces import ScanRead


@dataclass
class FakeClock:
    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Waits:
    """The loop's wait function: records each wait, advances the clock, stops after ``limit`` waits."""

    clock: FakeClock
    limit: int
    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        self.clock.advance(seconds)
        return len(self.calls) >= self.limit


class FakeKeyDevice:
    """A grabbed keyboard that plays a script: lists of key events, then unplugs."""

    def __init__(self, clock: FakeClock, script: list[list[tuple[int, int]]], on_empty: Callable[[], None]) -> None:
        self.clock, self.script, self.on_empty = clock, list(script), on_empty
        self.closed = False

    def read_keys(self, timeout: float) -> list[tuple[int, int]]:
        self.clock.advance(timeout)
        if not self.script:
            self.on_empty()
            raise OSError(19, "No such device")
        return self.script.pop(0)

    def close(self) -> None:
        self.closed = True


class FakeCamera:
    """Returns frames from a list, then None (a camera that stopped delivering)."""

    def __init__(self, frames: list[Any]) -> None:
        self.frames = list(frames)
        self.closed = False

    def grab(self) -> Any:
        return self.frames.pop(0) if self.frames else None

    def close(self) -> None:
        self.closed = True


class EveryFrame(FrameSkipper):
    """A frame skipper that skips nothing (the frames of these fakes are payloads, not images)."""

    def wants(self, gray: Any) -> bool:
        return True


class TextDecoder:
    """A decoder whose frames are the decoded text itself; an empty frame holds no symbol."""

    name = "fake"

    def decode(self, gray: Any) -> list[ScanRead]:
        return [ScanRead(str(gray), "pdf417", self.name)] if gray else []


class ScriptedPort:
    """A serial port that returns one scripted chunk per read, advancing the clock; unplugged at the end."""

    def __init__(self, clock: FakeClock, chunks: list[bytes]) -> None:
        self.clock, self.chunks = clock, list(chunks)
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, size: int) -> bytes:
        self.clock.advance(0.03)
        if not self.chunks:
            raise serial.SerialException("device reports readiness to read but returned no data")
        return self.chunks.pop(0)

    def close(self) -> None:
        self.closed = True
