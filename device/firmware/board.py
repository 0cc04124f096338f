"""The smart box's pins and UART on the Raspberry Pi Pico (RP2040), driven by ``BoxLogic``.

``Board`` owns the ``machine`` objects: it configures the lock output first
(driven low: locked) before anything else, reads the inputs, passes frames from
the UART to the logic, drives the outputs and sends STATUS frames. ``step``
is called by ``main.py`` about once a millisecond with a millisecond clock.

Pin map (GPx numbers of the Pico; active levels as documented in
docs/ballot-box.md): lock GP2 (high = open), beam GP3 (high = blocked,
pull-up), lid GP4 (high = open, pull-up), green GP5, red GP6, buzzer GP7,
UART0 TX GP0 / RX GP1, on-board LED GP25 (alive blink). Tests run this module
under CPython with a fake ``machine`` module.
"""

import boxproto as bp
import machine
from boxlogic import BoxLogic

PINS = {"lock": 2, "beam": 3, "lid": 4, "green": 5, "red": 6, "buzzer": 7, "tx": 0, "rx": 1, "led": 25}
UART_ID = 0
BAUDRATE = 115200


def unit_id() -> int:
    """The RP2040's 64-bit unique id (read from its flash chip) as a number; never 0 on a real chip."""
    value = 0
    for byte in machine.unique_id():
        value = (value << 8) | byte
    return value & 0xFFFFFFFFFFFFFFFF


class Board:
    """The unit's hardware around one ``BoxLogic``."""

    def __init__(self, store: object, now: int, pins: dict = PINS, baudrate: int = BAUDRATE) -> None:
        self.lock = machine.Pin(pins["lock"], machine.Pin.OUT, value=0)
        self.beam = machine.Pin(pins["beam"], machine.Pin.IN, machine.Pin.PULL_UP)
        self.lid = machine.Pin(pins["lid"], machine.Pin.IN, machine.Pin.PULL_UP)
        self.green = machine.Pin(pins["green"], machine.Pin.OUT, value=0)
        self.red = machine.Pin(pins["red"], machine.Pin.OUT, value=0)
        self.buzzer = machine.Pin(pins["buzzer"], machine.Pin.OUT, value=0)
        self.led = machine.Pin(pins["led"], machine.Pin.OUT, value=0)
        self.uart = machine.UART(UART_ID, baudrate=baudrate, tx=machine.Pin(pins["tx"]), rx=machine.Pin(pins["rx"]))
        self.logic = BoxLogic(store, now, self.beam.value() == 1, self.lid.value() == 1, unit_id())
        self.decoder = bp.FrameDecoder()
        self.seq = 0
        self.last_status = now - bp.STATUS_PERIOD_MS
        self.rejected = 0

    def step(self, now: int) -> None:
        """One pass of the main loop at ``now`` (ms)."""
        self.logic.sense(self.beam.value() == 1, self.lid.value() == 1, now)
        self._receive(now)
        self.logic.tick(now)
        self._drive(now)
        if self.logic.dirty or now - self.last_status >= bp.STATUS_PERIOD_MS:
            self._send_status(now)

    def _receive(self, now: int) -> None:
        data = self.uart.read()
        if not data:
            return
        for frame in self.decoder.feed(data):
            if not self.logic.on_frame(frame, now):
                self.rejected += 1

    def _drive(self, now: int) -> None:
        self.lock.value(1 if self.logic.slot_open else 0)
        self.green.value(1 if self.logic.green else 0)
        self.red.value(1 if self.logic.red else 0)
        self.buzzer.value(1 if self.logic.buzzer else 0)
        self.led.value((now // 500) % 2)

    def _send_status(self, now: int) -> None:
        self.uart.write(bp.encode(self.seq, bp.STATUS, self.logic.status()))
        self.seq = bp.seq_next(self.seq)
        self.last_status = now
