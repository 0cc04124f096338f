"""Scanning benchmarks: decoder speed and success side by side, and the idle camera's CPU.

* ``decode <format set> <decoder> <WxH>``: mean milliseconds per frame over
  the generated corpus (``device.hardware.scanners.samples.corpus``); the
  baseline is pyzbar on the same frames in the same run, so ``ratio`` < 1
  means zxing-cpp is faster (0.1 would be 10 times faster).
* ``success ...``: share of corpus frames whose payload was read; baseline pyzbar.
* ``idle camera CPU``: percent of one core used by the camera loop (BGR to
  grey, frame skipper, decoder) on frames of an empty, noisy scene at 15 fps,
  measured with ``time.process_time``; baseline: the same loop decoding every frame.

Run by ``bench/run.py`` (``make bench``); ``run(quick=True)`` takes well under 30 s.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.hardware.decoders.frames import FrameSkipper
from device.hardware.decoders.zbar import ZbarDecoder
from device.hardware.decoders.zxing import ZxingDecoder
from device.hardware.interfaces import Decoder
from device.hardware.scanners.camera import OpenCvCamera
from device.hardware.scanners.imagefeed import add_noise
from device.hardware.scanners.pipeline import FramePipeline
from device.hardware.scanners.samples import Sample, corpus, corpus_payloads, demo_documents

FPS = 15
SIZES = ((640, 480), (1280, 720))


def run(quick: bool = False) -> list[dict[str, Any]]:
    docs = demo_documents(Ed25519PrivateKey.from_private_bytes(bytes(32)), "BENCH-1", "ab" * 32)
    payloads = corpus_payloads(docs)
    results: list[dict[str, Any]] = []
    for width, height in SIZES:
        samples = list(corpus(payloads, height, width))
        results += _compare(samples, width, height, rounds=1 if quick else 3)
    results.append(_idle_cpu(seconds=4.0 if quick else 20.0))
    return results


def _compare(samples: list[Sample], width: int, height: int, rounds: int) -> list[dict[str, Any]]:
    linear = [s for s in samples if s.fmt in ("qr", "code128")]
    zbar = ZbarDecoder(["qr", "code128"])
    out = []
    for label, frames, zxing in (("qr+code128", linear, ZxingDecoder(["qr", "code128"])),
                                 ("all formats (station default)", samples, ZxingDecoder())):
        z_ms, z_ok, b_ms, b_ok = _side_by_side(zxing, zbar, frames, rounds)
        size = f"{width}x{height}"
        out.append(_row(f"decode {label} zxing-cpp vs pyzbar {size}", z_ms, "ms/frame", b_ms))
        out.append(_row(f"success {label} zxing-cpp vs pyzbar {size}", z_ok, "fraction", b_ok))
    return out


def _side_by_side(first: Decoder, second: Decoder, frames: list[Sample],
                  rounds: int) -> tuple[float, float, float, float]:
    """Both decoders in alternating rounds, so a busy spell on the machine hits both alike."""
    totals = [0.0, 0.0, 0.0, 0.0]
    for _ in range(rounds):
        for i, decoder in enumerate((first, second)):
            ms, ok = _decode(decoder, frames, 1)
            totals[2 * i] += ms / rounds
            totals[2 * i + 1] += ok / rounds
    return totals[0], totals[1], totals[2], totals[3]


def _decode(decoder: Decoder, frames: list[Sample], rounds: int) -> tuple[float, float]:
    decoder.decode(frames[0].gray)  # warm up
    read = 0
    start = time.perf_counter()
    for _ in range(rounds):
        read += sum(any(r.text == s.text for r in decoder.decode(s.gray)) for s in frames)
    elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / (rounds * len(frames)), read / (rounds * len(frames))


class _RecordedCapture:
    """Plays BGR frames like ``cv2.VideoCapture.read``."""

    def __init__(self, frames: list[Any]) -> None:
        self.frames, self.at = frames, 0

    def read(self) -> tuple[bool, Any]:
        frame = self.frames[self.at % len(self.frames)]
        self.at += 1
        return True, frame

    def release(self) -> None:
        pass


def _idle_cpu(seconds: float) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    scene = np.full((480, 640), 190, np.uint8)
    scene[100:380, 120:520] = 140  # a desk and a card holder, no document
    frames = [np.repeat(add_noise(scene, 3.0, rng)[:, :, None], 3, axis=2) for _ in range(16)]
    count = int(seconds * FPS)
    with_skip = _loop_cpu(frames, count, FrameSkipper())
    without = _loop_cpu(frames, count, None)
    return _row("idle camera CPU 640x480 at 15 fps, skipping vs decoding every frame",
                100.0 * with_skip / seconds, "% of one core", 100.0 * without / seconds)


def _loop_cpu(frames: list[Any], count: int, skipper: FrameSkipper | None) -> float:
    camera = OpenCvCamera(_RecordedCapture(frames))
    pipeline = FramePipeline(ZxingDecoder(), "camera", skipper)
    start = time.process_time()
    for _ in range(count):
        pipeline.process(camera.grab())
    return time.process_time() - start


def _row(name: str, value: float, unit: str, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 4), "unit": unit, "baseline": round(baseline, 4),
            "ratio": round(value / baseline, 4) if baseline else float("nan")}


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
