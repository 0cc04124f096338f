"""Fault: bounce storms on the drop sensor and the lid switch are filtered by our debouncing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.core.debounce import Debouncer
from device.hardware.interfaces import BoxSignal

from .conftest import RigFactory
from .rigs import STEP, GpioRig, SmartRig


def _storm(rig: GpioRig | SmartRig, part: str, pulses: int) -> None:
    """Pulses shorter than the debounce hold, as a worn reed switch or a flickering beam gives."""
    on, off = (rig.block, rig.clear) if part == "beam" else (rig.open_lid, rig.close_lid)
    for _ in range(pulses):
        on()
        rig.advance(STEP)
        off()
        rig.advance(STEP)


@pytest.mark.parametrize("part", ["beam", "lid"])
def test_a_bounce_storm_alone_changes_nothing(make_rig: RigFactory, part: str) -> None:
    rig = make_rig()
    if rig.name == "sim":
        pytest.skip("the simulated box has clean inputs")
    rig.start()
    _storm(rig, part, 40)  # type: ignore[arg-type]
    rig.advance(0.2)
    assert rig.signals == []


def test_a_storm_then_a_real_drop_counts_once(make_rig: RigFactory) -> None:
    rig = make_rig()
    if rig.name == "sim":
        pytest.skip("the simulated box has clean inputs")
    rig.start()
    _storm(rig, "beam", 20)  # type: ignore[arg-type]
    rig.block()
    rig.advance(0.08)
    _storm(rig, "beam", 5)  # type: ignore[arg-type]
    rig.clear()
    rig.advance(0.1)
    assert rig.names() == [BoxSignal.BEAM_BLOCKED, BoxSignal.BEAM_CLEARED]


def test_gpio_uses_no_library_bouncetime(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    detects = [c for c in fake.calls if c[0] == "add_event_detect"]
    assert detects and all(c[3] is None for c in detects)
    rig.box.stop()


# The debouncer itself ---------------------------------------------------------------

edges = st.lists(st.tuples(st.floats(0.0001, 0.5), st.booleans()), max_size=40)


def _reference(start: bool, hold: float, seq: list[tuple[float, bool]], end: float) -> list[tuple[float, bool]]:
    """Level changes: a raw level counts when it lasted ``hold`` before the next raw edge (or the end)."""
    t, raw, raw_since, level, out = 0.0, start, 0.0, start, []
    for gap, value in seq + [(end, raw)]:
        t += gap
        if raw != level and t - raw_since >= hold:
            level = raw
            out.append((raw_since, level))
        if value != raw:
            raw, raw_since = value, t
    return out


@given(st.booleans(), edges)
def test_debouncer_matches_the_reference(start: bool, seq: list[tuple[float, bool]]) -> None:
    hold = 0.02
    d = Debouncer(start, hold)
    got, t = [], 0.0
    for gap, value in seq:
        t += gap
        if d.feed(value, t):
            got.append((d.changed_at, d.level))
    if d.settle(t + 1.0):
        got.append((d.changed_at, d.level))
    assert got == _reference(start, hold, seq, 1.0)


@given(st.lists(st.floats(0.0001, 0.0199), max_size=50))
def test_pulses_shorter_than_hold_never_change_the_level(widths: list[float]) -> None:
    d = Debouncer(False, 0.02)
    t = 0.0
    for w in widths:
        assert not d.feed(True, t)
        t += w
        assert not d.feed(False, t)
        t += w
    assert not d.settle(t + 5) and d.level is False


def test_negative_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Debouncer(False, -1)
