"""The keyboard-mode and the serial scanner through the kernel, timed in the booted image.

The rig of ``tests/image/test_kernel_scanners.py``: a test copy of the amd64 image boots under QEMU
with a second UART (``/dev/ttyS1`` on a host socket); the appliance runs one scanner at a time.

- ``kernel_keyboard_last_key_to_decision_ms`` (p50, p99): a TD1 MRZ (93 keys, 2 ms apart, lines ended
  by Enter) typed on a ``uinput`` keyboard in the guest; from the wall time of its last key to the
  decision's own time (``Decision.at``), both the guest's clock. It includes the scanner's burst gap
  (80 ms: a scan ends when no key has come for that long) by design.
- ``kernel_serial_payload_to_screen_ms`` (p50, p99): a TD1 MRZ written by the host into the UART's
  socket, split into 7-byte writes; from the host's last write to the chair's screen (``/api/status``,
  polled from the host) counting the voter. The same 80 ms gap is in it, and the screen's own answer.

Baselines, measured in the same run: for the keyboard, one ``status`` round trip over the control
socket in the guest; for the serial line, one ``/api/status`` round trip from the host. The guest
runs in software emulation on this host (its KVM cannot run Debian's kernel), so the figures are the
emulator's, many times a Pi's. 5 rounds quick, 15 full; with 5 the p99 is the largest. Skipped (an
empty list, the reason printed) on a host that cannot build or boot the image.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STATUS_ROUND_TRIP = r'''
import json, socket, time
s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect("/var/lib/pollbox/station/data/control.sock")
t0 = time.monotonic(); s.sendall(b'{"cmd": "status"}\n'); s.makefile("rb").readline()
print(json.dumps((time.monotonic() - t0) * 1000))
'''


SPLIT_RETRIES = 8
"""How often one round's document is sent again after an emulator stall split it (each counted and printed):
with other emulated machines and image builds on the same two cores, the test's 2 are not enough."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(name: str, samples: list[float], base: float) -> list[dict[str, Any]]:
    return [{"name": f"{name}_{label}_ms_tcg", "value": round(_percentile(samples, q), 1), "unit": "ms",
             "baseline": round(base, 1), "ratio": round(_percentile(samples, q) / base, 2) if base else 0.0}
            for q, label in ((0.5, "p50"), (0.99, "p99"))]


def _screen_counts(rig: Any) -> tuple[int, int]:
    """(voters identified, refusals of every kind) as the chair's screen shows them from outside."""
    counters = rig.unit.vm.status()
    if counters is None:
        return -1, -1
    counters = counters["counters"]
    return int(counters["identified"]), sum(int(n) for n in counters["refusals"].values())


def _until_counted(rig: Any, before: tuple[int, int], deadline: float) -> float | None:
    """The host's monotonic time (ms) at which the screen first counts another voter, asked back to back
    (each answer is the resolution); None if it counts a refusal instead (a read split by an emulator stall,
    sent again by the caller once the screen has settled)."""
    while time.monotonic() < deadline:
        identified, refused = _screen_counts(rig)
        if identified > before[0]:
            return time.monotonic() * 1000
        if refused > before[1]:
            rig.settled()
            return None
    raise AssertionError("the voter was not counted on the screen in time")


def run(quick: bool) -> list[dict[str, Any]]:
    from device.demo_documents import make_td1
    from tests.image import test_kernel_scanners as t
    from tests.image.guest import boot_probed_unit, host_can_boot
    from tests.image.vm import second_uart

    reason = host_can_boot()
    if reason:
        print(f"bench_kernel_scanners: skipped: {reason}")
        return []
    rounds = 5 if quick else 15
    keyboard: list[float] = []
    keyboard_base: list[float] = []
    serial: list[float] = []
    serial_base: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-kernel-scanners-") as scratch:
        workdir = Path(scratch)
        line_path = workdir / "ttyS1.sock"
        try:
            unit = boot_probed_unit(workdir, extra=second_uart(line_path))
        except AssertionError as exc:
            print(f"bench_kernel_scanners: skipped: {exc}")
            return []
        try:
            unit.vm.wait_until_ready()
            unit.guest.check(f"mkdir -p {t.TEST_DIR}")
            unit.guest.push(t.UINPUT, f"{t.TEST_DIR}/uinput_guest.py")
            unit.guest.push(STATUS_ROUND_TRIP.encode(), f"{t.TEST_DIR}/status_rtt.py")
            unit.guest.control({"cmd": "open"})
            rig = t.ScannerRig(unit, line_path)
            rig.plug()
            rig.use("keyboard", device=t.SCANNER_NAME, layout="us")
            for _ in range(rounds):
                document, typed = make_td1(pin=next(rig.voters)) + "\n", []
                decision = rig.read_document(lambda: typed.append(rig.type(document, "us")),  # noqa: B023
                                             retries=SPLIT_RETRIES)
                assert decision["outcome"] == "admitted", decision
                keyboard.append((decision["at"] - typed[-1]["last"]) * 1000)
                keyboard_base.append(json.loads(unit.guest.check(f"python3 {t.TEST_DIR}/status_rtt.py")))
            rig.use("serial", port="/dev/ttyS1", baudrate=115200)
            line = rig.serial_connect()
            try:
                for _ in range(rounds):
                    payload = (make_td1(pin=next(rig.voters)).replace("\n", "\r") + "\r\n").encode()
                    for _attempt in range(SPLIT_RETRIES + 1):
                        t0 = time.monotonic()
                        before = _screen_counts(rig)
                        serial_base.append((time.monotonic() - t0) * 1000)
                        for i in range(0, len(payload), 7):
                            line.sendall(payload[i:i + 7])
                        sent = time.monotonic() * 1000
                        counted = _until_counted(rig, before, sent / 1000 + t.DECISION_FOLLOWS)
                        if counted is not None:
                            serial.append(counted - sent)
                            break
                        rig.splits += 1
                    else:
                        raise AssertionError("the serial payload was split by emulator stalls every time")
            finally:
                line.close()
        finally:
            unit.stop()
    print(f"bench_kernel_scanners: {rig.splits} reads split by emulator stalls, sent again")
    return [*_figures("kernel_keyboard_last_key_to_decision", keyboard, statistics.median(keyboard_base)),
            *_figures("kernel_serial_payload_to_screen", serial, statistics.median(serial_base))]
