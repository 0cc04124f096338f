"""The ballot box unit's wiring diagrams, drawn as SVG from the pin maps the code uses.

``render_svg(pins)`` draws the direct GPIO unit: the Raspberry Pi's 40-pin
header (both columns, physical pin numbers and BCM names) and a wire from each
used pin to its part (driver, pull resistor, flyback diode...), labelled with
the BCM number, the physical pin and the active level read from the ``PinMap``.
``render_smartbox_svg(firmware)`` draws the smart box: the Pi's UART to the
Pico and the Pico's own pins, from ``PINS`` and ``BAUDRATE`` of
``device/firmware/board.py``. That file imports ``machine`` and cannot be
imported off a Pico, so ``firmware_map(source)`` reads the two literals from its
source text with ``ast``.

Pure string building: no third-party libraries and no I/O; the parts and their
labels are in ``parts.py``. ``pollbox docs`` reads ``BOARD_SOURCE``, calls
``documents`` and writes each file into docs/;
``tests/box/test_wiring.py`` fails when a committed drawing is out of date.
``pins.BCM_TO_PHYSICAL`` (from ``pins.PI_HEADER``) is the one place that maps
BCM numbers to header pins.
"""

from __future__ import annotations

from collections.abc import Sequence

from device.hardware.boxes.pins import DEFAULT_PINS, OPTIONAL, PI_HEADER, PinMap, PinSpec

from .parts import (
    BAND,
    COLOURS,
    LINK_PITCH,
    PAD,
    PI_SUPPLY,
    PI_UART_GROUND,
    PICO_HEADER,
    PICO_SUPPLY,
    PICO_UART_GROUND,
    PIN_R,
    ROW,
    SUPPLY_KIND,
    TITLES,
    UART_BCM,
    WIDTH,
    Box,
    Connector,
    Drawing,
    End,
    FirmwareMap,
    Link,
    active_label,
    firmware_map,
    part_lines,
    physical_pin,
    pico_pin,
)


def place(boxes: Sequence[Box], c: Connector, top: float, bottom: float, gap: float = 8) -> list[float]:
    """Box tops: each as close to its first pin as it can be, in order, without overlapping.

    Boxes are pushed down from ``top``, then up from ``bottom``, then down again: they stay
    between the two when they fit, and run past ``bottom`` (never above ``top``) when they do not.
    """
    ys = [c.pin_y(box.links[0].pin) - box.link_offset(0) for box in boxes]
    _push_down(boxes, ys, top, gap)
    for i in reversed(range(len(ys))):
        limit = bottom if i == len(ys) - 1 else ys[i + 1] - gap
        ys[i] = min(ys[i], limit - boxes[i].height())
    _push_down(boxes, ys, top, gap)
    return ys


def _push_down(boxes: Sequence[Box], ys: list[float], top: float, gap: float) -> None:
    floor = top
    for i, box in enumerate(boxes):
        ys[i] = max(ys[i], floor)
        floor = ys[i] + box.height() + gap


def route(ends: Sequence[End], near: float, far: float) -> list[list[tuple[float, float]]]:
    """Wires (pin x, pin y, box edge x, band y) with their bends spread between ``near`` (box) and ``far``.

    Wires going down take bends nearer the box the higher their pin; wires going up the lower
    their pin. With pins and bands in the same order this draws no crossings.
    """
    down = sorted((e for e in ends if e[3] > e[1]), key=lambda e: e[1])
    up = sorted((e for e in ends if e[3] < e[1]), key=lambda e: -e[1])
    bends: dict[End, float] = {}
    for group in (down, up):
        step = (far - near) / (len(group) + 1)
        bends.update({end: near + step * (i + 1) for i, end in enumerate(group)})
    paths = []
    for end in ends:
        px, py, bx, by = end
        bend = bends.get(end)
        paths.append([(px, py), (bx, by)] if bend is None else [(px, py), (bend, py), (bend, by), (bx, by)])
    return paths


def draw_connector(d: Drawing, c: Connector, used: dict[int, str], title: str, square_pin: int = 1) -> None:
    """The connector body, its pins (numbered, coloured when used) and the names beside them."""
    d.text(c.x + c.width / 2, c.top - 26, title, size=12, anchor="middle", weight="bold")
    d.rect(c.x, c.top - 16, c.width, c.bottom() - c.top + 32, fill="#f3f1ea", stroke="#8d8a80", rx=6)
    for side, column in (("left", c.left), ("right", c.right)):
        for number, name in column:
            _draw_pin(d, c, side, number, name, used.get(number), number == square_pin)


def _draw_pin(d: Drawing, c: Connector, side: str, number: int, name: str, colour: str | None,
              square: bool) -> None:
    x, y = c.pin_x(side), c.pin_y(number)
    supply = COLOURS.get(SUPPLY_KIND.get(name, ""))
    fill = colour or supply or "#ffffff"
    ink = "#ffffff" if colour or supply else "#333333"
    if square:
        d.rect(x - PIN_R, y - PIN_R, 2 * PIN_R, 2 * PIN_R, fill=fill, stroke="#555555", rx=1)
    else:
        d.circle(x, y, PIN_R, fill=fill, stroke="#555555")
    d.text(x, y + 3.5, str(number), size=9.5, anchor="middle", fill=ink, weight="bold")
    label_x = x + 14 if side == "left" else x - 14
    anchor = "start" if side == "left" else "end"
    d.text(label_x, y + 3.5, name, size=10, anchor=anchor, fill=colour or ("#1a1a1a" if supply else "#8a8a8a"),
           weight="bold" if colour or supply else "normal")


def draw_box(d: Drawing, box: Box, x: float, y: float, w: float) -> list[float]:
    """The box at (x, y); returns the heights of its link bands, where the wires end."""
    d.rect(x, y, w, box.height(), fill="#ffffff", stroke="#9e9e9e")
    if box.heading:
        d.text(x + 8, y + PAD + ROW - 3, box.heading, size=11, weight="bold")
    bands = []
    for i, link in enumerate(box.links):
        band_y = y + box.link_offset(i)
        d.rect(x + 1, band_y - BAND / 2, w - 2, BAND, fill=link.colour, rx=3)
        d.text(x + 8, band_y + 4, link.text, size=11, fill="#ffffff", weight="bold")
        bands.append(band_y)
    line_y = y + box.link_offset(len(box.links)) - BAND / 2 + ROW - 4
    if box.title:
        d.text(x + 8, line_y, box.title, size=10.5, weight="bold")
        line_y += ROW
    for line in box.lines:
        d.text(x + 8, line_y, line, size=10.5, fill="#333333")
        line_y += ROW
    return bands


def draw_side(d: Drawing, c: Connector, side: str, boxes: Sequence[Box], box_x: float, box_w: float,
              top: float) -> float:
    """Place, draw and wire one side's boxes (in the order of their pins); returns the lowest box bottom."""
    if not boxes:
        return top
    ys = place(boxes, c, top, c.bottom() + 16)
    edge = box_x + box_w if side == "left" else box_x
    ends: list[End] = []
    colours: list[str] = []
    for box, y in zip(boxes, ys, strict=True):
        bands = draw_box(d, box, box_x, y, box_w)
        for band_y, link in zip(bands, box.links, strict=True):
            pin_side = c.side(link.pin)
            pin_edge = c.pin_x(pin_side) + (-PIN_R if pin_side == "left" else PIN_R)
            ends.append((pin_edge, c.pin_y(link.pin), edge, band_y))
            colours.append(link.colour)
    far = c.x - 6 if side == "left" else c.x + c.width + 6
    for path, colour in zip(route(ends, edge + (8 if side == "left" else -8), far), colours, strict=True):
        d.wire(path, colour)
    return max(y + box.height() for box, y in zip(boxes, ys, strict=True))


def pi_connector(x: float, top: float, pitch: float) -> Connector:
    """The Pi header seen from above, pin 1 top left: odd pins on the left, even on the right."""
    names = [f"BCM{p}" if isinstance(p, int) else p for p in PI_HEADER]
    numbered = tuple((i + 1, name) for i, name in enumerate(names))
    return Connector(x=x, top=top, pitch=pitch, left=numbered[0::2], right=numbered[1::2])


def pico_connector(x: float, top: float, pitch: float) -> Connector:
    """The Pico seen from above, USB at the top: pins 1-20 down the left, 40-21 down the right."""
    numbered = tuple((i + 1, name) for i, name in enumerate(PICO_HEADER))
    return Connector(x=x, top=top, pitch=pitch, left=numbered[:20], right=tuple(reversed(numbered[20:])))


def gpio_boxes(pins: PinMap) -> list[Box]:
    """One box per wired part and per supply, in the order of their header pins."""
    found = [_part_box(name, spec) for name, spec in pins.parts().items()]
    for supply, number in PI_SUPPLY.items():
        band = f"{supply}  \u00b7  pin {number}"
        found.append(Box((Link(band, number, COLOURS[supply]),), _SUPPLY_LINES[supply]))
    return sorted(found, key=lambda box: box.links[0].pin)


def _part_box(name: str, spec: PinSpec) -> Box:
    number = physical_pin(spec.bcm)
    title = TITLES[name] + (" (optional)" if name in OPTIONAL else "")
    band = f"{title}  \u00b7  BCM{spec.bcm}  \u00b7  pin {number}"
    return Box((Link(band, number, COLOURS[name]),), part_lines(name, spec), active_label(name, spec))


_SUPPLY_LINES = {
    "3V3": ("break-beam emitter and receiver supply",),
    "5V": ("supply of the buzzer (and of panel lamps)",),
    "GND": ("common ground: MOSFET source, the 12 V supply's", "ground, reed switch, LEDs, present loop"),
}


def render_svg(pins: PinMap = DEFAULT_PINS) -> str:
    """The direct GPIO unit's wiring for ``pins``, as a standalone SVG document."""
    _check_distinct(pins)
    d = Drawing()
    c = pi_connector(x=380, top=104, pitch=24)
    used = {physical_pin(spec.bcm): COLOURS[name] for name, spec in pins.parts().items()}
    draw_connector(d, c, used, "Pi 40-pin header, from above")
    source = "the default pin map (pins.py DEFAULT_PINS)" if pins == DEFAULT_PINS else "a configured pin map"
    _heading(d, "Ballot box unit wired to the Pi's GPIO header", f"Drawn from {source}. Every input is "
             "pulled towards its alarm state. Pins: black GND, orange 3.3 V, red 5 V.")
    bottom = c.bottom() + 16
    for side, box_x in (("left", 14.0), ("right", 592.0)):
        boxes = [box for box in gpio_boxes(pins) if c.side(box.links[0].pin) == side]
        bottom = max(bottom, draw_side(d, c, side, boxes, box_x, 294, top=64))
    height = bottom + 34
    _footer(d, height, "Generated by pollbox docs from device/hardware/boxes/pins.py; do not edit by hand.")
    return d.svg(height, "Ballot box unit: direct GPIO wiring")


def render_smartbox_svg(firmware: FirmwareMap) -> str:
    """The smart box's wiring: the Pi's UART to the Pico, and the Pico's pins from ``firmware``."""
    d = Drawing()
    c = pico_connector(x=600, top=112, pitch=LINK_PITCH)
    parts = [(name, pico_pin(gp)) for name, gp in firmware.pins.items() if name in TITLES]
    used = {number: COLOURS[name] for name, number in parts}
    used.update({pico_pin(firmware.pins["tx"]): COLOURS["uart"], pico_pin(firmware.pins["rx"]): COLOURS["uart"],
                 PICO_UART_GROUND: COLOURS["GND"]})
    draw_connector(d, c, used, "Pico, from above, USB up", square_pin=0)
    _pico_led(d, c, firmware)
    _heading(d, "Smart box: the Pi talks to a Pico over its UART",
             f"Drawn from PINS and BAUDRATE in device/firmware/board.py; UART {firmware.baudrate} baud, 3.3 V logic.")
    left = sorted([_uart_box(firmware), *(_pico_part(name, number) for name, number in parts)],
                  key=lambda box: box.links[0].pin)
    bottom = draw_side(d, c, "left", left, 14, 490, top=64)
    supply = Box((Link(f"VSYS  \u00b7  pin {PICO_SUPPLY}", PICO_SUPPLY, COLOURS["5V"]),),
                 ("1.8-5.5 V supply in", "(or power over USB)"))
    bottom = max(bottom, draw_side(d, c, "right", [supply], 760, 126, top=64))
    height = max(bottom, c.bottom() + 36) + 34
    _footer(d, height, "Generated by pollbox docs from device/firmware/board.py; do not edit by hand.")
    return d.svg(height, "Smart box: Pi UART to Raspberry Pi Pico")


def _uart_box(firmware: FirmwareMap) -> Box:
    tx, rx = pico_pin(firmware.pins["tx"]), pico_pin(firmware.pins["rx"])
    pi_tx, pi_rx = physical_pin(UART_BCM["tx"]), physical_pin(UART_BCM["rx"])
    wires = sorted([
        (rx, f"Pi pin {pi_tx} BCM{UART_BCM['tx']} TXD  \u2192  GP{firmware.pins['rx']} RX (pin {rx})", "uart"),
        (tx, f"Pi pin {pi_rx} BCM{UART_BCM['rx']} RXD  \u2190  GP{firmware.pins['tx']} TX (pin {tx})", "uart"),
        (PICO_UART_GROUND, f"Pi pin {PI_UART_GROUND} GND  \u2014  GND (pin {PICO_UART_GROUND})", "GND"),
    ])
    links = tuple(Link(text, number, COLOURS[kind]) for number, text, kind in wires)
    lines = (f"enable_uart=1, no serial console; the station opens /dev/serial0 at {firmware.baudrate} baud",)
    return Box(links, lines, heading="Raspberry Pi (station)")


def _pico_part(name: str, number: int) -> Box:
    band = f"{TITLES[name]}  \u00b7  {PICO_HEADER[number - 1]}  \u00b7  pin {number}"
    return Box((Link(band, number, COLOURS[name]),), _PICO_LINES[name])


_PICO_LINES = {
    "lock": ("output, high = slot open; same MOSFET driver, 10 k\u03a9 gate pull-down and",
             "1N4007 flyback diode as the GPIO unit (the RP2040 holds it low at reset)"),
    "beam": ("input, high = beam blocked; internal pull-up (a cut wire reads blocked)",),
    "lid": ("input, high = lid open; internal pull-up; reed switch to GND",),
    "green": ("output, high = lit; 330 \u03a9 and LED to GND",),
    "red": ("output, high = lit; 330 \u03a9 and LED to GND",),
    "buzzer": ("output, high = sounding; 1 k\u03a9 to an NPN base, 5 V active buzzer",),
}


def _pico_led(d: Drawing, c: Connector, firmware: FirmwareMap) -> None:
    if "led" in firmware.pins:
        y = c.bottom() + 34
        d.text(c.x + c.width / 2, y, f"on-board LED GP{firmware.pins['led']}: blinks while running", size=10,
               anchor="middle", fill="#555555")


def _heading(d: Drawing, title: str, subtitle: str) -> None:
    d.text(14, 26, title, size=17, weight="bold")
    d.text(14, 46, subtitle, size=11.5, fill="#444444")


def _footer(d: Drawing, height: float, text: str) -> None:
    d.text(WIDTH - 14, height - 12, text, size=10, anchor="end", fill="#777777")


def _check_distinct(pins: PinMap) -> None:
    seen: dict[int, str] = {number: name for name, number in PI_SUPPLY.items()}
    for name, spec in pins.parts().items():
        number = physical_pin(spec.bcm)
        if number in seen:
            raise ValueError(f"{name}: BCM{spec.bcm} is header pin {number}, already used by {seen[number]}")
        seen[number] = name


def documents(board_source: str, pins: PinMap = DEFAULT_PINS) -> dict[str, str]:
    """File name in docs/ -> SVG text, for ``pollbox docs`` and the up-to-date test."""
    return {"wiring.svg": render_svg(pins), "wiring-smartbox.svg": render_smartbox_svg(firmware_map(board_source))}
