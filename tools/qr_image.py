"""Reading a QR code from a photo, for ``verify_report`` (zxing-cpp, imported only here).

It knows nothing of reports: an unusable photo is a ``QrUnreadable`` with the
sentence to print, which ``verify_report`` passes on as unusable input.
"""

from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError

from protocol.errors import UserError


class QrUnreadable(UserError):
    """The photo cannot be read, or holds no QR code; the message says what to do."""


def read_qr_text(path: Path) -> str:
    """The text of the first QR code in the image at ``path``."""
    try:
        image = Image.open(path).convert("L")
    except (UnidentifiedImageError, OSError) as exc:
        raise QrUnreadable(f"{path}: not a readable image ({exc})") from None
    found = [r for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    if not found:
        raise QrUnreadable(f"{path}: no QR code found; photograph the code straight on, filling the frame")
    return str(found[0].text)
