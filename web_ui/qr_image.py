"""Reading a QR code from a photo, for ``verify_report`` (zxing-cpp, imported only here)."""

from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError


def read_qr_text(path: Path) -> str:
    """The text of the first QR code in the image at ``path``."""
    from .verify_report import InputProblem
    try:
        image = Image.open(path).convert("L")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputProblem(f"{path}: not a readable image ({exc})") from None
    found = [r for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    if not found:
        raise InputProblem(f"{path}: no QR code found; photograph the code straight on, filling the frame")
    return str(found[0].text)
