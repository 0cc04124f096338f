"""The zxing-cpp decoder (default): QR, Code128, DataMatrix, PDF417, Code39, EAN-13, ITF.

Chosen by ``decoder = "zxing"``. Restricting ``formats`` to what the station
expects makes it faster and avoids false reads. Text is taken in plain mode,
so the control characters of an AAMVA licence (LF, RS, CR) survive intact.
Inverted (light-on-dark) symbols are not searched for by default: documents
print dark on light, and the search costs about a fifth of the decode time.

Each frame is read in two passes. The first binarizes with one global
threshold and does not downscale: it is the cheapest reading zxing-cpp offers
and it finds a well-lit document. Only a frame where it finds nothing gets the
second, thorough pass (local-average binarizer, downscaled copies for large
symbols), so what the station reads is never less than the thorough pass alone
would read; a frame with no document costs both passes, which the camera loop's
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


class ZxingDecoder:
    """Decodes grayscale frames with zxing-cpp, limited to the configured formats."""

    name = "zxing"

    def __init__(self, formats: Iterable[str] = DEFAULT_FORMATS, *, try_rotate: bool = True,
                 try_downscale: bool = True, try_invert: bool = False) -> None:
        self.formats = check_formats(formats, _FORMAT, self.name)
        self._names = {_FORMAT[f]: f for f in self.formats}
        self._wanted: Any = tuple(_FORMAT[f] for f in self.formats)
        self._rotate, self._downscale, self._invert = try_rotate, try_downscale, try_invert

    def decode(self, gray: Any) -> list[ScanRead]:
        found = self._read(gray, zxingcpp.Binarizer.FixedThreshold, downscale=False)
        if not found:
            found = self._read(gray, zxingcpp.Binarizer.LocalAverage, downscale=self._downscale)
        return [ScanRead(b.text, self._names.get(b.format, str(b.format)), self.name) for b in found]

    def _read(self, gray: Any, binarizer: Any, *, downscale: bool) -> list[Any]:
        found = zxingcpp.read_barcodes(gray, formats=self._wanted, text_mode=zxingcpp.TextMode.Plain,
                                       binarizer=binarizer, try_rotate=self._rotate, try_downscale=downscale,
                                       try_invert=self._invert)
        return [b for b in found if b.valid]
