"""The touch poller: the panel's controller read over I2C, its touches written to a uinput touchscreen.

Run by ``pollbox-touch.service`` as ``python -m device.hardware.touchpanel`` (root: it opens
``/dev/i2c-N`` and ``/dev/uinput``, and nothing else). ``find_panel`` looks in sysfs for the I2C
device the panel's device-tree overlay made (``edt,edt-ft5406`` at 0x38 on the display connector's
bus); one that a kernel driver has bound is left to it. When the device is not there yet but the
device tree (``/sys/firmware/devicetree/base``) has the controller, the bus's driver is still
probing: it waits up to ``BUS_APPEARS`` seconds for it. ``Smbus`` reads the register block with one
SMBus I2C-block read per poll, every ``POLL`` seconds; ``ft5x06`` turns it into input events, which
``UinputTouch`` (python-evdev, imported in this module only) writes. When the panel stops
answering, every touch is lifted, the poller says so once and tries again every ``RETRY``
seconds; when it answers again, it says that too.

Checked in a booted test image with the kernel's ``i2c-stub`` in place of the controller
(``tests/image/test_kiosk.py``); not yet on a panel.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from protocol.errors import UserError

from .ft5x06 import BLOCK, FIRST_REGISTER, MAX_TOUCH_ID, TRACKING_IDS, Event, FrameError, Geometry, Touches, parse

POLL = 1 / 60
"""How often the controller's registers are read, in seconds (the panel's 60 Hz frame)."""
RETRY = 1.0
"""How long to wait before reading again after the panel did not answer, in seconds."""
BUS_APPEARS = 60.0
"""How long a controller the device tree describes may take to appear as an I2C device, in seconds:
the poller starts while udev is still loading and probing the buses' drivers."""
NEVER_CAME_UP = 3
"""The exit status when it never did: starting the poller again cannot help (``RestartPreventExitStatus``)."""
COMPATIBLE = ("edt,edt-ft5406", "edt,edt-ft5306", "edt,edt-ft5206")
"""The device-tree names of the controller (the overlay's node says ``edt,edt-ft5406``)."""

I2C_SLAVE = 0x0703
I2C_SMBUS = 0x0720
I2C_SMBUS_READ = 1
I2C_SMBUS_I2C_BLOCK_DATA = 8
SMBUS_DATA = 34
"""From ``linux/i2c-dev.h`` and ``linux/i2c.h`` (``union i2c_smbus_data``: a length, 32 bytes and one spare)."""

log = logging.getLogger("pollbox.touch")


class TouchSetupError(UserError):
    """The poller cannot start: a bus that is not there, a device it may not open."""


@dataclass(frozen=True)
class Panel:
    """Where the controller answers: I2C bus number and 7-bit address."""

    bus: int
    address: int

    def __str__(self) -> str:
        return f"i2c-{self.bus} at 0x{self.address:02x}"


def find_panel(sys_root: Path, wait: Callable[[float], bool]) -> Panel | str:
    """The controller the device tree describes and no driver has bound, or a sentence why there is none to poll.

    A controller in the device tree with no I2C device yet is waited for, ``RETRY`` seconds at a time
    (``wait``, which returns true when the poller is told to stop), for ``BUS_APPEARS`` seconds at most;
    then ``TouchSetupError``."""
    found = _i2c_device(sys_root)
    if found is not None:
        return found
    node = _node_in_tree(sys_root / "firmware/devicetree/base")
    if node is None:
        return "no touch panel in the device tree (the 7-inch panel's overlay is applied only when the panel is there)"
    print(f"pollbox-touch: the device tree has a touch panel at {node}; waiting for its I2C bus", flush=True)
    for _ in range(round(BUS_APPEARS / RETRY)):
        if wait(RETRY):
            return "stopped while waiting for the touch panel's I2C bus"
        found = _i2c_device(sys_root)
        if found is not None:
            return found
    raise TouchSetupError(f"the device tree has a touch panel at {node}, but no I2C device for it came up within"
                          f" {BUS_APPEARS:.0f} s: is the driver of its I2C bus in the kernel?")


def _compatible(path: Path) -> bool:
    """Whether a ``compatible`` property (NUL-separated names) names the controller."""
    try:
        names = path.read_bytes().split(b"\0")
    except OSError:
        return False
    return any(name.decode(errors="replace") in COMPATIBLE for name in names)


def _i2c_device(sys_root: Path) -> Panel | str | None:
    """The controller's I2C device (or why it is not ours to poll), or None while there is none."""
    for device in sorted((sys_root / "bus/i2c/devices").glob("*-*")):
        if not _compatible(device / "of_node/compatible"):
            continue
        bus, _, address = device.name.partition("-")
        if (device / "driver").exists():
            return f"the kernel's driver ({(device / 'driver').resolve().name}) takes the touch panel on {device.name}"
        return Panel(int(bus), int(address, 16))
    return None


def _node_in_tree(base: Path) -> str | None:
    """The device-tree path of an enabled node that names the controller, or None (no tree, as on x86)."""
    for compatible in sorted(base.rglob("compatible")):
        node = compatible.parent
        status = (node / "status").read_bytes().rstrip(b"\0") if (node / "status").exists() else b"okay"
        if status in (b"okay", b"ok") and _compatible(compatible):
            return "/" + node.relative_to(base).as_posix()
    return None


class Registers(Protocol):
    """A block of the controller's registers."""

    def read_block(self, register: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class Touchscreen(Protocol):
    """Where touch events go."""

    def write(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class _SmbusData(ctypes.Structure):
    """``struct i2c_smbus_ioctl_data``: direction, register, transfer kind, and the data's address."""

    _fields_ = [("read_write", ctypes.c_uint8), ("command", ctypes.c_uint8), ("size", ctypes.c_uint32),
                ("data", ctypes.POINTER(ctypes.c_uint8 * SMBUS_DATA))]


class Smbus:
    """One I2C device through ``/dev/i2c-N``: SMBus I2C-block reads of its registers."""

    def __init__(self, panel: Panel, dev: Path = Path("/dev")) -> None:
        path = dev / f"i2c-{panel.bus}"
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TouchSetupError(f"{path} is missing: is the i2c-dev module loaded?") from None
        try:
            fcntl.ioctl(self._fd, I2C_SLAVE, panel.address)
        except OSError as exc:
            os.close(self._fd)
            raise TouchSetupError(f"cannot address 0x{panel.address:02x} on {path}: {exc.strerror}") from None

    def read_block(self, register: int, length: int) -> bytes:
        buffer = (ctypes.c_uint8 * SMBUS_DATA)()
        buffer[0] = length
        request = _SmbusData(I2C_SMBUS_READ, register, I2C_SMBUS_I2C_BLOCK_DATA, ctypes.pointer(buffer))
        fcntl.ioctl(self._fd, I2C_SMBUS, request)
        return bytes(buffer[1:1 + buffer[0]])

    def close(self) -> None:
        os.close(self._fd)


class UinputTouch:
    """A direct-touch screen made with ``/dev/uinput``, as big as the panel."""

    NAME = "pollbox touch panel"

    def __init__(self, geometry: Geometry) -> None:
        import evdev
        from evdev import AbsInfo
        from evdev import ecodes as e

        width, height = geometry.size
        x, y = AbsInfo(0, 0, width - 1, 0, 0, 0), AbsInfo(0, 0, height - 1, 0, 0, 0)
        capabilities: dict[int, Sequence[Any]] = {
            e.EV_KEY: [e.BTN_TOUCH],
            e.EV_ABS: [(e.ABS_X, x), (e.ABS_Y, y), (e.ABS_MT_SLOT, AbsInfo(0, 0, MAX_TOUCH_ID, 0, 0, 0)),
                       (e.ABS_MT_POSITION_X, x), (e.ABS_MT_POSITION_Y, y),
                       (e.ABS_MT_TRACKING_ID, AbsInfo(0, 0, TRACKING_IDS - 1, 0, 0, 0))],
        }
        try:
            self._device = evdev.UInput(capabilities, name=self.NAME, bustype=e.BUS_I2C,
                                        input_props=[e.INPUT_PROP_DIRECT])
        except (OSError, evdev.UInputError) as exc:
            raise TouchSetupError(f"cannot make the touchscreen device: {exc} (is the uinput module loaded?)") from None

    def write(self, events: Sequence[Event]) -> None:
        for kind, code, value in events:
            self._device.write(kind, code, value)

    def close(self) -> None:
        self._device.close()


def poll(registers: Registers, screen: Touchscreen, geometry: Geometry, panel: Panel,
         wait: Callable[[float], bool]) -> None:
    """Read, compare and write until ``wait`` says stop; every touch is lifted on the way out.

    At the start, and whenever the panel answers again, the registers may still hold a touch from
    before (the controller keeps its last frame): readings are ignored until ``TD_STATUS`` reads no
    contact or changes from what it read first.
    """
    touches, answering, bad_frames = Touches(), True, 0
    first_status: int | None = None  # TD_STATUS as first read since the (re)start
    fresh = False  # whether the registers have changed since then
    while True:
        pause = POLL
        try:
            block = registers.read_block(FIRST_REGISTER, BLOCK)
        except OSError as exc:
            touches, events = touches.lift_all()
            screen.write(events)
            first_status, fresh, pause = None, False, RETRY
            if answering:
                log.warning("the touch panel on %s does not answer (%s); trying again every %.0f s",
                            panel, exc.strerror or exc, RETRY)
            answering = False
        else:
            if not answering:
                log.warning("the touch panel on %s answers again", panel)
                answering = True
            if not fresh:
                first_status = block[0] if first_status is None and block else first_status
                fresh = not block or not (block[0] & 0x0F and block[0] == first_status)
            if fresh:
                try:
                    touches, events = touches.step(parse(block, geometry))
                    screen.write(events)
                except FrameError as exc:
                    bad_frames += 1
                    if bad_frames in (1, 10, 100) or bad_frames % 1000 == 0:
                        log.warning("touch frame %d not understood, skipped: %s", bad_frames, exc)
        if wait(pause):
            break
    screen.write(touches.lift_all()[1])


def i2c_address(text: str) -> int:
    """A 7-bit I2C address as typed (``0x38`` or ``56``)."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0x03 <= value <= 0x77:
        raise argparse.ArgumentTypeError(f"{text!r} is not an I2C device address (0x03 to 0x77, such as 0x38)")
    return value


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m device.hardware.touchpanel", description="Poll the 7-inch "
                                "panel's touch controller over I2C and make it a touchscreen.")
    p.add_argument("--bus", type=int, help="I2C bus number (default: the panel's, from the device tree)")
    p.add_argument("--address", type=i2c_address, default=0x38, help="7-bit address (default 0x38)")
    p.add_argument("--width", type=int, default=800)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--flip-x", action="store_true", help="the panel is mounted mirrored left to right")
    p.add_argument("--flip-y", action="store_true", help="the panel is mounted mirrored top to bottom")
    p.add_argument("--swap-xy", action="store_true", help="the panel is mounted turned a quarter")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, sys_root: Path = Path("/sys"), dev: Path = Path("/dev")) -> int:
    """Find the panel, poll it until SIGTERM; 0 also when there is nothing to poll (said why).

    1 when a bus or uinput cannot be opened, 2 for a wrong command line, ``NEVER_CAME_UP`` (3) when the
    device tree's controller never appeared on its bus."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = arguments(argv)
    try:
        geometry = Geometry(args.width, args.height, args.flip_x, args.flip_y, args.swap_xy)
    except ValueError as exc:
        print(f"pollbox-touch: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        panel = Panel(args.bus, args.address) if args.bus is not None else find_panel(sys_root, stop.wait)
    except TouchSetupError as exc:
        print(f"pollbox-touch: {exc}", file=sys.stderr)
        return NEVER_CAME_UP
    if isinstance(panel, str):
        print(f"pollbox-touch: {panel}: nothing to do")
        return 0
    try:
        registers = Smbus(panel, dev)
    except TouchSetupError as exc:
        print(f"pollbox-touch: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            screen = UinputTouch(geometry)
        except TouchSetupError as exc:
            print(f"pollbox-touch: {exc}", file=sys.stderr)
            return 1
        print(f"pollbox-touch: polling the touch panel on {panel} every {POLL * 1000:.0f} ms", flush=True)
        try:
            poll(registers, screen, geometry, panel, stop.wait)
        finally:
            screen.close()
    finally:
        registers.close()
    return 0
