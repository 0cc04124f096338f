"""Loading the ``RPi.GPIO`` module that ``[hardware.gpio]`` names, before the gpio box imports it.

Two packages provide the module ``RPi.GPIO``: the classic RPi.GPIO (it maps the SoC's registers;
Pi 3, 4, Zero 2) and rpi-lgpio (the same API over the kernel's GPIO character device
``/dev/gpiochipN`` through lgpio; every Pi, the Pi 5 included). Only one can be installed. The
registry calls ``load_gpio`` before importing ``device.hardware.boxes.gpio``; it prepares what
rpi-lgpio reads from the environment at import (``RPI_LGPIO_CHIP``; lgpio's working directory
``LG_WD`` for its notification files, which must be writable while the service's working directory
is the read-only root), imports the module, and checks that the one installed is the one the config
names, so a unit never runs on a library nobody chose.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from types import ModuleType

from .errors import BoxError

INSTALL = {"rpi-gpio": "pollbox[pi]", "rpi-lgpio": "pollbox[pi5]"}


def installed_library() -> str:
    """Which package the imported ``RPi.GPIO`` came from (rpi-lgpio imports lgpio)."""
    return "rpi-lgpio" if "lgpio" in sys.modules else "rpi-gpio"


def load_gpio(library: str, chip: int = -1) -> ModuleType:
    """Import ``RPi.GPIO`` for ``library`` (``rpi-gpio`` or ``rpi-lgpio``); BoxError says what is wrong."""
    if library not in INSTALL:
        raise BoxError(f"[hardware.gpio] library: unknown GPIO library {library!r} (known: {', '.join(INSTALL)})")
    if library == "rpi-lgpio":
        if chip >= 0:
            os.environ["RPI_LGPIO_CHIP"] = str(chip)
        os.environ.setdefault("LG_WD", tempfile.gettempdir())
    try:
        GPIO = importlib.import_module("RPi.GPIO")
    except RuntimeError as exc:  # both raise this off a Raspberry Pi, or without access to the GPIO
        raise BoxError(f"the {library} library refused to load: {exc}") from exc
    found = installed_library()
    if found != library:
        raise BoxError(f"[hardware.gpio] library is {library!r} but the installed RPi.GPIO module is {found}'s: "
                       f"install {INSTALL[library]} instead, or set library = \"{found}\"")
    return GPIO
