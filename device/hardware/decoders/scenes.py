"""Camera scenes without a readable code, for the decoder's tests and benchmarks.

``empty_scene`` is what the camera sees most of the day: the table under
uneven light, the edge of the booth, a voter's sleeve and hand, sensor noise,
and nothing code-like. ``partly_covered`` is a code in such a scene with a
hand over part of it: code-like edges, nothing readable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SENSOR_NOISE = 3.0


def empty_scene(height: int, width: int, rng: np.random.Generator) -> Any:
    """A table, shading, the booth's edge, a sleeve and a hand; no code."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 150.0 + 50.0 * np.sin(cols / width * 2.0 + rng.uniform(0, 3)) * np.cos(rows / height * 1.5)
    frame = light + 12.0 * np.sin(cols / rng.uniform(25, 60) + rows / rng.uniform(80, 200))  # grain
    frame[:, : int(width * rng.uniform(0.05, 0.15))] = 60.0  # the booth's edge
    _ellipse(frame, rows, cols, (height * rng.uniform(0.6, 0.9), width * rng.uniform(0.4, 0.7)),
             (height * 0.35, width * 0.25), 70.0)  # a dark sleeve
    _ellipse(frame, rows, cols, (height * rng.uniform(0.3, 0.5), width * rng.uniform(0.4, 0.7)),
             (height * 0.12, width * 0.08), 175.0)  # a hand
    frame += rng.normal(0.0, SENSOR_NOISE, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def put(symbol: Any, scene: Any, top: int, left: int) -> Any:
    """``symbol`` (with its quiet zone) laid on a copy of ``scene`` at ``top``, ``left``."""
    frame = scene.copy()
    h, w = symbol.shape
    frame[top:top + h, left:left + w] = symbol
    return frame


def partly_covered(symbol: Any, scene: Any, top: int, left: int, covered: float = 0.55) -> Any:
    """``symbol`` on ``scene`` with a hand over the left ``covered`` share of it."""
    frame = put(symbol, scene, top, left)
    h, w = symbol.shape
    cut = int(w * covered)
    noise = np.random.default_rng(top * 7919 + left).normal(0.0, SENSOR_NOISE, (h, cut))
    frame[top:top + h, left:left + cut] = np.clip(175.0 + noise, 0, 255).astype(np.uint8)
    return frame


def _ellipse(frame: Any, rows: Any, cols: Any, centre: tuple[float, float],
             radii: tuple[float, float], level: float) -> None:
    inside = ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1.0
    frame[inside] = level
