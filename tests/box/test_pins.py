"""The [hardware.pins] config table: defaults, and a specific message for each mistake."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.hardware.boxes.pins import DEFAULT_PINS, HEADER_PIN, PinMap, PinSpec


def _table(**changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {name: {"bcm": s.bcm, "active_high": s.active_high}
                             for name, s in DEFAULT_PINS.parts().items()}
    for key, value in changes.items():
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    return table


def test_default_table_round_trips() -> None:
    assert PinMap.from_config(_table()) == DEFAULT_PINS
    assert all(spec.bcm in HEADER_PIN for spec in DEFAULT_PINS.parts().values())


@pytest.mark.parametrize(("changes", "message"), [
    ({"lock": None}, "hardware.pins.lock: missing"),
    ({"door": {"bcm": 6}}, "hardware.pins.door: unknown part"),
    ({"lock": 17}, "hardware.pins.lock: must be a table"),
    ({"lock": {"active_high": True}}, "hardware.pins.lock.bcm: missing"),
    ({"lock": {"bcm": "17"}}, "hardware.pins.lock.bcm: must be a BCM GPIO number"),
    ({"lock": {"bcm": 40}}, "hardware.pins.lock.bcm: must be a BCM GPIO number"),
    ({"lock": {"bcm": True}}, "hardware.pins.lock.bcm: must be a BCM GPIO number"),
    ({"lock": {"bcm": 14}}, "reserved for the UART TX"),
    ({"lock": {"bcm": 17, "active_high": "yes"}}, "hardware.pins.lock.active_high: must be true or false"),
    ({"lock": {"bcm": 17, "pull": "up"}}, "hardware.pins.lock.pull: unknown setting"),
    ({"red": {"bcm": 23}}, "hardware.pins.red.bcm: GPIO 23 is already used by green"),
])
def test_each_mistake_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        PinMap.from_config(_table(**changes))


def test_optional_parts_may_be_left_out() -> None:
    pins = PinMap.from_config(_table(present=None, keepalive=None))
    assert pins.present is None and "present" not in pins.inputs()


@given(st.integers(0, 1), st.booleans(), st.booleans())
def test_spec_levels_are_consistent(level: int, active_high: bool, active: bool) -> None:
    spec = PinSpec(17, active_high)
    assert spec.is_active(spec.level(active)) == active
    assert spec.level(spec.is_active(bool(level))) == bool(level)
