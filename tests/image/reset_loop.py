"""Reset the booted amd64 unit again and again and see whether its firmware starts every time.

A diagnostic, not a test: ``python -m tests.image.reset_loop --resets 20`` boots the tests' image once
(``vm.VirtualMachine``, the rig's own command line), then pulls the reset line (QMP ``system_reset``) at
a random point of the boot or of the running unit, and waits a named time for the firmware of the next
boot to show itself (OVMF's debug console or the serial console). A machine that does not is sampled
(``vm.VirtualMachine.hang_report``: where each CPU is, several times), the report is kept, and QEMU is
started afresh; one still silent after ``SLOW_AFTER`` is sampled once as well. Before each reset the
running kernel's place in physical RAM is noted. ``--variant`` changes one thing of the command line
(``VARIANTS``) and ``--keep-ram`` turns off the rig's clearing of the firmware's RAM at each reset
(``vm.firmware_ram_loaders``), so the firmware's start can be compared between configurations. The
tally is printed per reset and written as JSON. Example, resets while the appliance runs:
``python -m tests.image.reset_loop --resets 10 --phases userland,running --out tally.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .vm import VirtualMachine, build_image, make_stick

FIRMWARE_DEADLINE = 120.0
"""Seconds from the reset to the first sign of the next boot's firmware (its debug console or the
serial console): a cold start shows it within seconds under emulation on a quiet host."""
SLOW_AFTER = 8.0
"""Seconds after a reset with no sign of the firmware at which the CPUs are looked at once (a slow
start that later ends shows where the time goes, like a hang would)."""
PHASE_DEADLINE = 900.0
"""Seconds to wait for the point of the boot a reset is aimed at (the kernel's or systemd's line)."""


def _replace(command: list[str], old: str, new: str) -> list[str]:
    assert old in command, (old, command)
    return [new if part == old else part for part in command]


def _drop_device(command: list[str], *names: str) -> list[str]:
    """``command`` without the ``-device`` (and ``-drive``) options naming any of ``names``."""
    out: list[str] = []
    skip = False
    for index, part in enumerate(command):
        if skip:
            skip = False
            continue
        if part in ("-device", "-drive") and index + 1 < len(command) and any(n in command[index + 1] for n in names):
            skip = True
            continue
        out.append(part)
    return out


VARIANTS: dict[str, Callable[[list[str]], list[str]]] = {
    "rig": lambda c: c,
    "thread-single": lambda c: _replace(c, "tcg,thread=multi", "tcg,thread=single"),
    "smp1": lambda c: _replace(c, "2", "1") if c[c.index("-smp") + 1] == "2" else c,
    "no-watchdog": lambda c: _drop_device(c, "i6300esb"),
    "vga-std": lambda c: _replace(c, "virtio", "std"),
    "no-usb": lambda c: _drop_device(c, "qemu-xhci", "usb-storage", "id=stick"),
    "cpu-named": lambda c: _replace(c, "max", "Skylake-Client-v4"),
    "smm-off": lambda c: _replace(c, "q35", "q35,smm=off"),
}
"""One change each to the rig's command line (``VirtualMachine.command``)."""

PHASES = ("firmware", "kernel", "userland", "running")
"""Where a reset is aimed: seconds into the firmware, after the kernel's first line, after systemd's
first line, or seconds after the appliance is ready."""


class LoopMachine(VirtualMachine):
    """The rig's machine with one ``VARIANTS`` change to its command line."""

    variant = "rig"

    def command(self) -> list[str]:
        return VARIANTS[self.variant](super().command())


def firmware_started(vm: VirtualMachine) -> bool:
    """Whether this boot's firmware has shown itself: a line on its debug console or the serial console."""
    return bool(vm.debug_console().strip()) or bool(vm.console().strip())


def kernel_physical(vm: VirtualMachine) -> str:
    """Where in guest RAM the running kernel's code is that a CPU executes now (QEMU's monitor turns the
    CPU's kernel address into a physical one): Linux places itself at a random physical address (KASLR),
    and the firmware of the next boot writes into RAM it left behind."""
    found: list[str] = []
    for cpu in range(vm.cpus()):
        registers = vm.monitor("info registers", cpu)
        rip = re.search(r"RIP=([0-9a-f]{16})", registers)
        if rip and rip.group(1).startswith("ffffffff"):
            said = vm.monitor(f"gva2gpa 0x{rip.group(1)}", cpu).strip()
            found.append(f"cpu{cpu} {rip.group(1)} -> {said}")
    return "; ".join(found)


def wait_phase(vm: VirtualMachine, phase: str, rng: random.Random) -> str:
    """Wait until the aimed-at point of this boot (plus a random part); what was reached."""
    end = time.monotonic() + PHASE_DEADLINE
    marks = {"firmware": None, "kernel": "Linux version", "userland": "systemd[1]", "running": "Started pollbox.service"}
    mark = marks[phase]
    while mark is not None and mark not in vm.console():
        if time.monotonic() > end:
            return f"{phase} not reached"
        if not vm.running():
            raise SystemExit(f"QEMU ended: {(vm.workdir / 'qemu.log').read_text()[-2000:]}")
        time.sleep(0.25)
    delay = rng.uniform(0, {"firmware": 12.0, "kernel": 10.0, "userland": 30.0, "running": 40.0}[phase])
    time.sleep(delay)
    return f"{phase}+{delay:.1f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="rig")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, drawn at random")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--image", type=Path, default=None, help="default: the tests' image (built if needed)")
    parser.add_argument("--out", type=Path, default=None, help="the tally (JSON); default: in the work folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--keep-ram", action="store_true",
                        help="do not clear the firmware's RAM at each reset (the rig's behaviour before)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that ``finally`` stops QEMU
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    phases = args.phases.split(",")
    image = args.image or build_image("amd64")
    workdir = Path(tempfile.mkdtemp(prefix="pollbox-reset-loop-"))
    stick, station = make_stick(workdir)
    LoopMachine.variant = args.variant
    (workdir / "vm").mkdir()
    vm = LoopMachine(workdir / "vm", image, stick, station)
    vm.clear_firmware_ram = not args.keep_ram
    tally: list[dict[str, object]] = []
    out = args.out or workdir / "reset-loop.json"
    print(f"variant {args.variant}{' (firmware RAM kept)' if args.keep_ram else ''}, seed {seed}, work folder {workdir}", flush=True)
    try:
        vm.start()
        for number in range(1, args.resets + 1):
            phase = rng.choice(phases)
            aimed = wait_phase(vm, phase, rng)
            placed = kernel_physical(vm)
            vm.reset()
            began = time.monotonic()
            hung = False
            slow_report = ""
            while not firmware_started(vm):
                if time.monotonic() - began > FIRMWARE_DEADLINE:
                    hung = True
                    break
                if not slow_report and time.monotonic() - began > SLOW_AFTER:
                    slow_report = vm.hang_report(samples=3)
                    (workdir / f"slow-{number}.txt").write_text(slow_report)
                time.sleep(0.25)
            entry: dict[str, object] = {"reset": number, "variant": args.variant, "ram_kept": args.keep_ram, "aimed": aimed, "kernel_at": placed,
                                        "firmware_after": None if hung else round(time.monotonic() - began, 1)}
            if slow_report:
                entry["slow_report"] = str(workdir / f"slow-{number}.txt")
            if hung:
                report = vm.hang_report()
                (workdir / f"hang-{number}.txt").write_text(report)
                entry["hang_report"] = str(workdir / f"hang-{number}.txt")
                print(report, flush=True)
                vm.stop()
                vm.start()
            tally.append(entry)
            out.write_text(json.dumps(tally, indent=1))
            print(f"reset {number:3d} | {aimed:22s} | {'HUNG' if hung else 'firmware after ' + str(entry['firmware_after']) + ' s'}",
                  flush=True)
    finally:
        vm.stop()
        hangs = sum(1 for e in tally if e["firmware_after"] is None)
        print(f"{args.variant}: {hangs} hung of {len(tally)} resets (tally {out})", flush=True)
        if not args.keep and not any("hang_report" in e for e in tally) and args.out is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not args.keep:  # the reports stay; the disk and the image's copy (gigabytes) go
            for big in (vm.image, vm.disk, *vm.workdir.glob("firmware-ram-*.zero")):
                big.unlink(missing_ok=True)
    return 1 if any(e["firmware_after"] is None for e in tally) else 0


if __name__ == "__main__":
    sys.exit(main())
