"""The camera through V4L2 in the booted image, timed: frame to decision, and the idle loop's CPU.

The rig of ``tests/image/test_kernel_camera.py``: a test copy of the amd64 image boots under QEMU,
vivid's HDMI output is looped into its capture, and the appliance's real OpenCV V4L2 source reads the
capture (``scanner = "camera"``), at 640x480 and then at 1280x720 (both at vivid's 60 frames a second
timings; the appliance restarted between the two). A helper in the guest (``v4l2_guest.py``) streams
frames into vivid's output, 5 a second.

- ``kernel_camera_<size>_frame_to_decision_ms`` (p50, p99): a personal number in Code 128, one voter a
  round; from the guest's wall time at which the helper queued the first frame showing it to the
  decision's own time (``Decision.at``; for a read of it again, the first read's), both the guest's
  clock. Baseline: the appliance's decoder alone on the same frame, in the guest, with the appliance's
  interpreter (the median of 3 decodes a round), the floor under the figure.
- ``kernel_camera_<size>_idle_cpu_<scene>_percent`` (of one core): pollbox.service's main process's CPU
  time (user and system, every thread; ``/proc/PID/stat``) over ``WINDOW`` seconds while the camera sees
  an empty sheet of paper (``blank``: unchanged frames, skipped) or a scene without a code changing 5
  times a second (``moving``: ``decoders.scenes.empty_scene``, every change and the frames settling after
  it decoded). Baseline: the same process's CPU over the same window, in the same boot, before the camera
  was switched on (the simulated scanner: ticks, the screen, the watchdog).

The guest runs in software emulation on this host (its KVM cannot run Debian's kernel), so the figures
are the emulator's, many times a Pi's. 5 rounds a size quick, 10 full; with so few the p99 is the largest.
Skipped (an empty list, the reason printed) on a host that cannot build or boot the image.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

WINDOW = 20.0
"""Seconds of the appliance's CPU time in one idle figure."""
SETTLE = 5.0
"""Seconds the camera sees a scene before its CPU is counted (the loop past the first, changed frames)."""
SCENE_FRAMES = 8
"""Different empty scenes cycled for the moving one."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(name: str, value: float, unit: str, base: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 1), "unit": unit, "baseline": round(base, 1),
            "ratio": round(value / base, 2) if base else 0.0}


def _cpu(guest: Any, t: Any, seconds: float) -> float:
    """pollbox.service's CPU over ``seconds``, in percent of one core (the guest measures it)."""
    said = guest.check(f"{t.PYTHON} {t.TEST_DIR}/v4l2_guest.py cpu {seconds}", timeout=seconds + 120)
    return float(json.loads(said)["percent"])


def _idle(rig: Any, t: Any, name: str, frames: list[Any]) -> float:
    """The appliance's CPU while the camera sees ``frames`` in turn (after ``SETTLE``)."""
    pid = rig.show(name, *frames, seconds=SETTLE + WINDOW + 240)
    try:
        rig.streaming_since(name)
        rig.guest.check(f"sleep {SETTLE}", timeout=SETTLE + 60)
        used = _cpu(rig.guest, t, WINDOW)
    finally:
        rig.guest.run(f"kill -- -{pid}")
    _alive(rig, name)
    return used


def _alive(rig: Any, what: str) -> None:
    crash = rig.vivid_crashed()
    if crash:
        raise AssertionError(f"vivid's capture thread crashed while showing {what}:\n{crash[:1500]}")


def _latency(rig: Any, t: Any, size: str) -> tuple[float, float]:
    """One round: (frame to decision, the decoder alone on that frame), both ms."""
    from device.hardware.scanners.samples import render
    from tests.image.vm import wait_for

    name = f"bench-{size}"
    before = rig.identified()
    pid = rig.show(name, rig.frame(render("code128", next(rig.voters), 3)))
    try:
        first = rig.streaming_since(name)
        wait_for(lambda: rig.identified() > before or rig.vivid_crashed(),
                 f"the voter admitted through the camera at {size}", t.DECISION_FOLLOWS)
        _alive(rig, name)
        decided = rig.decided_at()
    finally:
        rig.guest.run(f"kill -- -{pid}")
    said = rig.guest.check(f"{t.PYTHON} {t.TEST_DIR}/v4l2_guest.py decode zxing 3 {t.TEST_DIR}/{name}.png",
                           timeout=300)
    decoded = json.loads(said)
    assert decoded["reads"], f"the decoder read nothing on the frame that admitted a voter at {size}"
    return (decided - first) * 1000, float(decoded["ms"])


def run(quick: bool) -> list[dict[str, Any]]:
    import numpy as np

    from device.hardware.decoders.scenes import empty_scene
    from device.hardware.scanners.imagefeed import PAPER
    from tests.image import test_kernel_camera as t
    from tests.image.guest import boot_probed_unit, host_can_boot

    reason = host_can_boot()
    if reason:
        print(f"bench_kernel_camera: skipped: {reason}")
        return []
    rounds = 5 if quick else 10
    out: list[dict[str, Any]] = []
    rng = np.random.default_rng(13)
    with tempfile.TemporaryDirectory(prefix="bench-kernel-camera-") as scratch:
        try:
            unit = boot_probed_unit(Path(scratch))
        except AssertionError as exc:
            print(f"bench_kernel_camera: skipped: {exc}")
            return []
        try:
            unit.vm.wait_until_ready()
            t.load_vivid(unit)
            without_camera = _cpu(unit.guest, t, WINDOW)
            rig = t.CameraRig(unit, {}, Path(scratch))
            for width, height in ((t.WIDTH, t.HEIGHT), t.HD):
                size = f"{width}x{height}"
                try:
                    rig.use(width, height)
                    if rig.status()["poll"] != "open":
                        unit.guest.control({"cmd": "open"})
                    print(f"bench_kernel_camera: {size} at {rig.rate} frames a second (vivid's DV timings)")
                    out += _size(rig, t, size, rounds, without_camera, rng, empty_scene, PAPER)
                except AssertionError as exc:  # this size gives no figures; the other's stand
                    print(f"bench_kernel_camera: {size}: no figures: {exc}")
        finally:
            unit.stop()
    return out


def _size(rig: Any, t: Any, size: str, rounds: int, without_camera: float, rng: Any, empty_scene: Any,
          paper: int) -> list[dict[str, Any]]:
    """The figures at the camera's current size."""
    import numpy as np

    assert rig.size is not None
    width, height = rig.size
    latencies, decodes = [], []
    for _ in range(rounds):
        latency, decode = _latency(rig, t, size)
        latencies.append(latency)
        decodes.append(decode)
    print(f"bench_kernel_camera: {size}: frame to decision {[round(v) for v in latencies]} ms, "
          f"the decoder alone {[round(v) for v in decodes]} ms")
    blank = _idle(rig, t, f"blank-{size}", [np.full((height, width), paper, np.uint8)])
    moving = _idle(rig, t, f"moving-{size}", [empty_scene(height, width, rng) for _ in range(SCENE_FRAMES)])
    print(f"bench_kernel_camera: {size}: CPU {blank:.1f} % blank, {moving:.1f} % moving; "
          f"{without_camera:.1f} % without the camera")
    base = statistics.median(decodes)
    rows = [_row(f"kernel_camera_{size}_frame_to_decision_{label}_ms_tcg", _percentile(latencies, q), "ms", base)
            for q, label in ((0.5, "p50"), (0.99, "p99"))]
    rows.append(_row(f"kernel_camera_{size}_idle_cpu_blank_percent_tcg", blank, "%", without_camera))
    rows.append(_row(f"kernel_camera_{size}_idle_cpu_moving_percent_tcg", moving, "%", without_camera))
    return rows
