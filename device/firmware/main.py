"""The smart box firmware's entry point on the Raspberry Pi Pico (runs at power-on).

Builds the ``Board`` (which locks the slot first), starts the RP2040 hardware
watchdog (a hung loop resets the chip, and a reset boots locked), then runs
the main loop: a millisecond clock built from ``time.ticks_ms`` (wrap-safe
with ``ticks_diff``), one ``Board.step`` per millisecond. The counters live in
``/counters.txt`` on the Pico's littlefs flash.

Not imported by the Pi software; copied to the Pico as ``main.py``.
"""

import time

import machine
from board import Board
from boxstore import CounterStore

COUNTER_FILE = "/counters.txt"
WATCHDOG_MS = 1000


def main() -> None:
    board = Board(CounterStore(COUNTER_FILE), 0)
    watchdog = machine.WDT(timeout=WATCHDOG_MS)
    now = 0
    last = time.ticks_ms()
    while True:
        tick = time.ticks_ms()
        now += time.ticks_diff(tick, last)
        last = tick
        board.step(now)
        watchdog.feed()
        time.sleep_ms(1)


main()
