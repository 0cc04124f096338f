"""Fake devices for the scan-source tests: a clock, a scripted keyboard, a scripted camera."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
