"""Inside the test guest: the kernel's gpio-sim laid out as a Raspberry Pi header, driven from the kernel side.

This file exists only in tests. ``test_kernel_gpio.py`` pushes it into a booted test copy of the
image and runs it with the guest's ``/usr/bin/python3`` (standard library only), one command a call,
answering JSON on stdout:

- ``setup [MODULE.ko]``: load gpio-sim (``modprobe``, else ``insmod`` of the given module file), create one chip of 28 lines named ``GPIO0``..``GPIO27`` (a line's offset
  is its BCM number, as on the Pi's own chip) through configfs -> ``{"chip": "gpiochipN", "dir": ...}``;
- ``pull LINE up|down ...``: set the simulated pull of lines, i.e. what the outside world drives onto
  an input (each change is a real edge for the process holding the line);
- ``glitch LINE LEVEL COUNT``: COUNT pulses to LEVEL and back, each as short as two sysfs writes
  (microseconds; far below the appliance's debounce time) -> the pulses' widths;
- ``pulse LINE LEVEL SECONDS``: one pulse held SECONDS -> its measured width;
- ``values LINE ...``: the line levels as the kernel sees them (an output: what the process drives);
- ``watch LINE SECONDS``: sample a line every millisecond -> its level changes with times;
- ``until LINE LEVEL SECONDS``: wait until the line reads LEVEL -> the seconds it took (or null).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIGFS = Path("/sys/kernel/config")
NAME = "pollbox-pi-header"
LINES = 28
STATE = Path("/run/pollbox-gpiosim.json")
SAMPLE = 0.001
"""How often ``watch`` and ``until`` read a line (seconds)."""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as out:
        out.write(text)


def setup(module: str = "") -> dict[str, Any]:
    if STATE.exists():
        return dict(json.loads(STATE.read_text()))
    subprocess.run(["modprobe", "configfs"], check=False, capture_output=True)
    if subprocess.run(["modprobe", "gpio-sim"], capture_output=True).returncode != 0:
        if not module:
            raise SystemExit("the kernel has no gpio-sim module and none was given")
        subprocess.run(["insmod", module], check=True, capture_output=True)
    if not (CONFIGFS / "gpio-sim").is_dir():
        subprocess.run(["mount", "-t", "configfs", "configfs", str(CONFIGFS)], check=True, capture_output=True)
    device = CONFIGFS / "gpio-sim" / NAME
    bank = device / "bank0"
    device.mkdir()
    bank.mkdir()
    _write(bank / "num_lines", str(LINES))
    _write(bank / "label", "pollbox-pi-header")
    for line in range(LINES):
        (bank / f"line{line}").mkdir()
        _write(bank / f"line{line}" / "name", f"GPIO{line}")
    _write(device / "live", "1")
    chip = (bank / "chip_name").read_text().strip()
    sysfs = Path("/sys/devices/platform") / (device / "dev_name").read_text().strip() / chip
    state = {"chip": chip, "number": int(chip.removeprefix("gpiochip")), "dir": str(sysfs)}
    STATE.write_text(json.dumps(state))
    return state


def _line(n: int) -> Path:
    return Path(json.loads(STATE.read_text())["dir"]) / f"sim_gpio{n}"


def _set(n: int, level: int) -> None:
    _write(_line(n) / "pull", "pull-up" if level else "pull-down")


def _get(n: int) -> int:
    return int((_line(n) / "value").read_text().strip())


def main(args: list[str]) -> Any:
    command, rest = args[0], args[1:]
    if command == "setup":
        return setup(*rest)
    if command == "pull":
        for line, pull in zip(rest[::2], rest[1::2], strict=True):
            _set(int(line), 1 if pull == "up" else 0)
        return {}
    if command == "glitch":
        n, level, count = int(rest[0]), int(rest[1]), int(rest[2])
        widths = []
        for _ in range(count):
            start = time.monotonic()
            _set(n, level)
            _set(n, 1 - level)
            widths.append(time.monotonic() - start)
        return {"widths": widths}
    if command == "pulse":
        n, level, hold = int(rest[0]), int(rest[1]), float(rest[2])
        start = time.monotonic()
        _set(n, level)
        time.sleep(hold)
        _set(n, 1 - level)
        return {"width": time.monotonic() - start}
    if command == "values":
        return {line: _get(int(line)) for line in rest}
    if command == "watch":
        n, seconds = int(rest[0]), float(rest[1])
        start = time.monotonic()
        last = _get(n)
        changes: list[list[float]] = [[0.0, last]]
        while time.monotonic() - start < seconds:
            level = _get(n)
            if level != last:
                changes.append([time.monotonic() - start, level])
                last = level
            time.sleep(SAMPLE)
        return {"changes": changes}
    if command == "until":
        n, want, seconds = int(rest[0]), int(rest[1]), float(rest[2])
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if _get(n) == want:
                return {"after": time.monotonic() - start}
            time.sleep(SAMPLE)
        return {"after": None}
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
    sys.stdout.flush()
    os._exit(0)
