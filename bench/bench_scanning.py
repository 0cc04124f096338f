"""Scanning benchmarks: decoder speed and success side by side, and the idle camera's CPU.

* ``decode <format set> <decoder> <WxH>``: mean milliseconds per frame over
  the generated corpus (``device.hardware.scanners.samples.corpus``); the
  baseline is pyzbar on the same frames in the same run, so ``ratio`` < 1
  means zxing-cpp is faster (0.1 would be 10 times faster).
* ``success ...``: share of corpus frames whose payload was read; baseline pyzbar.
* ``<kind> frames WxH: station decoder vs <other>``: mean milliseconds per
  frame of the station's default decoder (all four document formats, texture
  test first) on ``empty`` scenes (table, booth, sleeve, hand, no code),
  ``partly covered`` codes (a hand over 55% of the symbol) and ``coded``
  frames (the corpus), against, in the same run and in alternating rounds
  (best round of each): ``zxingcpp.read_barcodes`` restricted to QR and
  Code128, the same unrestricted, pyzbar (QR and Code128), and the station's
  decoder without the texture test (the one before it).
* ``camera loop CPU ... moving scene``: percent of one core at 15 fps with a
  different empty scene every frame (a voter moving in view, so nothing is
  skipped); baseline: the decoder without the texture test.
* ``idle camera CPU``: percent of one core used by the camera loop (BGR to
  grey, frame skipper, decoder) on frames of an empty, noisy scene at 15 fps,
  measured with ``time.process_time``; baseline: the same loop decoding every frame.

Run by ``bench/run.py`` (``make bench``); ``run(quick=True)`` takes well under 30 s.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.hardware.decoders.frames import FrameSkipper
from device.hardware.decoders.scenes import empty_scene, partly_covered
from device.hardware.decoders.zbar import ZbarDecoder
from device.hardware.decoders.zxing import ZxingDecoder
from device.hardware.interfaces import Decoder
from device.hardware.scanners.camera import OpenCvCamera
from device.hardware.scanners.imagefeed import add_noise
from device.hardware.scanners.pipeline import FramePipeline
from device.hardware.scanners.samples import Sample, corpus, corpus_payloads, demo_documents, render

FPS = 15
SIZES = ((640, 480), (1280, 720))


def run(quick: bool = False) -> list[dict[str, Any]]:
    docs = demo_documents(Ed25519PrivateKey.from_private_bytes(bytes(32)), "BENCH-1", "ab" * 32)
    payloads = corpus_payloads(docs)
    results: list[dict[str, Any]] = []
    for width, height in SIZES:
        samples = list(corpus(payloads, height, width))
        results += _kinds(payloads, samples, width, height, rounds=2 if quick else 5)
        results += _compare(samples, width, height, rounds=1 if quick else 3)
    results.append(_moving_cpu(seconds=3.0 if quick else 10.0))
    results.append(_idle_cpu(seconds=4.0 if quick else 20.0))
    return results


def _raw(formats: Any) -> Any:
    return lambda gray: zxingcpp.read_barcodes(gray, formats=formats)


def _kind_frames(payloads: dict[str, str], samples: list[Sample], width: int, height: int) -> dict[str, list[Any]]:
    rng = np.random.default_rng(21)
    covered = []
    for text in payloads.values():
        for module in (2, 3):
            symbol = render("qr", text, module) if len(text) < 200 else render("datamatrix", text, module)
            if symbol.shape[0] < height and symbol.shape[1] < width:
                top, left = (height - symbol.shape[0]) // 2, (width - symbol.shape[1]) // 3
                covered.append(partly_covered(symbol, empty_scene(height, width, rng), top, left))
    return {"empty": [empty_scene(height, width, rng) for _ in range(16)], "partly covered": covered,
            "coded": [s.gray for s in samples]}


def _kinds(payloads: dict[str, str], samples: list[Sample], width: int, height: int,
           rounds: int) -> list[dict[str, Any]]:
    station, before = ZxingDecoder(), ZxingDecoder(gate=None)
    others = {"zxing-cpp restricted to qr+code128": _raw((zxingcpp.BarcodeFormat.QRCode,
                                                          zxingcpp.BarcodeFormat.Code128)),
              "zxing-cpp unrestricted": _raw(()),
              "pyzbar qr+code128": ZbarDecoder(["qr", "code128"]).decode,
              "the decoder without the texture test": before.decode}
    rows = []
    for kind, frames in _kind_frames(payloads, samples, width, height).items():
        best = _best_of(dict(station=station.decode, **others), frames, rounds)
        for name in others:
            rows.append(_row(f"{kind} frames {width}x{height}: station decoder vs {name}",
                             best["station"], "ms/frame", best[name]))
    return rows


def _best_of(contenders: dict[str, Any], frames: list[Any], rounds: int) -> dict[str, float]:
    """Mean ms per frame of each contender, best of ``rounds`` alternating rounds."""
    best = {name: float("inf") for name in contenders}
    for decode in contenders.values():
        decode(frames[0])  # warm up
    for _ in range(rounds):
        for name, decode in contenders.items():
            start = time.perf_counter()
            for frame in frames:
                decode(frame)
            best[name] = min(best[name], 1000.0 * (time.perf_counter() - start) / len(frames))
    return best


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


def _moving_cpu(seconds: float) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    frames = [np.repeat(empty_scene(480, 640, rng)[:, :, None], 3, axis=2) for _ in range(24)]
    count = int(seconds * FPS)
    gated = _loop_cpu(frames, count, FrameSkipper())
    without = _loop_cpu(frames, count, FrameSkipper(), ZxingDecoder(gate=None))
    return _row("camera loop CPU 640x480 at 15 fps, moving scene, no code: texture test vs none",
                100.0 * gated / seconds, "% of one core", 100.0 * without / seconds)


def _loop_cpu(frames: list[Any], count: int, skipper: FrameSkipper | None,
              decoder: ZxingDecoder | None = None) -> float:
    camera = OpenCvCamera(_RecordedCapture(frames))
    pipeline = FramePipeline(decoder or ZxingDecoder(), "camera", skipper)
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
