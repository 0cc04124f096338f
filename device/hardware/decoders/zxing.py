"""The zxing-cpp decoder (default): QR, Code128, DataMatrix, PDF417, Code39, EAN-13, ITF.

Chosen by ``decoder = "zxing"``. Restricting ``formats`` to what the station
expects makes it faster and avoids false reads. Text is taken in plain mode,
so the control characters of an AAMVA licence (LF, RS, CR) survive intact.
Inverted (light-on-dark) symbols are not searched for by default: documents
print dark on light, and the search costs about a fifth of the decode time.

First a texture test (``texture.TextureGate``, pure numpy, a fifth to a
quarter of one restricted zxing-cpp call) looks for code-like edges: a frame
without any (the table, a hand, a voter in view) is answered at once, with
no zxing-cpp call at all. Otherwise the passes below read only the part of
the frame around the code-like tiles (the whole frame if they are spread
over it), in up to three passes, cheapest first; a pass runs only when the
ones before it found nothing:

1. one global threshold, no rotation, no downscaling: the cheapest reading
   zxing-cpp offers, and it finds a well-lit document held roughly level;
2. the same, also trying the frame turned by 90 degrees, for the formats
   whose reading depends on orientation (every one but QR, whose finder
   patterns are found at any angle): a barcode held on its side;
3. the thorough pass: local-average binarizer, rotation, downscaled copies
   for large symbols.

What the station reads is never less than the thorough pass alone would read
on the whole frame (``ZxingDecoder.thorough`` numbers that pass, for tests,
which prove it on the generated corpus, on codes placed anywhere in a busy
scene and on partly covered codes). A frame that is code-like but holds no
readable code (a code half covered by a thumb, printed text) costs all three
passes over its code-like part. ``gate=None`` turns the texture test off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import zxingcpp

from device.hardware.interfaces import ScanRead

from . import DEFAULT_FORMATS, check_formats
from .texture import TextureGate

_FORMAT = {
    "qr": zxingcpp.BarcodeFormat.QRCode,
    "code128": zxingcpp.BarcodeFormat.Code128,
    "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
    "pdf417": zxingcpp.BarcodeFormat.PDF417,
    "code39": zxingcpp.BarcodeFormat.Code39,
    "ean13": zxingcpp.BarcodeFormat.EAN13,
    "itf": zxingcpp.BarcodeFormat.ITF,
}


DEFAULT_GATE = TextureGate()
"""The texture test every station decoder runs first (frozen, so shared)."""

ROTATION_FREE = frozenset({"qr"})
"""Formats found at any angle without ``try_rotate``."""


class ZxingDecoder:
    """Decodes grayscale frames with zxing-cpp, limited to the configured formats."""

    name = "zxing"

    def __init__(self, formats: Iterable[str] = DEFAULT_FORMATS, *, try_rotate: bool = True,
                 try_downscale: bool = True, try_invert: bool = False,
                 gate: TextureGate | None = DEFAULT_GATE) -> None:
        self.formats = check_formats(formats, _FORMAT, self.name)
        self._names = {_FORMAT[f]: f for f in self.formats}
        wanted = tuple(_FORMAT[f] for f in self.formats)
        turned = tuple(_FORMAT[f] for f in self.formats if f not in ROTATION_FREE)
        fixed = zxingcpp.Binarizer.FixedThreshold
        passes: list[tuple[Any, Any, bool, bool]] = [(wanted, fixed, False, False)]
        if try_rotate and turned:
            passes.append((turned, fixed, True, False))
        passes.append((wanted, zxingcpp.Binarizer.LocalAverage, try_rotate, try_downscale))
        self._passes = passes
        self._invert = try_invert
        self.gate = gate

    def decode(self, gray: Any) -> list[ScanRead]:
        part = self.code_like_part(gray)
        found: list[Any] = []
        if part is None:
            return []
        for number in range(len(self._passes)):
            found = self.read_pass(part, number)
            if found:
                break
        return [ScanRead(b.text, self._names.get(b.format, str(b.format)), self.name) for b in found]

    def code_like_part(self, gray: Any) -> Any | None:
        """The part of ``gray`` worth decoding: None when nothing in it looks like a code."""
        region = self.gate.region(gray) if self.gate is not None else None
        if self.gate is None or (region is not None and region.covers(*gray.shape[:2])):
            return gray
        return None if region is None else region.crop(gray)

    @property
    def thorough(self) -> int:
        """The number of the last, thorough pass (see the module docstring)."""
        return len(self._passes) - 1

    def read_pass(self, gray: Any, number: int) -> list[Any]:
        """The valid symbols that pass ``number`` alone finds in ``gray``."""
        formats, binarizer, rotate, downscale = self._passes[number]
        found = zxingcpp.read_barcodes(gray, formats=formats, text_mode=zxingcpp.TextMode.Plain,
                                       binarizer=binarizer, try_rotate=rotate, try_downscale=downscale,
                                       try_invert=self._invert)
        return [b for b in found if b.valid]
