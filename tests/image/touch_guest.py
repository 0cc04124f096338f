"""The 7-inch panel's touch controller, played by the kernel's ``i2c-stub``, inside a test copy of the image.

Copied into the guest by the image tests and run with the guest's own ``python3`` (the standard library
and Debian's ``python3-evdev``). ``i2c-stub`` is a chip on a bus of its own whose registers any SMBus
write sets and any read returns: the test writes the register block the panel's FT5406 would hold
for a finger on the glass, and the image's touch poller (``pollbox-touch.service``) reads it. The
register layout is written here from the controller's datasheet, apart from the poller's
``ft5x06``, so an error there shows.

    python3 touch_guest.py bus ADDRESS       load i2c-stub with a chip at ADDRESS and i2c-dev; print
                                             the stub's bus number
    python3 touch_guest.py put BUS ADDRESS X Y   a finger on the glass at (X, Y), in the panel's pixels
    python3 touch_guest.py lift BUS ADDRESS  the finger lifted
    python3 touch_guest.py tap BUS ADDRESS NAME X Y SECONDS
                                             put and lift, reading the input device called NAME:
                                             prints {"node", "direct", "down", "up", "touch_ms",
                                             "lift_ms"}: the device node, whether it is a direct
                                             touchscreen, the point the device reported, whether the
                                             lift was reported, and how long each took to show
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

I2C_SLAVE, I2C_SMBUS = 0x0703, 0x0720
WRITE, I2C_BLOCK = 0, 8
TD_STATUS = 0x02
"""The register the number of contacts is in; the first contact's six bytes follow it."""
IN_CONTACT = 2
"""The event flag of a finger staying on the glass (bits 7-6 of a contact's first register)."""


class SmbusData(ctypes.Structure):
    _fields_ = [("read_write", ctypes.c_uint8), ("command", ctypes.c_uint8), ("size", ctypes.c_uint32),
                ("data", ctypes.POINTER(ctypes.c_uint8 * 34))]


def stub_bus(address: int) -> int:
    subprocess.run(["modprobe", "i2c-stub", f"chip_addr=0x{address:02x}"], check=True)
    subprocess.run(["modprobe", "i2c-dev"], check=True)
    for adapter in sorted(Path("/sys/bus/i2c/devices").glob("i2c-*")):
        if (adapter / "name").read_text().strip() == "SMBus stub driver":
            return int(adapter.name.split("-")[1])
    raise SystemExit("i2c-stub is loaded but its bus is not in /sys/bus/i2c/devices")


def write_registers(bus: int, address: int, data: bytes) -> None:
    """``data`` into the chip's registers from TD_STATUS on, in one I2C-block write (one bus transaction)."""
    fd = os.open(f"/dev/i2c-{bus}", os.O_RDWR)
    try:
        fcntl.ioctl(fd, I2C_SLAVE, address)
        buffer = (ctypes.c_uint8 * 34)(len(data), *data)
        fcntl.ioctl(fd, I2C_SMBUS, SmbusData(WRITE, TD_STATUS, I2C_BLOCK, ctypes.pointer(buffer)))
    finally:
        os.close(fd)


def finger(x: int, y: int) -> bytes:
    """One contact, touch id 0, at (x, y); the other four contacts' registers cleared."""
    return bytes([1, IN_CONTACT << 6 | x >> 8, x & 0xFF, y >> 8, y & 0xFF, 40, 0]) + bytes(24)


def no_finger() -> bytes:
    return bytes(31)


def tap(bus: int, address: int, name: str, x: int, y: int, seconds: float) -> dict[str, object]:
    import evdev
    from evdev import ecodes as e

    devices = [evdev.InputDevice(path) for path in evdev.list_devices()]
    found = [d for d in devices if d.name == name]
    if len(found) != 1:
        raise SystemExit(f"expected one input device called {name!r}, found {[d.name for d in devices]}")
    device = found[0]
    result: dict[str, object] = {"node": device.path, "direct": e.INPUT_PROP_DIRECT in device.input_props(),
                                 "down": None, "up": False}
    point = {"x": -1, "y": -1}

    def read_until(key_value: int, since: float) -> float | None:
        deadline = since + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([device.fd], [], [], max(0.0, deadline - time.monotonic()))
            for event in device.read() if ready else ():
                if event.type == e.EV_ABS and event.code in (e.ABS_MT_POSITION_X, e.ABS_MT_POSITION_Y):
                    point["x" if event.code == e.ABS_MT_POSITION_X else "y"] = event.value
                if event.type == e.EV_KEY and event.code == e.BTN_TOUCH and event.value == key_value:
                    return (time.monotonic() - since) * 1000
        return None

    start = time.monotonic()
    write_registers(bus, address, finger(x, y))
    result["touch_ms"] = read_until(1, start)
    result["down"] = [point["x"], point["y"]]
    start = time.monotonic()
    write_registers(bus, address, no_finger())
    result["lift_ms"] = read_until(0, start)
    result["up"] = result["lift_ms"] is not None
    device.close()
    return result


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "bus":
        print(stub_bus(int(args[0], 0)))
    elif command == "put":
        write_registers(int(args[0]), int(args[1], 0), finger(int(args[2]), int(args[3])))
    elif command == "lift":
        write_registers(int(args[0]), int(args[1], 0), no_finger())
    elif command == "tap":
        print(json.dumps(tap(int(args[0]), int(args[1], 0), args[2], int(args[3]), int(args[4]), float(args[5]))))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
