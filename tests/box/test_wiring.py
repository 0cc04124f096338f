"""The wiring diagrams: drawn from the pin maps the code uses, and the committed copies in docs/ up to date."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.hardware.boxes.pins import DEFAULT_PINS, HEADER_PIN, RESERVED, PinMap, PinSpec
from tools.wiring import (
    BCM_TO_PHYSICAL,
    BOARD_SOURCE,
    COLOURS,
    PI_HEADER,
    PI_SUPPLY,
    TITLES,
    UART_BCM,
    documents,
    firmware_map,
    pico_pin,
    render_smartbox_svg,
    render_svg,
)

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
BOARD = BOARD_SOURCE.read_text(encoding="utf-8")


def _texts(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}text"))


def _strings(svg: str) -> list[str]:
    return [element.text or "" for element in _texts(svg)]


def _line(svg: str, start: str, holding: str = "") -> str:
    """The one text that starts with ``start`` and holds ``holding`` (fails when there is none or more)."""
    found = [text for text in _strings(svg) if text.startswith(start) and holding in text]
    assert len(found) == 1, f"expected one text starting {start!r}, found {found}"
    return found[0]


def _band(svg: str, title: str) -> list[str]:
    """A part's band split at its dots: [title, BCM or GP number, physical pin]."""
    return [field.strip() for field in _line(svg, title, "\u00b7").split("\u00b7")]


@pytest.mark.parametrize("name", sorted(documents(BOARD)))
def test_committed_drawing_is_up_to_date(name: str) -> None:
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == documents(BOARD)[name], f"docs/{name} is out of date: run 'pollbox docs'"


@pytest.mark.parametrize("svg", [render_svg(), render_smartbox_svg(firmware_map(BOARD))], ids=["gpio", "smartbox"])
def test_drawing_is_standalone_svg(svg: str) -> None:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("viewBox", "").startswith("0 0 900 ")
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert tags <= {"svg", "title", "rect", "circle", "polyline", "text"}, tags
    assert not any("href" in key for element in root.iter() for key in element.attrib)
    assert "<script" not in svg and "url(" not in svg


def test_every_default_pin_is_labelled_with_bcm_physical_pin_and_level() -> None:
    svg = render_svg()
    for name, spec in DEFAULT_PINS.parts().items():
        assert _band(svg, TITLES[name])[1:] == [f"BCM{spec.bcm}", f"pin {BCM_TO_PHYSICAL[spec.bcm]}"]
        level = "high" if spec.active_high else "low"
        assert f"active {level}" in _line(svg, f"{name}: ")


def test_supplies_are_drawn_on_their_header_pins() -> None:
    svg = render_svg()
    for supply, number in PI_SUPPLY.items():
        assert PI_HEADER[number - 1] == supply
        assert _band(svg, supply) == [supply, f"pin {number}"]


def test_a_configured_pin_map_changes_the_drawing() -> None:
    custom = PinMap(lock=PinSpec(4, False), beam=PinSpec(6), lid=PinSpec(13), green=PinSpec(19),
                    red=PinSpec(26), buzzer=PinSpec(16), present=None, keepalive=PinSpec(20))
    svg = render_svg(custom)
    assert _band(svg, "Slot lock") == ["Slot lock", "BCM4", "pin 7"]
    assert "active low (low = slot open)" in _line(svg, "lock: ")
    assert "driver input active low" in svg
    assert _band(svg, "Drop sensor") == ["Drop sensor", "BCM6", "pin 31"]
    assert not any("Present loop" in text for text in _strings(svg))
    assert "configured pin map" in svg and svg != render_svg()


def test_a_used_pin_is_coloured_on_the_header() -> None:
    custom = PinMap(lock=PinSpec(4), beam=PinSpec(27), lid=PinSpec(22), green=PinSpec(23), red=PinSpec(24),
                    buzzer=PinSpec(25))
    fills = {element.text: element.get("fill") for element in _texts(render_svg(custom))}
    assert fills["BCM4"] == COLOURS["lock"]
    assert fills["BCM17"] != COLOURS["lock"]


@pytest.mark.parametrize(("bcm", "physical"), [
    (17, 11), (27, 13), (22, 15), (14, 8), (15, 10), (2, 3), (3, 5), (4, 7), (5, 29), (12, 32), (21, 40), (26, 37),
])
def test_header_table_matches_the_standard_header(bcm: int, physical: int) -> None:
    assert BCM_TO_PHYSICAL[bcm] == physical


def test_header_table_holds_every_gpio_once() -> None:
    assert len(PI_HEADER) == 40
    gpios = [pin for pin in PI_HEADER if isinstance(pin, int)]
    assert sorted(gpios) == list(range(28))
    assert Counter(pin for pin in PI_HEADER if isinstance(pin, str)) == {"GND": 8, "3V3": 2, "5V": 2}


def test_parts_may_use_every_gpio_but_the_id_eeprom_and_the_uart() -> None:
    assert sorted(HEADER_PIN) == [n for n in range(2, 28) if n not in (14, 15)]


def test_no_two_used_pins_share_a_physical_pin() -> None:
    used = [BCM_TO_PHYSICAL[spec.bcm] for spec in DEFAULT_PINS.parts().values()] + list(PI_SUPPLY.values())
    assert len(used) == len(set(used))


def test_a_pin_map_with_one_pin_twice_is_refused() -> None:
    twice = PinMap(lock=PinSpec(17), beam=PinSpec(17), lid=PinSpec(22), green=PinSpec(23), red=PinSpec(24),
                   buzzer=PinSpec(25))
    with pytest.raises(ValueError, match="beam: BCM17 is header pin 11, already used by lock"):
        render_svg(twice)


_ALLOWED = sorted(set(range(2, 28)) - set(RESERVED))


@settings(max_examples=40, deadline=None)
@given(st.permutations(_ALLOWED), st.lists(st.booleans(), min_size=8, max_size=8))
def test_any_valid_pin_map_is_drawn_with_each_part_on_its_pin(order: list[int], levels: list[bool]) -> None:
    names = list(TITLES)
    table = {name: {"bcm": order[i], "active_high": levels[i]} for i, name in enumerate(names)}
    pins = PinMap.from_config(table)
    svg = render_svg(pins)
    for name, spec in pins.parts().items():
        assert _band(svg, TITLES[name])[1:] == [f"BCM{spec.bcm}", f"pin {BCM_TO_PHYSICAL[spec.bcm]}"]


def test_smartbox_drawing_follows_the_firmware_pins() -> None:
    firmware = firmware_map(BOARD)
    svg = render_smartbox_svg(firmware)
    for name in ("lock", "beam", "lid", "green", "red", "buzzer"):
        gp = firmware.pins[name]
        assert _band(svg, TITLES[name]) == [TITLES[name], f"GP{gp}", f"pin {pico_pin(gp)}"]
    tx, rx = firmware.pins["tx"], firmware.pins["rx"]
    assert _line(svg, "Pi pin 8 BCM14 TXD").endswith(f"GP{rx} RX (pin {pico_pin(rx)})")
    assert _line(svg, "Pi pin 10 BCM15 RXD").endswith(f"GP{tx} TX (pin {pico_pin(tx)})")
    assert f"{firmware.baudrate} baud" in svg


def test_a_changed_firmware_pin_changes_the_smartbox_drawing() -> None:
    moved = BOARD.replace('"lock": 2,', '"lock": 8,')
    assert moved != BOARD
    assert _band(render_smartbox_svg(firmware_map(moved)), "Slot lock") == ["Slot lock", "GP8", "pin 11"]


def test_uart_pins_are_the_ones_the_gpio_map_may_not_use() -> None:
    assert set(UART_BCM.values()) == set(RESERVED)


@pytest.mark.parametrize(("gp", "physical"), [(0, 1), (1, 2), (2, 4), (7, 10), (15, 20), (16, 21), (22, 29), (28, 34)])
def test_pico_table_matches_the_pico_pinout(gp: int, physical: int) -> None:
    assert pico_pin(gp) == physical


def test_pico_led_pin_is_not_on_the_header() -> None:
    with pytest.raises(ValueError, match="GP25 is not on the Pico's pins"):
        pico_pin(25)


@pytest.mark.parametrize(("source", "message"), [
    ("BAUDRATE = 115200\n", "no top-level PINS"),
    ('PINS = {"lock": 2}\nBAUDRATE = 115200\n', "PINS has no 'beam'"),
    ('PINS = {"lock": "GP2"}\nBAUDRATE = 115200\n', "PINS must be a dict"),
])
def test_a_firmware_source_without_its_pin_map_is_refused(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        firmware_map(source)
