"""The GPIO backend when RPi.GPIO's callback thread runs late: edges fed to the debouncer and the interlock.

``_edge`` reads the line's level when the callback runs, not the edge's level, so a late callback sees a
later level, or the same level twice. These tests deliver the callbacks late, in a burst, or not at all,
with ``check`` sampling at arbitrary times, and feed what the box reports to the real interlock. What may
happen: a drop is counted once with the right alarm, or (when the box never saw the beam held blocked for
the debounce time) not at all; never an input the interlock refuses, never a second drop classified as a
drop without a token. And a clear shorter than the debounce time between two blocks is a bounce: one drop.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from device.core import interlock as il
from device.core.delays import Delays
from device.hardware.interfaces import BoxSignal

from .fakes import FakeClock, FakeGPIO

HOLD = 1.0
DELAYS = Delays(arm_timeout=90.0, double_drop_window=300.0, jam_after=6.0, heartbeat_timeout=1e9, debounce=HOLD)
BEAM = 27
TO_INTERLOCK = {BoxSignal.BEAM_BLOCKED: il.BeamBlocked, BoxSignal.BEAM_CLEARED: il.BeamCleared}


def run(schedule: list[tuple[float, str, int]]) -> Counter[str]:
    """Start the box armed for token 1, play ``schedule`` ((time, "level"|"callback"|"check", level)) and
    step the interlock with every beam signal; the outcomes by name (an alarm by its kind)."""
    fake = FakeGPIO()
    package = types.ModuleType("RPi")
    package.GPIO = fake  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "RPi", package)
        mp.setitem(sys.modules, "RPi.GPIO", fake)
        module = importlib.import_module("device.hardware.boxes.gpio")
        mp.setattr(module, "GPIO", fake)
        for pin in (BEAM, 22, 5):
            fake.wire(pin, 0)
        clock = FakeClock(0.0)
        signals: list[tuple[BoxSignal, float]] = []
        box = module.GpioBallotBox(clock=clock, delays=DELAYS, tick_every=None)
        box.start(lambda signal, at, *_: signals.append((signal, at)))
        state, _ = il.step(il.InterlockState(), il.Arm(1, 0.0), DELAYS)
        box.arm()
        edges = 0
        for at, what, level in sorted(schedule, key=lambda x: x[0]):
            clock.now = at
            if what == "level":
                fake.levels[BEAM] = level
                edges += 1
            elif what == "callback" and edges:
                edges -= 1
                box._edge(BEAM)
            elif what == "check":
                box.check()
        box.stop()
    outcomes: Counter[str] = Counter()
    for signal, at in signals:
        state, out = il.step(state, TO_INTERLOCK[signal](at), DELAYS)  # raises on an input refused
        outcomes.update(f"alarm:{o.kind.value}" if isinstance(o, il.Alarm) else type(o).__name__ for o in out)
    return outcomes


def two_drops(gap: float, lateness: list[float], checks: list[float]) -> list[tuple[float, str, int]]:
    """Two blocks of 2 * HOLD, ``gap`` apart; each edge's callback ``lateness`` late, in order (later ones
    may come in a burst with it); ``check`` at ``checks`` and well after the end."""
    edges = [(10.0, 1), (12.0, 0), (12.0 + gap, 1), (14.0 + gap, 0)]
    schedule: list[tuple[float, str, int]] = [(t, "level", v) for t, v in edges]
    delivered = 0.0
    for (t, _), late in zip(edges, lateness, strict=True):
        delivered = max(delivered, t + late)
        schedule.append((delivered + 1e-6, "callback", 0))
    return schedule + [(t, "check", 0) for t in checks] + [(100.0, "check", 0), (200.0, "check", 0)]


@settings(max_examples=300, deadline=None)
@given(gap=hst.floats(0.0, 20.0), lateness=hst.lists(hst.floats(0.0, 4.0), min_size=4, max_size=4),
       checks=hst.lists(hst.floats(0.0, 40.0), max_size=12))
def test_late_callbacks_lose_a_drop_at_worst_and_never_misclassify_one(gap: float, lateness: list[float],
                                                                       checks: list[float]) -> None:
    outcomes = run(two_drops(gap, lateness, checks))
    assert outcomes["Counted"] in (0, 1, 2)
    assert outcomes["alarm:drop_without_token"] == 0  # the first drop had its token, a second is a second ballot
    assert outcomes["alarm:second_ballot"] == max(0, outcomes["Counted"] - 1)


@settings(max_examples=100, deadline=None)
@given(gap=hst.floats(HOLD, 20.0), lateness=hst.lists(hst.floats(0.0, 4.0), min_size=4, max_size=4))
def test_two_drops_a_debounce_apart_are_two_ballots_whenever_the_callbacks_come(gap: float,
                                                                                 lateness: list[float]) -> None:
    every = HOLD / 4  # the timer samples well inside the debounce time, however late the callbacks are
    checks = [i * every for i in range(int(40 / every))]
    assert run(two_drops(gap, lateness, checks)) == Counter({"Counted": 2, "alarm:second_ballot": 1})


@pytest.mark.parametrize("gap", [0.1, HOLD / 2, HOLD * 0.99])
def test_a_clear_shorter_than_the_debounce_between_two_blocks_is_one_drop(gap: float) -> None:
    checks = [i * 0.01 for i in range(4000)]
    assert run(two_drops(gap, [0.0] * 4, checks)) == Counter({"Counted": 1})
