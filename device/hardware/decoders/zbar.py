"""The zbar decoder (pyzbar): QR, Code128, Code39, EAN-13 and ITF; not PDF417, not DataMatrix.

Chosen by ``decoder = "zbar"``. zbar has no DataMatrix reader and its PDF417
support is incomplete (it finds the symbol but returns no data), so asking
this backend for either is a configuration error, not a silent miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyzbar import pyzbar

from device.hardware.interfaces import ScanRead

from . import check_formats

_SYMBOL = {
    "qr": pyzbar.ZBarSymbol.QRCODE,
    "code128": pyzbar.ZBarSymbol.CODE128,
    "code39": pyzbar.ZBarSymbol.CODE39,
    "ean13": pyzbar.ZBarSymbol.EAN13,
    "itf": pyzbar.ZBarSymbol.I25,
}
ZBAR_DEFAULT_FORMATS = ("qr", "code128")


class ZbarDecoder:
    """Decodes grayscale frames with zbar, limited to the configured formats."""

    name = "zbar"

    def __init__(self, formats: Iterable[str] = ZBAR_DEFAULT_FORMATS) -> None:
        self.formats = check_formats(formats, _SYMBOL, self.name)
        self._symbols = [_SYMBOL[f] for f in self.formats]
        self._names = {_SYMBOL[f].name: f for f in self.formats}

    def decode(self, gray: Any) -> list[ScanRead]:
        found = pyzbar.decode(gray, symbols=self._symbols)
        return [ScanRead(_text(s.data), self._names.get(s.type, s.type.lower()), self.name) for s in found]


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
