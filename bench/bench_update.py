"""Signed A/B updates on the booted amd64 image: how long an install takes, and how long a rollback.

One test copy of the image (built with the tests' update CA as RAUC's keyring), booted with the
bundles' disk, as ``tests/image/test_update.py`` boots it (its ``UpdateUnit`` and ``make_bundles``
are reused here); every step goes through ``pollbox update`` as the appliance's user, RAUC and
systemd-boot's boot counting are the image's own. In one run, in order:

- ``update_install_s``: ``pollbox update`` of the good bundle, run as the appliance's user (RAUC
  checks the signature, then writes the root image into the inactive slot B and records its hash);
  seconds until the command returns. Baseline, in the same guest just before: ``dd`` of as many
  zero bytes as the slot's root image holds into slot B (``conv=fsync``, after dropping the page
  cache; timed from here like the install, so both include the test agent's round trip, well under a
  second). That is the honest floor: whatever an install does besides, it has to write every byte
  of the new root into the slot, and the slot is what it writes; reading the bundle is not a floor,
  because the bundle is squashfs-compressed (lz4) and so smaller than what is written. The time to
  read the bundle once after dropping caches is given in the detail (``bundle_read_s``), with the
  sizes.
- ``update_trial_to_kept_s`` (full run only): from ``systemctl reboot`` after that install until the
  trial of slot B is kept (the appliance ready and systemd-bless-boot's entry renamed to
  ``pollbox-b.conf``). Baseline: a plain restart of the same unit on the same slot to the chair's
  screen answering (``restart_to_ready_s``), measured right after.
- ``update_rollback_s`` (full run only): a bundle whose appliance never becomes ready is installed
  into slot A; from ``systemctl reboot`` into its trial until the unit, restarted by the trial
  timeout, runs slot B again with the chair's screen answering. Baseline: the same plain restart to
  ready. This bundle's own root shortens the trial timeout to ``TRIAL_TIMEOUT`` (150 s, counted from
  the trial boot's start, ``OnBootSec``) instead of the image's 10 minutes, so the figure is with
  that timeout: with the default, add the difference (450 s). The detail splits the figure: from
  the restart to the trial boot's kernel start (``restart_to_trial_kernel_s``: when the trial's agent
  first answers, less the trial's uptime then), the timeout itself (``trial_timeout_s``, counted from
  that start), and from the timeout to the chair's screen answering on slot B
  (``timeout_to_ready_on_old_slot_s``: the trial's shutdown, the firmware, slot B's boot to ready).
  The install of this bundle is in the detail too (``install_never_ready_s``).

The virtual machine runs under KVM where the host's KVM runs a stock Debian kernel, else in QEMU's
software emulation (``tests.image.vm.accelerator``): every figure says which in its detail. The first
boot also waits for the unit to hash slot A (RAUC needs the slot known before an install), which takes
several minutes under emulation and is not a figure here. ``quick`` measures only the install and its
floor. Skipped (an empty list, the reason printed) on a host that cannot build or boot the image.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_image import entry
from tests.image.guest import host_can_boot
from tests.image.test_update import (
    INSTALL_DEADLINE,
    TRIAL_TIMEOUT,
    UpdateUnit,
)
from tests.image.vm import BOOT_DEADLINE, IMAGE_DIR, wait_for

BENCH_IMAGE_DIR = IMAGE_DIR / "update-bench"
"""The bench's own build of the update image (the tests build theirs into ``update-test``, maybe meanwhile)."""
SLOT_B = "/dev/disk/by-partlabel/root-b"
SLOT_A = "/dev/disk/by-partlabel/root"
"""Slot A as flashed (its partition is named ``root``); the bundles are made from it, so its size is theirs."""
BLESS_DEADLINE = 300.0
"""Seconds after the appliance is ready that systemd-bless-boot may take to keep the trial slot."""
DROP_CACHES = "sync && echo 3 > /proc/sys/vm/drop_caches"


def _timed(unit: UpdateUnit, cmd: str, timeout: float) -> float:
    """Seconds a guest command takes, timed here as the install is (with the agent's round trip, well
    under a second beside these figures)."""
    start = time.monotonic()
    unit.guest.check(cmd, timeout=timeout)
    return time.monotonic() - start


def _seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def _install(unit: UpdateUnit, name: str, slot: str) -> float:
    start = time.monotonic()
    rc, said = unit.update(name)
    took = time.monotonic() - start
    if rc != 0 or f"installed into slot {slot}" not in said:
        raise RuntimeError(f"installing {name} failed ({rc}): {said}")
    return took


def _measure(unit: UpdateUnit, quick: bool) -> list[dict[str, Any]]:
    accel = unit.vm.accel
    deadline = BOOT_DEADLINE[accel]
    slot_bytes = int(unit.guest.check(f"blockdev --getsize64 {SLOT_A}").strip())
    bundle = "/run/updates/good.raucb"
    bundle_bytes = int(unit.guest.check(f"stat -c %s {bundle}").strip())
    unit.guest.check(DROP_CACHES)
    read_s = _timed(unit, f"cat {bundle} > /dev/null", timeout=INSTALL_DEADLINE)
    unit.guest.check(DROP_CACHES)
    mib = slot_bytes // (1 << 20)
    floor_s = _timed(unit, f"dd if=/dev/zero of={SLOT_B} bs=1M count={mib} conv=fsync status=none",
                     timeout=INSTALL_DEADLINE)
    unit.guest.check(DROP_CACHES)
    install_s = _install(unit, "good", "B")
    print(f"   install {install_s:.1f} s, dd floor {floor_s:.1f} s, bundle read {read_s:.1f} s", flush=True)
    results = [entry("update_install_s", install_s, "s", floor_s) | {"detail": {
        "accel": accel, "slot_mb": round(slot_bytes / 1e6, 1), "bundle_mb": round(bundle_bytes / 1e6, 1),
        "bundle_read_s": round(read_s, 1)}}]
    if quick:
        return results

    start = time.monotonic()
    unit.restart_into("B", ready=True, deadline=deadline)
    wait_for(lambda: "pollbox-b.conf" in unit.entries() or None, "slot B's trial kept", BLESS_DEADLINE)
    kept_s = time.monotonic() - start
    if unit.slot_state("B") != "good":
        raise RuntimeError(f"slot B is {unit.slot_state('B')!r} after its trial")
    restart_s = unit.restart_into("B", ready=True, deadline=deadline)
    print(f"   trial to kept {kept_s:.1f} s, plain restart to ready {restart_s:.1f} s", flush=True)
    results.append(entry("update_trial_to_kept_s", kept_s, "s", restart_s) | {"detail": {
        "accel": accel, "baseline": "plain restart to ready, same unit and slot"}})

    never_ready_install_s = _install(unit, "never-ready", "A")
    rollback_deadline = deadline * 2 + 600
    start = time.monotonic()
    to_trial_s = unit.restart_into("A", ready=False, deadline=rollback_deadline)
    trial_uptime_s = float(unit.guest.check("cat /proc/uptime").split()[0])  # the timeout counts from its start
    unit.wait_for_boot("B", unit.boot_id, rollback_deadline)
    wait_for(lambda: unit.vm.status(), "the chair's screen answering on slot B", deadline)
    rollback_s = time.monotonic() - start
    if unit.slot_state("A") != "bad":
        raise RuntimeError(f"slot A is {unit.slot_state('A')!r} after the rollback")
    timeout_s = _seconds(TRIAL_TIMEOUT)
    to_trial_kernel_s = to_trial_s - trial_uptime_s
    after_timeout_s = rollback_s - to_trial_kernel_s - timeout_s
    print(f"   rollback {rollback_s:.1f} s: restart to the trial's kernel {to_trial_kernel_s:.1f} s, timeout "
          f"{timeout_s:.0f} s, then back on B and ready {after_timeout_s:.1f} s", flush=True)
    results.append(entry("update_rollback_s", rollback_s, "s", restart_s) | {"detail": {
        "accel": accel, "restart_to_trial_kernel_s": round(to_trial_kernel_s, 1), "trial_timeout_s": timeout_s,
        "timeout_to_ready_on_old_slot_s": round(after_timeout_s, 1),
        "install_never_ready_s": round(never_ready_install_s, 1)}})
    return results


def run(quick: bool = False) -> list[dict[str, Any]]:
    why = host_can_boot()
    if why:
        print(f"   skipped: {why}", flush=True)
        return []
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-update-") as tmp:
        unit = UpdateUnit(Path(tmp), BENCH_IMAGE_DIR)
        try:
            unit.boot()
            return _measure(unit, quick)
        finally:
            unit.stop()
