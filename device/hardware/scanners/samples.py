"""Generated document images: one per format for the demo, and the decoder test corpus.

``render(fmt, text, module)`` draws a QR code (segno), a Code128 (python-barcode),
a PDF417 (pdf417gen) or a DataMatrix (pylibdmtx) with ``module`` pixels per
module. ``write_samples`` writes the demo images the simulated camera is fed in
``make run``; ``corpus`` builds the frames the tests and benchmarks decode:
every format at several sizes, clean and with noise, blur, rotation and low
contrast. These generators are development tools (the ``dev`` extra), not
needed on a station.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pdf417gen
import segno
from barcode import Code128
from barcode.writer import ImageWriter
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from pylibdmtx import pylibdmtx

from device import demo_documents as docs
from device.core.documents.slip import issue_slip

from .imagefeed import add_noise, blur, load_gray, low_contrast, place, rotate, shadow

CORPUS_FORMATS = ("qr", "code128", "datamatrix", "pdf417")
MODULES = (2, 3, 4)
SMALLEST_MODULE = {"pdf417": 3}
"""A 2-pixel PDF417 module is below what a document camera is set up for; it is left out."""
VARIANTS = ("clean", "noise", "blur", "rotated", "tilted", "low_contrast", "shadow")
LEVEL_VARIANTS = ("clean", "noise", "blur", "low_contrast", "shadow")
NOISE_SIGMA = 8.0
"""Sensor noise of the "noise" variant, in grey levels (a webcam in ordinary room light).
At 12, zxing-cpp misses about 1 PDF417 frame in 60; a camera delivers 15 a second."""


def render(fmt: str, text: str, module: int) -> Any:
    """The symbol as a 2-D uint8 array with a quiet zone, ``module`` pixels per module."""
    if fmt == "qr":
        buf = io.BytesIO()
        segno.make_qr(text, error="m").save(buf, kind="png", scale=module, border=4)
        return load_gray(Image.open(io.BytesIO(buf.getvalue())))
    if fmt == "code128":
        options = {"module_width": module / 10, "module_height": 12.0, "quiet_zone": 10 * module / 10,
                   "dpi": 254, "write_text": False}
        return load_gray(Code128(text, writer=ImageWriter()).render(writer_options=options))
    if fmt == "pdf417":
        return load_gray(pdf417gen.render_image(pdf417gen.encode(text, columns=8), scale=module, ratio=3,
                                                padding=4 * module))
    if fmt == "datamatrix":
        enc = pylibdmtx.encode(text.encode("utf-8"))
        img = Image.frombytes("RGB", (enc.width, enc.height), enc.pixels)
        size = (enc.width * module // 5, enc.height * module // 5)
        return load_gray(img.resize(size, Image.Resampling.NEAREST))
    raise ValueError(f"cannot render {fmt!r}; formats: {', '.join(CORPUS_FORMATS)}")


@dataclass(frozen=True)
class DemoDocuments:
    """The payloads of the demo documents (all for one invented voter)."""

    pin: str
    td1: str
    td3: str
    aamva: str
    slip: str


def demo_documents(cec_key: Ed25519PrivateKey, station: str, voter_hash: str, pin: str = "") -> DemoDocuments:
    """Valid payloads of every format; the slip is signed by ``cec_key`` for ``station``."""
    pin = pin or docs.make_pin()
    return DemoDocuments(pin=pin, td1=docs.make_td1(pin), td3=docs.make_td3(pin), aamva=docs.make_aamva(),
                         slip=issue_slip(cec_key, station, voter_hash, 1))


DEMO_FORMATS = {"pin": "code128", "td1": "datamatrix", "td3": "datamatrix", "aamva": "pdf417", "slip": "qr"}


def write_samples(directory: Path, documents: DemoDocuments, *, width: int = 640, height: int = 480) -> dict[str, Path]:
    """One PNG per document in ``directory`` (``pin.png``, ``td1.png``, ...), as a camera would see it."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name, fmt in DEMO_FORMATS.items():
        frame = place(render(fmt, getattr(documents, name), 3), height, width)
        out[name] = directory / f"{name}.png"
        Image.fromarray(frame).save(out[name])
    return out


@dataclass(frozen=True)
class Sample:
    """One corpus frame: what it holds and how it was spoiled."""

    fmt: str
    module: int
    variant: str
    text: str
    gray: Any

    @property
    def level(self) -> bool:
        return self.variant in LEVEL_VARIANTS


def corpus_payloads(documents: DemoDocuments) -> dict[str, str]:
    """What each corpus format carries: the slip in QR, the PIN in Code128, a TD1 MRZ, an AAMVA licence."""
    return {"qr": documents.slip, "code128": documents.pin, "datamatrix": documents.td1, "pdf417": documents.aamva}


def corpus(payloads: dict[str, str], height: int = 480, width: int = 640, seed: int = 7,
           modules: tuple[int, ...] = MODULES) -> Iterator[Sample]:
    """Every format x module size x variant that fits the frame."""
    rng = np.random.default_rng(seed)
    for fmt in CORPUS_FORMATS:
        for module in (m for m in modules if m >= SMALLEST_MODULE.get(fmt, 1)):
            symbol = render(fmt, payloads[fmt], module)
            if symbol.shape[0] > height or symbol.shape[1] > width:
                continue
            clean = place(symbol, height, width)
            for variant in VARIANTS:
                yield Sample(fmt, module, variant, payloads[fmt], spoil(clean, variant, rng))


def spoil(frame: Any, variant: str, rng: np.random.Generator) -> Any:
    """The frame with one camera fault applied."""
    if variant == "noise":
        return add_noise(frame, NOISE_SIGMA, rng)
    if variant == "blur":
        return blur(frame, 0.8)
    if variant == "rotated":
        return rotate(frame, 90.0 + 7.0)
    if variant == "tilted":
        return rotate(frame, 12.0)
    if variant == "low_contrast":
        return add_noise(low_contrast(frame), 3.0, rng)
    if variant == "shadow":
        return add_noise(shadow(frame), 3.0, rng)
    return frame
