"""The appliance image: its size, a build from a warm cache, boot to ready and to the kiosk, power cuts.

- ``image_size_mb``: the amd64 image's apparent size, against the Debian system inside it without
  pollbox (the cached base system, measured on disk in the same run).
- ``image_build_warm_s``: a full image build when the Debian system is cached (pollbox's wheel and
  virtualenv, the file systems, the disk, the manifest), into a scratch folder; against copying the
  cached system, the step no build can skip. The build runs on a scratch build cache that holds the
  per-user cache's Debian system (mounted read-only) and a copy of its wheels but no finished image,
  so it really builds, and the per-user cache is left as it was.
- ``boot_to_ready_s``: power-on to systemd's "Started pollbox.service" (after ``READY=1``) on the
  first boot, which also grows the data partition and imports the station; against power-on to the
  kernel's first line on the serial console.
- ``boot_to_kiosk_s``: power-on to the first QMP screendump that shows the chair's status screen;
  against boot to ready. Left out (with the reason printed) while the kiosk draws nothing.
- ``image_arm64_size_mb``: the Raspberry Pi (arm64) image's apparent size, where one has been built
  (``build/image/arm64/``, by ``tests/image/test_arm64.py`` or ``build.sh arm64``: the bench does not
  build it, a first build takes about an hour under emulation); against the amd64 image measured
  in the same run. Its budget is 2 GB (2,000,000,000 bytes = 1907 MB here).
- ``power_cut_rounds``: power cuts at random points of a voting day driven through the screen
  (``tests.image.power_cuts``, the driver of the image tests' series: SIGKILL of QEMU or the reset line,
  while an action is in flight, just after one was acknowledged, or during a boot) that the unit
  survived (the journal verifies on the host and on the unit, every acknowledged event is there
  once, the unit boots to ready again); against the rounds planned (a series stops at its first
  failed round). The seed is printed.

The virtual machine runs under KVM where the host's KVM runs a stock Debian kernel, else in QEMU's
software emulation (``tests.image.vm.accelerator``): the boot figures say which in their name.
Skipped (an empty list, the reason printed) on a host that cannot build or boot the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KIOSK_DEADLINE = 180.0
"""How long after ready the bench looks for the kiosk's first frame before leaving that figure out."""


def entry(name: str, value: float, unit: str, baseline: float) -> dict[str, object]:
    return {"name": name, "value": round(value, 3), "unit": unit, "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 4) if baseline else 0.0}


def why_not() -> str:
    if os.geteuid() != 0:
        return "building the image needs root"
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("qemu-system-x86_64", "qemu-system-x86"),
                          ("qemu-img", "qemu-utils"), ("mkfs.vfat", "dosfstools")):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"no {tool} (Debian package {package}; make image-deps installs it)"
    return ""


def _du_mb(path: Path) -> float:
    return int(subprocess.run(["du", "-sxm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def cached_base(vm: Any) -> Path:
    """The Debian system (amd64, of the build's suite) in the per-user build cache that this recipe builds
    on (``build.sh --base-key``): another recipe's (another checkout's) is never measured or mounted."""
    base = Path(vm.image_cache()) / f"base-{vm.cache_name('amd64')}-{vm.base_key('amd64')}"
    if not base.is_dir():
        raise RuntimeError(f"no cached Debian system {base.name} in {vm.image_cache()}: the image was copied from "
                           "the cache, so nothing measures a warm build (a build with the Debian system cached)")
    return base


def _warm_build(vm: Any, scratch: Path) -> tuple[float, float]:
    """(seconds for a full build with the Debian system cached, seconds to copy that system).

    The build's cache is a scratch folder: the per-user cache's Debian system bind-mounted read-only
    under its own name (the build copies it, never writes it) and a copy of the wheels, but no finished
    image, so build.sh cannot take one from the cache and the per-user cache is not touched."""
    base = cached_base(vm)
    cache = scratch / "cache"
    mounted = cache / base.name
    mounted.mkdir(parents=True)
    name = vm.cache_name("amd64")
    subprocess.run(["cp", "-a", "--reflink=auto", str(vm.image_cache() / f"wheels-{name}"), str(cache)], check=True)
    subprocess.run(["mount", "--bind", str(base), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        env = {**os.environ, "PYTHON": sys.executable, **vm.test_image_settings(), "POLLBOX_IMAGE_CACHE": str(cache)}
        start = time.monotonic()
        done = subprocess.run(["bash", str(vm.BUILD), "amd64", str(scratch / "out")], capture_output=True, text=True,
                              env=env)
        build_s = time.monotonic() - start
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    if done.returncode != 0:
        raise RuntimeError(f"the warm build failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    if "copied from the cache" in done.stdout or sorted(cache.glob(f"base-{name}-*")) != [mounted]:
        raise RuntimeError(f"the build was not a warm one (the recipe changed meanwhile?): {done.stdout[-2000:]}")
    shutil.rmtree(cache)
    start = time.monotonic()
    subprocess.run(["cp", "-a", str(base), str(scratch / "base-copy")], check=True)
    copy_s = time.monotonic() - start
    return build_s, copy_s


def _boots(vm: Any, image: Path, scratch: Path, cuts: int) -> list[dict[str, object]]:
    from tests.image.power_cuts import VOTERS, listed_voters, power_cut_series, series_seed
    from tests.image.test_boot import LARGER_DISK
    stick, station = vm.make_stick(scratch, VOTERS)
    unit = vm.VirtualMachine(scratch, image, stick, station, disk_size=image.stat().st_size + LARGER_DISK)
    unit.start()
    try:
        kernel = vm.wait_for(lambda: "Linux version" in unit.console() and time.monotonic() - unit.started_at,
                             "the kernel's first line", vm.BOOT_DEADLINE[unit.accel])
        unit.wait_until_ready()
        ready = unit.ready_after[0]
        try:
            kiosk: float | None = unit.wait_for_screen("status", KIOSK_DEADLINE)
        except AssertionError as exc:
            print(f"bench_image: no kiosk frame, boot_to_kiosk left out: {exc}")
            kiosk = None
        seed = series_seed()
        print(f"bench_image: power-cut series of {cuts}, seed {seed}")
        rounds = power_cut_series(unit, seed, cuts, listed_voters(VOTERS),
                                  report=lambda r: print(f"bench_image: {r.line()}", flush=True))
        survived = sum(1 for r in rounds if r.survived)
    finally:
        unit.stop()
    accel = unit.accel
    results = [entry(f"image_boot_to_ready_{accel}_s", ready, "s", kernel)]
    if kiosk is not None:
        results.append(entry(f"image_boot_to_kiosk_{accel}_s", kiosk, "s", ready))
    return [*results, entry("image_power_cut_rounds", survived, "rounds", cuts)]


def run(quick: bool) -> list[dict[str, object]]:
    reason = why_not()
    if reason:
        print(f"bench_image skipped: {reason}")
        return []
    sys.path.insert(0, str(ROOT))
    from tests.image import vm
    image = vm.build_image("amd64")
    results = []
    with tempfile.TemporaryDirectory(prefix="pollbox-bench-image-") as tmp:
        scratch = Path(tmp)
        build_s, copy_s = _warm_build(vm, scratch)
        results.append(entry("image_size_mb", image.stat().st_size / 2**20, "MB", _du_mb(cached_base(vm))))
        results.append(entry("image_build_warm_s", build_s, "s", copy_s))
        pi_image = vm.IMAGE_DIR / "arm64" / "pollbox-arm64.img"
        if pi_image.exists():
            results.append(entry("image_arm64_size_mb", pi_image.stat().st_size / 2**20, "MB",
                                 image.stat().st_size / 2**20))
        else:
            print(f"bench_image: no arm64 image at {pi_image}, image_arm64_size_mb left out")
        shutil.rmtree(scratch / "out")
        shutil.rmtree(scratch / "base-copy")
        boots = scratch / "boots"
        boots.mkdir()
        from tests.image.test_boot import POWER_CUTS
        results += _boots(vm, image, boots, 1 if quick else POWER_CUTS)
    return results
