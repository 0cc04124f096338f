"""The gpio ballot box through the kernel's GPIO character device, timed inside the booted image.

The rig of ``tests/image/test_kernel_gpio.py``: a test copy of the amd64 image boots under QEMU, the
appliance runs ``ballot_box = "gpio"`` on rpi-lgpio over a ``gpio-sim`` chip. Each round, a script in
the guest (its clock, its python3) identifies a voter through the control socket and times:

- ``kernel_gpio_lock_open_after_identification_ms`` (p50, p99): from sending the scan to the lock
  line reading high (the decision, its journal commit, the box's arm and the line write);
- ``kernel_gpio_drop_edge_to_lock_ms`` (p50, p99): from the drop sensor line's rising edge to the
  lock line reading low (the box's debounce, set to ``DEBOUNCE`` in the guest, and its local lock);
- ``kernel_gpio_drop_edge_to_commit_ms`` (p50, p99): from the same edge to the journal's ballot count
  showing the drop (the control socket polled every millisecond).

Baseline, measured in the same run and guest: one ``status`` round trip over the control socket,
the floor under every figure above. The guest runs in software emulation here (this host's KVM
cannot run Debian's kernel), so the figures are the emulator's, many times a Pi's; and the debounce
is the guest's 1 s (see the test), which the drop figures include (subtract it for the box's own part:
about 30 ms to the lock, 120 ms to the commit, in one quick run). 5 rounds quick, 20 full; with 5
the p99 is the largest. Skipped (an empty list, the reason
printed) on a host that cannot build or boot the image or build gpio-sim.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

ROUND = r'''
import json, socket, sys, threading, time
SIM = sys.argv[1]
SOCK = "/var/lib/pollbox/station/data/control.sock"
def ask(req):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(SOCK)
    s.sendall(json.dumps(req).encode() + b"\n")
    return json.loads(s.makefile("rb").readline())
def line(n):
    with open(f"{SIM}/sim_gpio{n}/value") as f:
        return int(f.read())
def pull(n, up):
    with open(f"{SIM}/sim_gpio{n}/pull", "w") as f:
        f.write("pull-up" if up else "pull-down")
def until(cond, limit=60.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return time.monotonic()
        time.sleep(0.001)
    raise SystemExit("timed out")
t0 = time.monotonic(); ask({"cmd": "status"}); status_ms = (time.monotonic() - t0) * 1000
ballots = ask({"cmd": "status"})["result"]["counters"]["ballots"]
answer = {}
t0 = time.monotonic()
th = threading.Thread(target=lambda: answer.update(ask({"cmd": "scan", "text": sys.argv[2]})))
th.start()
t1 = until(lambda: line(17) == 1)
th.join()
assert answer["result"]["decision"]["outcome"] == "admitted", answer
t2 = time.monotonic(); pull(27, True)
t3 = until(lambda: line(17) == 0)
t4 = until(lambda: ask({"cmd": "status"})["result"]["counters"]["ballots"] > ballots)
pull(27, False)
until(lambda: ask({"cmd": "status"})["result"]["box"]["beam_blocked"] is False)
print(json.dumps({"open": (t1 - t0) * 1000, "lock": (t3 - t2) * 1000, "commit": (t4 - t2) * 1000,
                  "status": status_ms}))
'''


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(quick: bool) -> list[dict[str, Any]]:
    from tests.image import test_kernel_gpio as rig_module
    from tests.image.guest import boot_probed_unit, host_can_boot
    from tests.image.kernel_modules import NoModule, gpio_sim_module
    from tests.image.vm import build_image

    reason = host_can_boot()
    if reason:
        print(f"bench_kernel: skipped: {reason}")
        return []
    try:
        image = build_image("amd64")
        module = gpio_sim_module(image.with_suffix(".manifest"))
    except (AssertionError, NoModule) as exc:
        print(f"bench_kernel: skipped: {exc}")
        return []
    rounds = 5 if quick else 20
    samples: dict[str, list[float]] = {"open": [], "lock": [], "commit": [], "status": []}
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as scratch:
        unit = boot_probed_unit(Path(scratch), voters=50, extra=["-cpu", "max"])
        try:
            unit.vm.wait_until_ready()
            rig = rig_module.switch_to_gpio(unit.guest, module)
            unit.guest.control({"cmd": "open"})
            unit.guest.push(ROUND.encode(), f"{rig_module.TEST_DIR}/round.py")
            sim = json.loads(unit.guest.check("cat /run/pollbox-gpiosim.json"))["dir"]
            for _ in range(rounds):
                said = unit.guest.check(f"python3 {rig_module.TEST_DIR}/round.py {sim} {next(rig.voters)}",
                                        timeout=300)
                for key, value in json.loads(said).items():
                    samples[key].append(value)
        finally:
            unit.stop()
    base = statistics.median(samples["status"])
    out: list[dict[str, Any]] = []
    for key, name in (("open", "lock_open_after_identification"), ("lock", "drop_edge_to_lock"),
                      ("commit", "drop_edge_to_commit")):
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            value = _percentile(samples[key], q)
            out.append({"name": f"kernel_gpio_{name}_{label}_ms_tcg", "value": round(value, 1), "unit": "ms",
                        "baseline": round(base, 1), "ratio": round(value / base, 2) if base else 0.0})
    return out
