"""Barcode decoders: grayscale frame in, ``ScanRead`` values out.

Two backends implement ``device.hardware.interfaces.Decoder``, each imported
only in its own module: ``zxing`` (zxing-cpp, the default: reads QR, Code128,
DataMatrix and PDF417, and is the faster of the two) and ``zbar`` (pyzbar;
cannot read PDF417 or DataMatrix). Each is limited to the formats the station
expects. This module names the formats and loads a backend by its config
name; it imports no decoding library itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from device.hardware.interfaces import Decoder
from protocol.errors import UserError

FORMATS: tuple[str, ...] = ("qr", "code128", "datamatrix", "pdf417", "code39", "ean13", "itf")
DEFAULT_FORMATS: tuple[str, ...] = ("qr", "code128", "datamatrix", "pdf417")
DEFAULT_DECODER = "zxing"
BACKENDS: dict[str, str] = {
    "zxing": "device.hardware.decoders.zxing:ZxingDecoder",
    "zbar": "device.hardware.decoders.zbar:ZbarDecoder",
}


class DecoderConfigError(UserError, ValueError):
    """The decoder or its formats cannot be used as configured; the message says why."""


def check_formats(formats: Iterable[str], supported: Iterable[str], backend: str) -> tuple[str, ...]:
    """The formats as a tuple, or DecoderConfigError naming those ``backend`` cannot read."""
    wanted = tuple(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise DecoderConfigError(f"unknown barcode formats {unknown}; known: {', '.join(FORMATS)}")
    missing = [f for f in wanted if f not in set(supported)]
    if missing:
        raise DecoderConfigError(f"the {backend} decoder cannot read {', '.join(missing)}; use the zxing decoder")
    if not wanted:
        raise DecoderConfigError("no barcode formats configured")
    return wanted


def load_decoder(name: str, formats: Iterable[str] = DEFAULT_FORMATS) -> Decoder:
    """The decoder backend ``name`` (``zxing`` or ``zbar``) restricted to ``formats``."""
    if name not in BACKENDS:
        raise DecoderConfigError(f"unknown decoder {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    decoder: Decoder = getattr(importlib.import_module(module), cls)(formats)
    return decoder
