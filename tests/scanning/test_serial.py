"""Serial-mode scanners over pyserial's loop:// port: bursts, suffixes, loss and reconnection."""

from __future__ import annotations

from collections.abc import Callable

import serial

from device import demo_documents as docs
from device.hardware.interfaces import ScannerState, ScanRead
from device.hardware.scanners.serial import SerialScanner

from .fakes import FakeClock, Waits


class LosablePort:
    """A loop:// port that fails like an unplugged USB device when told to."""

    def __init__(self) -> None:
        self.port = serial.serial_for_url("loop://", timeout=0)
        self.lost = False

    @property
    def in_waiting(self) -> int:
        return int(self.port.in_waiting)

    def read(self, size: int) -> bytes:
        if self.lost:
            raise serial.SerialException("device reports readiness to read but returned no data")
        return bytes(self.port.read(size))

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def close(self) -> None:
        self.port.close()


def make_scanner(opener: Callable[[], LosablePort], clock: FakeClock,
                 waits: Waits | None = None) -> tuple[SerialScanner, list[ScanRead], list[ScannerState]]:
    reads: list[ScanRead] = []
    states: list[ScannerState] = []
    scanner = SerialScanner(port="loop://", gap=0.05, monotonic=clock.monotonic, wait=waits, opener=opener)
    scanner.attach(reads.append, states.append)
    return scanner, reads, states


def pump_quiet(scanner: SerialScanner, port: LosablePort, clock: FakeClock, times: int = 3) -> None:
    for _ in range(times):
        clock.advance(0.03)
        scanner.pump(port)


def test_lines_with_suffix_and_multiline_mrz() -> None:
    clock, port = FakeClock(), LosablePort()
    scanner, reads, states = make_scanner(lambda: port, clock)
    td3 = docs.make_td3(docs.make_pin())
    port.write(td3.replace("\n", "\r").encode() + b"\r\n")
    scanner.pump(port)
    assert states == [ScannerState.READING]
    pump_quiet(scanner, port, clock)
    port.write(b"21503198512345\r\n")
    pump_quiet(scanner, port, clock)
    assert [r.text for r in reads] == [td3.replace("\n", "\r"), "21503198512345"]
    assert states[-1] is ScannerState.CONNECTED


def test_utf8_split_across_reads() -> None:
    clock, port = FakeClock(), LosablePort()
    scanner, reads, _ = make_scanner(lambda: port, clock)
    data = "Ösküb\r".encode()
    port.write(data[:1])
    scanner.pump(port)
    port.write(data[1:])
    scanner.pump(port)
    pump_quiet(scanner, port, clock)
    assert [r.text for r in reads] == ["Ösküb"]


def test_unplug_and_replug() -> None:
    clock = FakeClock()
    ports = [LosablePort(), LosablePort()]
    opened: list[LosablePort] = []
    plan = iter([ports[0], None, None, ports[1]])

    def opener() -> LosablePort | None:
        port = next(plan, None)
        if port is not None:
            opened.append(port)
            port.write(b"21503198512345\r")
        return port

    reads: list[ScanRead] = []

    def on_read(read: ScanRead) -> None:
        reads.append(read)
        opened[-1].lost = True

    waits = Waits(clock, limit=3)
    scanner = SerialScanner(port="loop://", gap=0.05, monotonic=clock.monotonic, wait=waits, opener=opener)
    states: list[ScannerState] = []
    scanner.attach(on_read, states.append)

    def clocked_read(port: LosablePort) -> None:
        original = port.read

        def read(size: int) -> bytes:
            clock.advance(0.03)
            return original(size)
        port.read = read  # type: ignore[method-assign]
    for p in ports:
        clocked_read(p)
    scanner.run()
    assert [r.text for r in reads] == ["21503198512345", "21503198512345"]
    assert len(opened) == 2
    assert states[:3] == [ScannerState.CONNECTED, ScannerState.READING, ScannerState.CONNECTED]
    assert ScannerState.DISCONNECTED in states and states.count(ScannerState.CONNECTED) >= 3
    assert scanner.state() is ScannerState.DISCONNECTED
