"""What a frame of the unit's display shows, told from its colours (a QMP screendump, any size).

The chair's screen of a simulated station (what the tests' units run) has a band of the simulation
stripes (#ffe27a and #fff3bf) across its top; the first-boot refusal screen has no stripes and is pink
(#fde6e3) with a dark red bar; a blank frame is one colour; the text console before the kiosk is
mostly black. Software rendering draws these colours exactly, so they are compared as they are. The
same classifier reads the browser tests' screenshot of the status screen (``docs/screenshots``), so
it is held to a frame known to be right.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PIL import Image

STRIPES = {(255, 226, 122), (255, 243, 191)}
REFUSAL_PINK = (253, 230, 227)
REFUSAL_RED = (163, 20, 12)


def colours(image: Image.Image) -> Counter[tuple[int, int, int]]:
    data = image.convert("RGB").tobytes()
    return Counter(zip(data[0::3], data[1::3], data[2::3], strict=True))


def classify(path: Path) -> str:
    """``status``, ``refusal``, ``blank``, ``console`` or ``other`` for the frame in ``path``."""
    with Image.open(path) as raw:
        # every second pixel of every second row: the regions told apart are large and exactly coloured
        image = raw.convert("RGB").resize((max(1, raw.width // 2), max(1, raw.height // 2)), Image.Resampling.NEAREST)
    width, height = image.size
    everything = colours(image)
    total = width * height
    top, share = everything.most_common(1)[0]
    if share > 0.98 * total:
        return "blank"
    band = colours(image.crop((0, 0, width, max(8, height // 40))))
    band_total = sum(band.values())
    if sum(band[c] for c in STRIPES) > 0.5 * band_total:
        return "status"
    if everything[REFUSAL_PINK] > 0.3 * total and everything[REFUSAL_RED] > 0.002 * total:
        return "refusal"
    if top == (0, 0, 0) and share > 0.6 * total:
        return "console"
    return "other"
