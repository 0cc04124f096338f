"""Backends by name: the one place that turns config names into hardware objects.

Each factory imports the backend's module only when that backend is named, so
a unit without a camera never imports OpenCV, and nothing imports RPi.GPIO off
a Pi. Simulated backends are built only when named; ``device.config`` already
refuses them in production, and ``_refuse_sim`` checks again here.
"""

from __future__ import annotations

import importlib
from typing import Any

from device.config import Config
from device.core.delays import Delays
from device.hardware.interfaces import BallotBox, Clock, Decoder, ScanSource


class BackendError(Exception):
    """A backend cannot be built; the message says which and why."""


def _refuse_sim(config: Config, part: str) -> None:
    if not config.simulation:
        raise BackendError(f"simulated {part} refused in production mode")


def _load(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise BackendError(f"the {module} backend needs a library that is not installed: {exc.name} (install "
                           "pollbox with the right extras, see docs/ballot-box.md and docs/scanning.md)") from None


def build_box(config: Config, *, clock: Clock, delays: Delays, timers: bool = True) -> BallotBox:
    """The ballot box named by ``hardware.ballot_box``.

    ``timers`` runs the backend's own safety timers (jam, arm window, heartbeat
    loss) on a thread; tests that drive a fake clock pass False and call
    ``check()`` themselves.
    """
    name, settings = config.ballot_box, config.hardware
    if name == "sim":
        _refuse_sim(config, "ballot box")
        return _load("device.hardware.sim.box", "SimBallotBox")(  # type: ignore[no-any-return]
            clock=clock, delays=delays, tick_every=0.05 if timers else None)
    if name == "gpio":
        table = settings.get("pins")
        pins_mod = "device.hardware.boxes.pins"
        try:
            pins = _load(pins_mod, "PinMap").from_config(table) if table else _load(pins_mod, "DEFAULT_PINS")
        except ValueError as exc:
            raise BackendError(f"hardware.pins: {exc}") from None
        return _load("device.hardware.boxes.gpio", "GpioBallotBox")(  # type: ignore[no-any-return]
            clock=clock, delays=delays, pins=pins, tick_every=0.005 if timers else None)
    if name == "smartbox":
        sb = settings.get("smartbox", {})
        return _load("device.hardware.boxes.smartbox", "SmartBallotBox")(  # type: ignore[no-any-return]
            clock=clock, delays=delays, port=sb.get("port", "/dev/serial0"), baudrate=sb.get("baudrate", 115200))
    raise BackendError(f"unknown ballot box backend {name!r}")


def build_decoder(config: Config) -> Decoder:
    """The frame decoder named by ``hardware.decoder``, limited to ``hardware.camera.formats``."""
    from device.hardware.decoders import DEFAULT_FORMATS, DecoderConfigError, load_decoder
    formats = config.hardware.get("camera", {}).get("formats", DEFAULT_FORMATS)
    try:
        return load_decoder(config.decoder, formats)
    except DecoderConfigError as exc:
        raise BackendError(f"hardware.decoder: {exc}") from None
    except ImportError as exc:
        raise BackendError(f"the {config.decoder} decoder needs {exc.name}; install pollbox[scan]") from None


def build_scanner(config: Config, *, clock: Clock) -> ScanSource:
    """The document source named by ``hardware.scanner``."""
    name, hw = config.scanner, config.hardware
    if name == "sim":
        _refuse_sim(config, "scanner")
        return _load("device.hardware.sim.scanner", "SimScanner")()  # type: ignore[no-any-return]
    if name == "simcamera":
        _refuse_sim(config, "camera")
        return _load("device.hardware.scanners.simcamera", "SimCamera")(  # type: ignore[no-any-return]
            decoder=build_decoder(config))
    if name in ("camera", "picamera"):
        cam = hw.get("camera", {})
        size = {"width": cam.get("width", 640), "height": cam.get("height", 480), "fps": cam.get("fps", 15)}
        if name == "camera":
            return _load("device.hardware.scanners.camera", "v4l2_camera_source")(  # type: ignore[no-any-return]
                build_decoder(config), device=cam.get("device", 0), **size)
        return _load("device.hardware.scanners.picamera", "picamera_source")(  # type: ignore[no-any-return]
            build_decoder(config), **size)
    if name == "keyboard":
        kb = hw.get("keyboard", {})
        if "device" not in kb:
            raise BackendError("hardware.keyboard.device: name the scanner's input device "
                               "(a /dev/input/by-id path or part of its name)")
        return _load("device.hardware.scanners.keyboard", "KeyboardScanner")(  # type: ignore[no-any-return]
            device=kb["device"], layout=kb.get("layout", "us"), monotonic=clock.monotonic)
    if name == "serial":
        ser = hw.get("serial", {})
        return _load("device.hardware.scanners.serial", "SerialScanner")(  # type: ignore[no-any-return]
            port=ser.get("port", "/dev/ttyACM0"), baudrate=ser.get("baudrate", 9600), monotonic=clock.monotonic)
    raise BackendError(f"unknown scanner backend {name!r}")
