"""The smart box firmware (MicroPython on a Raspberry Pi Pico / RP2040).

The Pi software imports only ``device.firmware.boxproto`` (the shared framed
protocol). Everything else here runs on the Pico. ``FILES`` maps each file's
name on the Pico's flash to its place in this source tree: the debouncer is
shared with the Pi and lives in ``device/core/debounce.py``. The flashing
steps in docs/ballot-box.md and the firmware tests both use this map.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent

FILES: dict[str, Path] = {
    "boxproto.py": _HERE / "boxproto.py",
    "boxlogic.py": _HERE / "boxlogic.py",
    "boxstore.py": _HERE / "boxstore.py",
    "board.py": _HERE / "board.py",
    "debounce.py": _HERE.parent / "core" / "debounce.py",
    "main.py": _HERE / "main.py",
}
"""Name on the Pico -> source file. ``main.py`` runs at power-on."""


def stage(target: Path, include_main: bool = True) -> list[Path]:
    """Copy the firmware files into ``target`` as they sit on the Pico; returns the copies."""
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for name, source in FILES.items():
        if name == "main.py" and not include_main:
            continue
        dest = target / name
        dest.write_bytes(source.read_bytes())
        out.append(dest)
    return out
