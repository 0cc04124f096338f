"""What the chair's screen may ask of the station, and nothing more: the ``Station`` protocol.

``create_app`` takes any object with these methods (the running ``Appliance``,
or a stand-in in a test). The screen reads the station's ``status()`` snapshot
and asks for chair actions; it never reaches the hardware. ``sim`` is there
only on a simulated station (the developer panel's parts).
"""

from __future__ import annotations

from typing import Any, Protocol

from device.ports import ChairActions


class Station(ChairActions, Protocol):
    """The station as the chair's screen sees it: the chair's actions, the reports, the notes of record."""

    def turnout_by_hour(self) -> list[tuple[int, int]]: ...
    def zero_report(self) -> dict[str, Any]: ...
    def close_report(self) -> dict[str, Any] | None: ...
    def annotate(self, topic: str, text: str) -> None: ...
    def close_without(self, unit: str, reason: str) -> None: ...
    def set_unit_link(self, peer: str, up: bool) -> None: ...
    """Simulation only: cut or restore the link to another unit of the station (the simulator panel)."""
