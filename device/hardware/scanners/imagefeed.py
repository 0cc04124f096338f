"""Images as camera frames: loading, placing on a frame, and the faults of a real camera.

``load_gray`` turns a file path, a PIL image or an array into the 2-D uint8
frame a decoder takes. ``place`` puts a symbol on a frame of a camera's size;
``rotate``, ``blur``, ``add_noise`` and ``low_contrast`` imitate a tilted
card, a badly focused lens, sensor noise and glare. Used by the simulated
camera, the test corpus and the benchmarks. numpy and Pillow only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

PAPER = 235


def load_gray(image: str | Path | Image.Image | Any) -> Any:
    """A 2-D uint8 array from a path, a PIL image, or an array (grey or RGB)."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    array = np.asarray(image)
    if array.ndim == 3:
        array = (array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    if array.ndim != 2:
        raise ValueError(f"an image must be 2-D grey or 3-D colour, got shape {array.shape}")
    return np.clip(array, 0, 255).astype(np.uint8)


def place(symbol: Any, height: int, width: int, background: int = PAPER) -> Any:
    """``symbol`` centred on a ``height`` x ``width`` frame of paper colour; ValueError if it does not fit."""
    sh, sw = symbol.shape
    if sh > height or sw > width:
        raise ValueError(f"a {sw}x{sh} symbol does not fit a {width}x{height} frame")
    frame = np.full((height, width), background, dtype=np.uint8)
    top, left = (height - sh) // 2, (width - sw) // 2
    frame[top:top + sh, left:left + sw] = symbol
    return frame


def rotate(gray: Any, degrees: float, background: int = PAPER) -> Any:
    img = Image.fromarray(gray).rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=background)
    return np.asarray(img, dtype=np.uint8).copy()


def blur(gray: Any, radius: float) -> Any:
    img = Image.fromarray(gray).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(img, dtype=np.uint8).copy()


def add_noise(gray: Any, sigma: float, rng: np.random.Generator) -> Any:
    noisy = gray.astype(np.float32) + rng.normal(0.0, sigma, gray.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def shadow(gray: Any, darkest: float = 0.45) -> Any:
    """Light falling off across the frame (a hand or the booth's edge shading half the card):
    brightness falls linearly from full on the left to ``darkest`` on the right."""
    ramp = np.linspace(1.0, darkest, gray.shape[1], dtype=np.float32)
    return (gray.astype(np.float32) * ramp[None, :]).astype(np.uint8)


def low_contrast(gray: Any, low: int = 110, high: int = 190) -> Any:
    """Squeeze black..white into ``low``..``high`` (a glossy card under a lamp)."""
    scaled = low + gray.astype(np.float32) * ((high - low) / 255.0)
    return scaled.astype(np.uint8)
