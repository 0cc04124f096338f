"""The ballot box unit's parts and the BCM pins they are wired to, from config.

A ``PinMap`` names one ``PinSpec`` (BCM number and polarity) per part:

- ``lock``: slot lock driver (output); *active* = slot open (solenoid energised);
- ``beam``: infrared break-beam drop sensor (input); *active* = beam blocked;
- ``lid``: lid reed switch (input); *active* = lid open;
- ``green``, ``red``: lamps (outputs); ``buzzer`` (output); *active* = on;
- ``present`` (optional): the unit-present loop (input); *active* = unit plugged in;
- ``keepalive`` (optional): a pulse output that keeps a retriggerable lock
  enable circuit alive; it stops when the software stops (see docs/ballot-box.md).

``active_high`` says whether *active* is a high level. Input pulls are not
configurable: each input is pulled towards its alarm state, so a cut wire reads
as "beam blocked", "lid open" or "unit absent" (see ``pull_to_active``).

Config (TOML), a table per part::

    [hardware.pins]
    lock = { bcm = 17, active_high = true }

``PinMap.from_config`` raises ``ValueError`` naming the key at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

OUTPUTS = ("lock", "green", "red", "buzzer", "keepalive")
INPUTS = ("beam", "lid", "present")
OPTIONAL = ("present", "keepalive")
RESERVED = {14: "UART TX (smart box, serial console)", 15: "UART RX (smart box, serial console)"}
"""BCM pins the GPIO map may not use, and why."""

_PREFIX = "hardware.pins"


@dataclass(frozen=True)
class PinSpec:
    """One part's pin: a BCM GPIO number and whether *active* is a high level."""

    bcm: int
    active_high: bool = True

    def level(self, active: bool) -> bool:
        """The electrical level (True = high) that means ``active``."""
        return active == self.active_high

    def is_active(self, level: bool) -> bool:
        """Whether the electrical ``level`` means *active*."""
        return level == self.active_high


@dataclass(frozen=True)
class PinMap:
    """Where each part of the unit is wired. ``present`` and ``keepalive`` are optional."""

    lock: PinSpec
    beam: PinSpec
    lid: PinSpec
    green: PinSpec
    red: PinSpec
    buzzer: PinSpec
    present: PinSpec | None = None
    keepalive: PinSpec | None = None

    def parts(self) -> dict[str, PinSpec]:
        """Every wired part by name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def outputs(self) -> dict[str, PinSpec]:
        return {name: spec for name, spec in self.parts().items() if name in OUTPUTS}

    def inputs(self) -> dict[str, PinSpec]:
        return {name: spec for name, spec in self.parts().items() if name in INPUTS}

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> PinMap:
        """A pin map from the ``[hardware.pins]`` table; ValueError names the bad key."""
        if not isinstance(table, dict):
            raise ValueError(f"{_PREFIX}: must be a table of parts, got {type(table).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"{_PREFIX}.{unknown[0]}: unknown part (known parts: {', '.join(sorted(known))})")
        missing = [name for name in known - set(OPTIONAL) if name not in table]
        if missing:
            raise ValueError(f"{_PREFIX}.{sorted(missing)[0]}: missing (every unit needs {_required_list()})")
        specs = {name: _spec(name, value) for name, value in table.items()}
        _check_unique(specs)
        return cls(**specs)


def pull_to_active(part: str) -> bool:
    """Whether an input's pull resistor pulls towards *active* (the alarm state for beam and lid)."""
    return part in ("beam", "lid")


def _required_list() -> str:
    return ", ".join(f.name for f in fields(PinMap) if f.name not in OPTIONAL)


def _spec(name: str, value: Any) -> PinSpec:
    key = f"{_PREFIX}.{name}"
    if not isinstance(value, dict):
        raise ValueError(f"{key}: must be a table like {{ bcm = 17, active_high = true }}, got {value!r}")
    extra = sorted(set(value) - {"bcm", "active_high"})
    if extra:
        raise ValueError(f"{key}.{extra[0]}: unknown setting (allowed: bcm, active_high)")
    if "bcm" not in value:
        raise ValueError(f"{key}.bcm: missing (the BCM GPIO number, 2-27)")
    bcm = value["bcm"]
    if isinstance(bcm, bool) or not isinstance(bcm, int) or not 2 <= bcm <= 27:
        raise ValueError(f"{key}.bcm: must be a BCM GPIO number from 2 to 27, got {bcm!r}")
    if bcm in RESERVED:
        raise ValueError(f"{key}.bcm: GPIO {bcm} is reserved for the {RESERVED[bcm]}")
    active_high = value.get("active_high", True)
    if not isinstance(active_high, bool):
        raise ValueError(f"{key}.active_high: must be true or false, got {active_high!r}")
    return PinSpec(bcm, active_high)


def _check_unique(specs: dict[str, PinSpec]) -> None:
    seen: dict[int, str] = {}
    for name, spec in specs.items():
        if spec.bcm in seen:
            raise ValueError(f"{_PREFIX}.{name}.bcm: GPIO {spec.bcm} is already used by {seen[spec.bcm]}")
        seen[spec.bcm] = name


DEFAULT_PINS = PinMap(
    lock=PinSpec(17, True),      # header pin 11; BCM 17 is pulled low at power-on
    beam=PinSpec(27, True),      # header pin 13
    lid=PinSpec(22, True),       # header pin 15
    green=PinSpec(23, True),     # header pin 16
    red=PinSpec(24, True),       # header pin 18
    buzzer=PinSpec(25, True),    # header pin 22
    present=PinSpec(5, False),   # header pin 29; low = loop closed = unit present
    keepalive=PinSpec(12, True),  # header pin 32
)
"""The documented default wiring (docs/ballot-box.md)."""

PI_HEADER: tuple[str | int, ...] = (
    "3V3", "5V", 2, "5V", 3, "GND", 4, 14, "GND", 15, 17, 18, 27, "GND", 22, 23, "3V3", 24, 10, "GND",
    9, 25, 11, 8, "GND", 7, 0, 1, 5, "GND", 6, 12, 13, "GND", 19, 16, 26, 20, "GND", 21,
)
"""The Raspberry Pi 40-pin header, physical pin 1 first: a BCM GPIO number or a supply name."""

BCM_TO_PHYSICAL: dict[int, int] = {bcm: i + 1 for i, bcm in enumerate(PI_HEADER) if isinstance(bcm, int)}
"""BCM GPIO number -> physical pin on the 40-pin header."""

HEADER_PIN = {bcm: pin for bcm, pin in BCM_TO_PHYSICAL.items() if bcm >= 2 and bcm not in RESERVED}
"""The GPIOs a part may use (not the ID EEPROM pins 0/1 nor the reserved UART) -> physical pin."""
