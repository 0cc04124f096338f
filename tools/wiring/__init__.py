"""Wiring drawings of the ballot box unit, generated from the pin maps (``pollbox docs``; not part of the running unit).

``render.py`` draws; ``parts.py`` knows the connectors, the parts and their labels.
"""

from __future__ import annotations

from device.hardware.boxes.pins import BCM_TO_PHYSICAL, PI_HEADER

from .parts import BOARD_SOURCE, COLOURS, PI_SUPPLY, TITLES, UART_BCM, firmware_map, pico_pin
from .render import documents, render_smartbox_svg, render_svg

__all__ = ["BCM_TO_PHYSICAL", "BOARD_SOURCE", "COLOURS", "PI_HEADER", "PI_SUPPLY", "TITLES", "UART_BCM", "documents",
           "firmware_map", "pico_pin", "render_smartbox_svg", "render_svg"]
