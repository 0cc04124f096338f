"""The ballot box unit's wiring: the connectors, the parts and what each wire means, read from the pin maps.

The Raspberry Pi's header and the Pico's pins, the firmware's own pin map read
from its source (``firmware_map``: ``device/firmware/board.py`` imports
``machine`` and cannot be imported off a Pico, so its ``PINS`` and ``BAUDRATE``
literals are read with ``ast``), and one label per part (driver, pull resistor,
flyback diode...). ``render.py`` lays these out and draws them.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from device.firmware import FILES
from device.hardware.boxes.pins import (
    BCM_TO_PHYSICAL,
    INPUTS,
    PinSpec,
    pull_to_active,
)

BOARD_SOURCE: Path = FILES["board.py"]
"""The smart box firmware's pin map lives in this file (``PINS``, ``BAUDRATE``)."""

PICO_HEADER: tuple[str, ...] = (
    "GP0", "GP1", "GND", "GP2", "GP3", "GP4", "GP5", "GND", "GP6", "GP7",
    "GP8", "GP9", "GND", "GP10", "GP11", "GP12", "GP13", "GND", "GP14", "GP15",
    "GP16", "GP17", "GND", "GP18", "GP19", "GP20", "GP21", "GND", "GP22", "RUN",
    "GP26", "GP27", "AGND", "GP28", "VREF", "3V3", "3V3_EN", "GND", "VSYS", "VBUS",
)
"""The Raspberry Pi Pico's 40 pins, physical pin 1 (next to the USB socket, GP0) first."""

FIRMWARE_PINS = ("lock", "beam", "lid", "green", "red", "buzzer", "tx", "rx")
"""The keys of the firmware's ``PINS`` the smart box drawing needs."""
PI_SUPPLY = {"3V3": 1, "5V": 2, "GND": 9}
"""The header pins the direct GPIO unit takes its supplies and common ground from."""
UART_BCM = {"tx": 14, "rx": 15}
"""The Pi's UART (serial0) pins, reserved in ``pins.RESERVED``."""
PI_UART_GROUND = 6
"""The Pi's ground pin next to the UART pins (8 and 10)."""
PICO_UART_GROUND = 3
"""The Pico's ground pin next to GP0 and GP1."""
PICO_SUPPLY = 39
"""VSYS, the Pico's supply input."""

TITLES = {
    "lock": "Slot lock", "beam": "Drop sensor", "lid": "Lid switch", "green": "Green lamp", "red": "Red lamp",
    "buzzer": "Buzzer", "present": "Present loop", "keepalive": "Keep-alive",
}
MEANS = {
    "lock": ("slot open", "locked"), "beam": ("beam blocked", "beam clear"), "lid": ("lid open", "lid shut"),
    "green": ("lit", "off"), "red": ("lit", "off"), "buzzer": ("sounding", "silent"),
    "present": ("unit plugged in", "unit absent"), "keepalive": ("pulsing", "stopped"),
}
"""Per part: what *active* and *inactive* mean."""
COLOURS = {
    "lock": "#6a3d9a", "beam": "#1f6fb4", "lid": "#00838f", "green": "#2e7d32", "red": "#c62828",
    "buzzer": "#b35900", "present": "#546e7a", "keepalive": "#ad1457",
    "3V3": "#e67e00", "5V": "#b71c1c", "GND": "#222222", "uart": "#37474f",
}
SUPPLY_KIND = {"3V3": "3V3", "5V": "5V", "GND": "GND", "AGND": "GND", "VSYS": "5V", "VBUS": "5V"}
"""Pin names that are supplies, and the colour family they are drawn in."""
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# Geometry, in SVG units: the drawing's width, a text line, a box's padding, a link band's height,
# a pin's radius and the spacing of the bands of one box (the Pico's pin pitch, so its wires run straight).
WIDTH = 900
ROW = 14
PAD = 6
BAND = 18
PIN_R = 9
LINK_PITCH = 22


End = tuple[float, float, float, float]
"""A wire's two ends: pin x, pin y, box edge x, band y."""


@dataclass(frozen=True)
class FirmwareMap:
    """The smart box firmware's pins (``PINS``: name -> GPx number) and UART speed."""

    pins: dict[str, int]
    baudrate: int


@dataclass(frozen=True)
class Link:
    """One wire: a band in a box, joined to the connector's physical ``pin``."""

    text: str
    pin: int
    colour: str


@dataclass(frozen=True)
class Box:
    """A part drawn as a box: an optional bold ``heading``, its link bands, a bold ``title``, plain lines."""

    links: tuple[Link, ...]
    lines: tuple[str, ...]
    title: str = ""
    heading: str = ""

    def height(self) -> float:
        return self.link_offset(len(self.links)) - BAND / 2 + (len(self.lines) + bool(self.title)) * ROW + PAD

    def link_offset(self, index: int) -> float:
        return PAD + bool(self.heading) * (ROW + 4) + index * LINK_PITCH + BAND / 2


@dataclass(frozen=True)
class Connector:
    """A 2x20 pin connector: ``left`` and ``right`` are (physical pin, name) from top to bottom."""

    x: float
    top: float
    pitch: float
    left: tuple[tuple[int, str], ...]
    right: tuple[tuple[int, str], ...]
    width: float = 140

    def pin_y(self, physical: int) -> float:
        for column in (self.left, self.right):
            for row, (number, _) in enumerate(column):
                if number == physical:
                    return self.top + row * self.pitch
        raise ValueError(f"pin {physical} is not on this connector")

    def side(self, physical: int) -> str:
        return "left" if any(number == physical for number, _ in self.left) else "right"

    def pin_x(self, side: str) -> float:
        return self.x + 14 if side == "left" else self.x + self.width - 14

    def bottom(self) -> float:
        return self.top + (len(self.left) - 1) * self.pitch


class Drawing:
    """SVG elements in drawing order; ``text`` escapes everything it is given."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, element: str) -> None:
        self.items.append(element)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str = "none", rx: float = 4) -> None:
        self.add(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{rx:g}" fill="{fill}" '
                 f'stroke="{stroke}"/>')

    def circle(self, cx: float, cy: float, r: float, fill: str, stroke: str) -> None:
        self.add(f'<circle cx="{cx:g}" cy="{cy:g}" r="{r:g}" fill="{fill}" stroke="{stroke}"/>')

    def wire(self, points: Sequence[tuple[float, float]], colour: str) -> None:
        path = " ".join(f"{x:g},{y:g}" for x, y in points)
        self.add(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.2" '
                 'stroke-linejoin="round"/>')

    def text(self, x: float, y: float, content: str, size: float = 11, anchor: str = "start",
             fill: str = "#1a1a1a", weight: str = "normal") -> None:
        self.add(f'<text x="{x:g}" y="{y:g}" font-size="{size:g}" text-anchor="{anchor}" fill="{fill}" '
                 f'font-weight="{weight}">{escape(content)}</text>')

    def svg(self, height: float, title: str) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:g}" width="{WIDTH}" '
                f'height="{height:g}" font-family="{FONT}" role="img">')
        body = [head, f"<title>{escape(title)}</title>", f'<rect width="{WIDTH}" height="{height:g}" fill="#ffffff"/>']
        return "\n".join([*body, *self.items, "</svg>"]) + "\n"


def physical_pin(bcm: int) -> int:
    """The 40-pin header's physical pin of a BCM GPIO; ValueError for a number not on the header."""
    if bcm not in BCM_TO_PHYSICAL:
        raise ValueError(f"BCM {bcm} is not a GPIO on the 40-pin header")
    return BCM_TO_PHYSICAL[bcm]


def pico_pin(gp: int) -> int:
    """The Pico's physical pin of GPx; ValueError for GP23-25 and GP29, which are on the board only."""
    name = f"GP{gp}"
    if name not in PICO_HEADER:
        raise ValueError(f"GP{gp} is not on the Pico's pins")
    return PICO_HEADER.index(name) + 1


def firmware_map(source: str) -> FirmwareMap:
    """``PINS`` and ``BAUDRATE`` read from board.py's source text; ValueError when either is missing."""
    found: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    for name in ("PINS", "BAUDRATE"):
        if name not in found:
            raise ValueError(f"board.py: no top-level {name} = ... literal")
    pins = ast.literal_eval(found["PINS"])  # type: ignore[arg-type]
    baudrate = ast.literal_eval(found["BAUDRATE"])  # type: ignore[arg-type]
    if not isinstance(pins, dict) or not all(isinstance(v, int) for v in pins.values()):
        raise ValueError("board.py: PINS must be a dict of pin name -> GPx number")
    missing = [name for name in FIRMWARE_PINS if name not in pins]
    if missing:
        raise ValueError(f"board.py: PINS has no {missing[0]!r} (the drawing needs {', '.join(FIRMWARE_PINS)})")
    return FirmwareMap(pins={str(k): v for k, v in pins.items()}, baudrate=int(baudrate))


def level_name(high: bool) -> str:
    return "high" if high else "low"


def active_label(name: str, spec: PinSpec) -> str:
    """E.g. "lock: output, active high (high = slot open)", starting with the config name."""
    direction = "input" if name in INPUTS else "output"
    level = level_name(spec.active_high)
    return f"{name}: {direction}, active {level} ({level} = {MEANS[name][0]})"


def pull_label(name: str, spec: PinSpec) -> str:
    """The input's internal pull and what a cut wire therefore reads."""
    pull = "pull-up" if spec.level(pull_to_active(name)) else "pull-down"
    reads = MEANS[name][0] if pull_to_active(name) else MEANS[name][1]
    return f"internal {pull}: a cut wire reads {reads}"


def rail_against(name: str, spec: PinSpec) -> str:
    """The supply a switch or loop closes to: the opposite of the input's pull."""
    return "3V3" if not spec.level(pull_to_active(name)) else "GND"


def part_lines(name: str, spec: PinSpec) -> tuple[str, ...]:
    """The parts between the pin and the device, for this part and polarity."""
    return _DETAILS[name](name, spec)


def _lock(name: str, spec: PinSpec) -> tuple[str, ...]:
    if not spec.active_high:
        return ("driver input active low (e.g. a relay driver board):",
                "check that the slot stays locked with the Pi off",
                "and while it boots; 1N4007 flyback diode across",
                "the solenoid")
    return ("220 \u03a9 to the gate of a logic-level N-MOSFET (IRLZ44N);",
            "10 k\u03a9 gate pull-down: Pi off or booting = locked;",
            "drain: 12 V solenoid, 1N4007 flyback diode across it",
            "(or the input of a relay driver board, active high)")


def _beam(name: str, spec: PinSpec) -> tuple[str, ...]:
    seen = level_name(not spec.active_high)
    kind = "NPN" if spec.active_high else "PNP"
    return (f"IR break-beam receiver: {seen} while it sees the beam",
            f"({kind} \u201clight-on\u201d); emitter and receiver on 3V3",
            pull_label(name, spec))


def _lid(name: str, spec: PinSpec) -> tuple[str, ...]:
    return (f"reed switch to {rail_against(name, spec)}, closed while the lid is shut",
            pull_label(name, spec))


def _lamp(name: str, spec: PinSpec) -> tuple[str, ...]:
    colour = name
    if spec.active_high:
        return (f"330 \u03a9 and {colour} LED to GND (or a lamp transistor)",)
    return (f"3V3 through a {colour} LED and 330 \u03a9 into the pin",)


def _buzzer(name: str, spec: PinSpec) -> tuple[str, ...]:
    if spec.active_high:
        return ("1 k\u03a9 to an NPN base; 5 V buzzer on the collector",)
    return ("driver input active low (a PNP stage or an inverter);", "5 V active buzzer")


def _present(name: str, spec: PinSpec) -> tuple[str, ...]:
    return (f"connector loop to {rail_against(name, spec)}; unplugging opens it",
            pull_label(name, spec).replace("a cut wire", "unplugged"))


def _keepalive(name: str, spec: PinSpec) -> tuple[str, ...]:
    return ("pulses while the slot is open: 100 nF into a",
            "retriggerable monostable (74HC123, ~50 ms) whose",
            "output ANDs the lock gate (74HC08): no pulses,",
            "the lock drops within 50 ms")


_DETAILS = {"lock": _lock, "beam": _beam, "lid": _lid, "green": _lamp, "red": _lamp, "buzzer": _buzzer,
            "present": _present, "keepalive": _keepalive}
