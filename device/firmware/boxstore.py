"""The smart box's persistent counters: boot number and drop count, in one small file.

The file is replaced atomically (written to ``<path>.tmp``, then renamed over
``<path>``; littlefs on the RP2040 and POSIX both make the rename atomic), so
a reset or power cut leaves either the old or the new counters, never half a
file. A CRC-16 guards against a damaged file; a damaged or missing file reads
as (0, 0) and ``fresh`` says so (the Pi then sees the counter go backwards and
records it).

Common subset of CPython and MicroPython. Wiring: ``main.py`` builds one
``CounterStore`` on the Pico's flash; tests build one in a temporary directory.
"""

import os

from boxproto import crc16

MAGIC = "pollbox-box-1"


class CounterStore:
    """Loads and saves (boot, drops)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fresh = False
        self.writes = 0

    def load(self) -> tuple:
        """(boot, drops) as last saved, or (0, 0) when there is no valid file."""
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            self.fresh = True
            return (0, 0)
        parsed = parse(text)
        self.fresh = parsed is None
        return parsed if parsed is not None else (0, 0)

    def save(self, boot: int, drops: int) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(render(boot, drops))
        os.rename(tmp, self.path)
        self.writes += 1


def render(boot: int, drops: int) -> str:
    body = f"{MAGIC} {boot} {drops}"
    return f"{body} {crc16(body.encode()):04x}\n"


def parse(text: str) -> "tuple | None":
    """(boot, drops) from a file's text, or None when it is damaged."""
    parts = text.strip().split(" ")
    if len(parts) != 4 or parts[0] != MAGIC:
        return None
    body = " ".join(parts[:3])
    try:
        crc = int(parts[3], 16)
        boot, drops = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if crc != crc16(body.encode()) or boot < 0 or drops < 0:
        return None
    return (boot, drops)
