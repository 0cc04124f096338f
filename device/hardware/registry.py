"""Backends by name: the one place that turns config names into hardware objects.

Each backend has a factory function that imports the backend's module inside
itself, by a plain ``from ... import`` a reader and mypy can follow, and calls
its constructor with the backend's typed settings (``device.config``). So a
unit without a camera never imports OpenCV, and nothing imports RPi.GPIO off a
Pi. The tables ``BOXES``, ``SCANNERS`` and ``DECODERS`` map each config name to
its factory. Simulated backends are built only when named; ``device.config``
already refuses them in production, and their factories refuse them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Protocol

from device.config import Config
from device.core.delays import Delays
from device.hardware.interfaces import BallotBox, Clock, Decoder, ScanSource
from protocol.errors import UserError


class BackendError(UserError):
    """A backend cannot be built; the message says which and why."""


class BoxFactory(Protocol):
    def __call__(self, config: Config, *, clock: Clock, delays: Delays, timers: bool) -> BallotBox: ...


class ScannerFactory(Protocol):
    def __call__(self, config: Config, *, clock: Clock) -> ScanSource: ...


class DecoderFactory(Protocol):
    def __call__(self, formats: tuple[str, ...]) -> Decoder: ...


def _refuse_sim(config: Config, part: str) -> None:
    if not config.simulation:
        raise BackendError(f"simulated {part} refused in production mode")


@contextmanager
def _library(backend: str, install: str) -> Iterator[None]:
    """Turns a missing third-party library, met while importing ``backend``, into a BackendError."""
    try:
        yield
    except ImportError as exc:
        if not exc.name or exc.name.split(".")[0] == "device":
            raise
        raise BackendError(f"the {backend} backend needs the {exc.name} library, which is not installed "
                           f"({install}; see docs/ballot-box.md and docs/scanning.md)") from None


# Ballot boxes ---------------------------------------------------------------------------

def _sim_box(config: Config, *, clock: Clock, delays: Delays, timers: bool) -> BallotBox:
    _refuse_sim(config, "ballot box")
    from device.hardware.sim.box import SimBallotBox
    return SimBallotBox(clock=clock, delays=delays, tick_every=0.05 if timers else None)


def _gpio_box(config: Config, *, clock: Clock, delays: Delays, timers: bool) -> BallotBox:
    with _library("gpio ballot box", "install pollbox[pi], or pollbox[pi5] on a Raspberry Pi 5"):
        from device.hardware.boxes.gpiolib import load_gpio
        load_gpio(**asdict(config.hardware.gpio))  # [hardware.gpio]: the library and the chip
        from device.hardware.boxes.gpio import GpioBallotBox
    return GpioBallotBox(clock=clock, delays=delays, pins=config.hardware.pins, tick_every=0.005 if timers else None)


def _smart_box(config: Config, *, clock: Clock, delays: Delays, timers: bool) -> BallotBox:
    settings = config.hardware.smartbox
    with _library("smartbox ballot box", "install pollbox[pi]"):
        from device.hardware.boxes.smartbox import SmartBallotBox
    return SmartBallotBox(clock=clock, delays=delays, port=settings.port, baudrate=settings.baudrate,
                          tick_every=0.005 if timers else None)


BOXES: dict[str, BoxFactory] = {"sim": _sim_box, "gpio": _gpio_box, "smartbox": _smart_box}


def build_box(config: Config, *, clock: Clock, delays: Delays, timers: bool = True) -> BallotBox:
    """The ballot box named by ``hardware.ballot_box``.

    ``timers`` runs the backend's own safety timers (jam, arm window, heartbeat
    loss) on a thread; tests that drive a fake clock pass False and call
    ``check()`` themselves.
    """
    factory = BOXES.get(config.ballot_box)
    if factory is None:
        raise BackendError(f"hardware.ballot_box: unknown backend {config.ballot_box!r} "
                           f"(known: {', '.join(BOXES)})")
    return factory(config, clock=clock, delays=delays, timers=timers)


# Decoders ---------------------------------------------------------------------------------

def _zxing(formats: tuple[str, ...]) -> Decoder:
    with _library("zxing decoder", "install pollbox[scan]"):
        from device.hardware.decoders.zxing import ZxingDecoder
    return ZxingDecoder(formats)


def _zbar(formats: tuple[str, ...]) -> Decoder:
    with _library("zbar decoder", "install pollbox[scan] and the libzbar0 Debian package"):
        from device.hardware.decoders.zbar import ZbarDecoder
    return ZbarDecoder(formats)


DECODERS: dict[str, DecoderFactory] = {"zxing": _zxing, "zbar": _zbar}


def build_decoder(config: Config) -> Decoder:
    """The frame decoder named by ``hardware.decoder``, limited to ``hardware.camera.formats``."""
    from device.hardware.decoders import DecoderConfigError
    factory = DECODERS.get(config.decoder)
    if factory is None:
        raise BackendError(f"hardware.decoder: unknown backend {config.decoder!r} (known: {', '.join(DECODERS)})")
    try:
        return factory(config.hardware.camera.formats)
    except DecoderConfigError as exc:
        raise BackendError(f"hardware.decoder: {exc} (hardware.camera.formats names the formats)") from None


# Scan sources -----------------------------------------------------------------------------

def _sim_scanner(config: Config, *, clock: Clock) -> ScanSource:
    _refuse_sim(config, "scanner")
    from device.hardware.sim.scanner import SimScanner
    return SimScanner()


def _sim_camera(config: Config, *, clock: Clock) -> ScanSource:
    _refuse_sim(config, "camera")
    from device.hardware.scanners.simcamera import SimCamera
    return SimCamera(decoder=build_decoder(config))


def _v4l2_camera(config: Config, *, clock: Clock) -> ScanSource:
    cam = config.hardware.camera
    decoder = build_decoder(config)
    with _library("camera scanner", "install pollbox[scan]"):
        from device.hardware.scanners.camera import v4l2_camera_source
    return v4l2_camera_source(decoder, device=cam.device, width=cam.width, height=cam.height, fps=cam.fps)


def _pi_camera(config: Config, *, clock: Clock) -> ScanSource:
    cam = config.hardware.camera
    decoder = build_decoder(config)
    with _library("picamera scanner", "install the python3-picamera2 Debian package"):
        from device.hardware.scanners.picamera import picamera_source
    return picamera_source(decoder, width=cam.width, height=cam.height, fps=cam.fps)


def _keyboard(config: Config, *, clock: Clock) -> ScanSource:
    kb = config.hardware.keyboard
    if not kb.device:
        raise BackendError("hardware.keyboard.device: name the scanner's input device "
                           "(a /dev/input/by-id path or part of its name)")
    with _library("keyboard scanner", "install pollbox[scan]"):
        from device.hardware.scanners.keyboard import KeyboardScanner
    return KeyboardScanner(device=kb.device, layout=kb.layout, monotonic=clock.monotonic)


def _serial(config: Config, *, clock: Clock) -> ScanSource:
    ser = config.hardware.serial
    with _library("serial scanner", "install pollbox[scan]"):
        from device.hardware.scanners.serial import SerialScanner
    return SerialScanner(port=ser.port, baudrate=ser.baudrate, monotonic=clock.monotonic)


SCANNERS: dict[str, ScannerFactory] = {
    "sim": _sim_scanner, "simcamera": _sim_camera, "camera": _v4l2_camera, "picamera": _pi_camera,
    "keyboard": _keyboard, "serial": _serial,
}


def build_scanner(config: Config, *, clock: Clock) -> ScanSource:
    """The document source named by ``hardware.scanner``."""
    factory = SCANNERS.get(config.scanner)
    if factory is None:
        raise BackendError(f"hardware.scanner: unknown backend {config.scanner!r} (known: {', '.join(SCANNERS)})")
    return factory(config, clock=clock)
