"""The touch poller's own cost: the CPU it takes while it polls the 7-inch panel 60 times a second.

``device.hardware.touchpanel.poller.poll`` runs as the unit runs it, waiting ``POLL`` between reads
on a ``threading.Event``, for a few seconds of wall time, with the I2C bus and ``/dev/uinput``
replaced by stand-ins that cost nothing (they are the kernel's, and this host has neither). Its
thread's CPU time over the wall time is the figure:

- ``touch_poller_cpu_finger_moving_percent``: a finger drawn across the glass, a new point every
  frame (every frame parsed and turned into events);
- baseline, in the same run: ``touch_poller_cpu_idle_percent``, the glass untouched (every frame
  read and parsed, no event written), which is what the poller does nearly all day.

This host's CPU, not a Pi's; the reads of the real bus (about 0.7 ms at 400 kHz for 32 bytes) are
not in it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

SECONDS = 3.0
"""Wall time of one measured run of the loop (quick: a third of it)."""


def _frame(x: int, y: int) -> bytes:
    return bytes([1, 2 << 6 | x >> 8, x & 0xFF, y >> 8, y & 0xFF, 30, 0]) + bytes(24)


def _cpu_share(moving: bool, seconds: float) -> tuple[float, int]:
    """(percent of one core, frames read) for ``seconds`` of the poll loop."""
    from device.hardware.touchpanel import ft5x06, poller

    stop, frames, cpu = threading.Event(), [0], [0.0]

    class Bus:
        def read_block(self, register: int, length: int) -> bytes:
            frames[0] += 1
            if not moving:
                return bytes(length)
            n = frames[0] % 700
            return _frame(50 + n, 50 + n // 3)

        def close(self) -> None:
            pass

    class Screen:
        def write(self, events: Any) -> None:
            pass

        def close(self) -> None:
            pass

    def loop() -> None:
        start = time.thread_time()
        poller.poll(Bus(), Screen(), ft5x06.Geometry(), poller.Panel(1, 0x38), stop.wait)
        cpu[0] = time.thread_time() - start

    thread = threading.Thread(target=loop)
    wall = time.perf_counter()
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    return 100 * cpu[0] / (time.perf_counter() - wall), frames[0]


def run(quick: bool) -> list[dict[str, Any]]:
    seconds = SECONDS / 3 if quick else SECONDS
    idle, idle_frames = _cpu_share(False, seconds)
    moving, moving_frames = _cpu_share(True, seconds)
    return [{"name": "touch_poller_cpu_finger_moving_percent", "value": round(moving, 3), "unit": "%",
             "baseline": round(idle, 3), "ratio": round(moving / idle, 2) if idle else 0.0,
             "detail": {"frames_per_second": round(moving_frames / seconds, 1),
                        "idle_frames_per_second": round(idle_frames / seconds, 1)}}]
