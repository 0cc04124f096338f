"""A fake camera for Chromium: a QR picture as a one-frame Y4M video (``--use-file-for-fake-video-capture``).

Used by the verifier page's browser tests and its benchmark: Chromium loops the single frame, so the QR
code is in view from the moment the page starts the camera.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

FRAME = (640, 480)


def camera_frames(picture: Image.Image, path: Path) -> Path:
    """A one-frame 640x480 Y4M video (4:2:0) of ``picture`` centred on white: what the fake camera shows."""
    grey = picture.convert("L")
    scale = max(1, min((FRAME[0] - 40) // grey.width, (FRAME[1] - 40) // grey.height))
    grey = grey.resize((grey.width * scale, grey.height * scale), Image.Resampling.NEAREST)
    if grey.width > FRAME[0] or grey.height > FRAME[1]:
        grey.thumbnail((FRAME[0] - 20, FRAME[1] - 20), Image.Resampling.LANCZOS)
    frame = Image.new("L", FRAME, 255)
    frame.paste(grey, ((FRAME[0] - grey.width) // 2, (FRAME[1] - grey.height) // 2))
    chroma = bytes([128]) * (FRAME[0] * FRAME[1] // 2)
    header = f"YUV4MPEG2 W{FRAME[0]} H{FRAME[1]} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + frame.tobytes() + chroma)
    return path
