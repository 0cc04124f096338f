"""The zxing-cpp decoder (default): QR, Code128, DataMatrix, PDF417, Code39, EAN-13, ITF.

Chosen by ``decoder = "zxing"``. Restricting ``formats`` to what the station
expects makes it faster and avoids false reads. Text is taken in plain mode,
so the control characters of an AAMVA licence (LF, RS, CR) survive intact.
Inverted (light-on-dark) symbols are not searched for by default: documents
print dark on light, and the search costs about a fifth of the decode time.
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
        found = zxingcpp.read_barcodes(gray, formats=self._wanted, text_mode=zxingcpp.TextMode.Plain,
                                       try_rotate=self._rotate, try_downscale=self._downscale, try_invert=self._invert)
        return [ScanRead(b.text, self._names.get(b.format, str(b.format)), self.name) for b in found if b.valid]
