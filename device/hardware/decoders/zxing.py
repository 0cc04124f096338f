"""The zxing-cpp decoder (default): QR, Code128, DataMatrix, PDF417, Code39, EAN-13, ITF.

Chosen by ``decoder = "zxing"``. Restricting ``formats`` to what the station
expects makes it faster and avoids false reads. Text is taken in plain mode,
so the control characters of an AAMVA licence (LF, RS, CR) survive intact.
Inverted (light-on-dark) symbols are not searched for by default: documents
print dark on light, and the search costs about a fifth of the decode time.

Each frame is read in up to three passes, cheapest first; a pass runs only
when the ones before it found nothing:

1. one global threshold, no rotation, no downscaling: the cheapest reading
   zxing-cpp offers, and it finds a well-lit document held roughly level;
2. the same, also trying the frame turned by 90 degrees, for the formats
   whose reading depends on orientation (every one but QR, whose finder
   patterns are found at any angle): a barcode held on its side;
3. the thorough pass: local-average binarizer, rotation, downscaled copies
   for large symbols.

What the station reads is therefore never less than the thorough pass alone
would read (``ZxingDecoder.thorough`` numbers that pass, for tests). A frame
with no document costs all three passes, which the camera loop's
unchanged-frame skipper keeps rare.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import zxingcpp

from device.hardware.interfaces import ScanRead

from . import DEFAULT_FORMATS, check_formats

_FORMAT = {
    "qr": zxingcpp.BarcodeFormat.QRCode,
    "code128": zxingcpp.BarcodeFormat.Code128,
    "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
    "pdf417": zxingcpp.BarcodeFormat.PDF417,
    "code39": zxingcpp.BarcodeFormat.Code39,
    "ean13": zxingcpp.BarcodeFormat.EAN13,
    "itf": zxingcpp.BarcodeFormat.ITF,
}


ROTATION_FREE = frozenset({"qr"})
"""Formats found at any angle without ``try_rotate``."""


class ZxingDecoder:
    """Decodes grayscale frames with zxing-cpp, limited to the configured formats."""

    name = "zxing"

    def __init__(self, formats: Iterable[str] = DEFAULT_FORMATS, *, try_rotate: bool = True,
                 try_downscale: bool = True, try_invert: bool = False) -> None:
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

    def decode(self, gray: Any) -> list[ScanRead]:
        for number in range(len(self._passes)):
            found = self.read_pass(gray, number)
            if found:
                break
        return [ScanRead(b.text, self._names.get(b.format, str(b.format)), self.name) for b in found]

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
