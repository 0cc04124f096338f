"""The keyboard-mode and the serial scanner through the kernel's input layer and a real UART, in the booted image.

A test copy of the image boots with a second serial port: QEMU's ``-serial`` on a Unix socket, the
guest's ``/dev/ttyS1`` (a 16550 UART as the kernel's ``8250`` driver sees it). The image's own
``pollbox.service`` is switched, by its config and a systemd restart, to each scanner in turn:

- ``scanner = "keyboard"``: ``uinput_guest.py`` plugs a virtual keyboard into the guest's kernel
  (``/dev/uinput``) that types documents as a scanner in keyboard mode does, a key every 2 ms, MRZ
  lines ended by Enter, in the layout it is set to. The appliance finds it by name among the evdev
  devices, grabs it (``EVIOCGRAB``) and reads it; a second reader, as the kiosk's browser would be,
  gets no key and cannot grab. Unplugging (the uinput device destroyed) and plugging it again is a
  read error and a reopen by name.
- ``scanner = "serial"``: the host writes payloads into the socket, split into small writes, with
  garbage before them and a disconnect mid-payload; the appliance reads ``/dev/ttyS1`` with pyserial
  and sets its speed (checked with ``stty`` on the guest's tty). QEMU's UART does not pace received
  bytes by the baud rate, so the speed is checked as the tty's setting, not as timing on a wire.

Admission is checked from outside the unit through the chair's screen (``/api/status``), and the
decision through the control socket. Here the grab is proven at the evdev level; that the kiosk's
own Chromium receives no keystroke is checked in ``test_kiosk.py``. ``test_kernel_quick`` runs one
check of each scanner in ``make test``; this module is the long series (``make image-test``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from device.demo_documents import make_td1, make_td3

from .guest import booted_unit
from .scanner_rig import (
    DECISION_FOLLOWS,
    SCANNER_NAME,
    SERVICE_STARTS,
    TEST_DIR,
    UINPUT,
    ScannerRig,
)
from .vm import IMAGE_TEST_TIMEOUT, second_uart, wait_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]
"""The long series; ``test_kernel_quick`` has the checks of these scanners that ``make test`` runs."""
__all__ = ["SCANNER_NAME", "SERVICE_STARTS", "TEST_DIR", "UINPUT", "ScannerRig"]
"""The rig as the kiosk's test (test_kiosk.py) and the scanners' benchmark import it from here."""


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScannerRig]:
    workdir = tmp_path_factory.mktemp("scanners")
    serial_socket = workdir / "ttyS1.sock"
    with booted_unit(workdir, extra=second_uart(serial_socket)) as unit:
        made = ScannerRig(unit, serial_socket)
        made.install()
        unit.guest.control({"cmd": "open"})
        made.plug()
        yield made


def test_the_image_carries_every_scanner_library(rig: ScannerRig) -> None:
    out = rig.guest.check("/opt/pollbox/bin/python -c 'import evdev, serial, cv2, zxingcpp, pyzbar.pyzbar, numpy, PIL;"
                          " print(evdev.__file__, cv2.__version__)'", timeout=180)
    assert out.startswith("/usr/lib/python3/dist-packages/evdev/"), out  # Debian's python3-evdev


def test_a_td1_mrz_typed_on_a_uinput_keyboard_admits_the_voter(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    document, before, typed = make_td1(pin=next(rig.voters)) + "\n", rig.identified_on_screen(), []
    decision = rig.read_document(lambda: typed.append(rig.type(document, "us")))
    assert typed[-1]["keys"] == 3 * 31
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"
    assert rig.identified_on_screen() == before + 1


def test_the_appliance_grabs_the_keyboard_and_a_second_reader_gets_nothing(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    spy = rig.spy()
    pin = next(rig.voters) + "\n"
    assert rig.read_document(lambda: rig.type(pin, "us"))["outcome"] == "admitted"
    assert rig.spied(spy) == {"grab": "Device or resource busy", "keys": 0}


def test_unplugging_and_plugging_the_keyboard_again_recovers(rig: ScannerRig) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout="us")
    rig.unplug()
    wait_for(lambda: rig.scanner_state() == "disconnected", "the scanner seen unplugged", DECISION_FOLLOWS)
    rig.plug()
    wait_for(lambda: rig.scanner_state() == "connected", "the scanner found again", DECISION_FOLLOWS)
    document = make_td3(pin=next(rig.voters)) + "\n"
    decision = rig.read_document(lambda: rig.type(document, "us"))
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']}"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["de", "fr"])
def test_a_scanner_set_to_a_german_or_french_layout_admits_the_voter(rig: ScannerRig, layout: str) -> None:
    rig.use("keyboard", device=SCANNER_NAME, layout=layout)
    document = make_td1(pin=next(rig.voters)) + "\n"
    decision = rig.read_document(lambda: rig.type(document, layout))
    assert decision["outcome"] == "admitted", f"{decision['outcome']}: {decision['reason']} ({decision})"


@pytest.mark.parametrize("baudrate", [9600, 115200])
def test_a_serial_scanner_on_a_uart_reads_split_payloads_through_garbage_and_a_disconnect(
        rig: ScannerRig, baudrate: int) -> None:
    rig.use("serial", port="/dev/ttyS1", baudrate=baudrate)
    assert rig.tty_speed() == baudrate
    before, restarts = rig.identified_on_screen(), rig.restarts()
    line = rig.serial_connect()
    try:
        seq = rig.last_seq()
        line.sendall(b"\x00\xff\xfe#!garbage")  # noise on the line: read as one unreadable scan
        decision = rig.next_decision(seq)
        assert decision["outcome"] == "invalid_document", decision
        payload = (make_td1(pin=next(rig.voters)).replace("\n", "\r") + "\r\n").encode()
        def in_pieces() -> None:  # a reader's USB or UART chunks, back to back
            for i in range(0, len(payload), 7):
                line.sendall(payload[i:i + 7])
        decision = rig.read_document(in_pieces)
        assert decision["outcome"] == "admitted", decision
        seq, cut = decision["seq"], (next(rig.voters) + "\r\n").encode()
        line.sendall(cut[:6])  # the cable pulled mid-payload
    finally:
        line.close()
    decision = rig.next_decision(seq)
    assert decision["outcome"] == "invalid_document", decision
    assert rig.scanner_state() == "connected"  # a UART stays; only its far end went
    line = rig.serial_connect()  # plugged back in: the next payload reads whole
    try:
        assert rig.read_document(lambda: line.sendall(cut))["outcome"] == "admitted"
    finally:
        line.close()
    rig.no_restart_since(restarts)
    assert rig.identified_on_screen() == before + 2
    assert rig.tty_speed() == baudrate
