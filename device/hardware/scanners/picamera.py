"""The Raspberry Pi camera module, read with Picamera2 (libcamera).

Chosen by ``scanner = "picamera"``. The camera is configured for a video
stream with a small YUV420 "lores" stream whose Y plane is already a
grayscale frame, so no colour conversion runs on the Pi. Frames go through
the same ``CameraSource`` loop as a webcam (skipping unchanged frames,
reconnecting).

NOT EXERCISED: this module cannot run here (no Raspberry Pi, no camera,
no picamera2); it is written against the Picamera2 manual and must be tested
on a unit before certification.
"""

from __future__ import annotations

from typing import Any

from picamera2 import Picamera2

from device.hardware.interfaces import Decoder

from .camera import CameraSource


class PiCamera:
    """A started Picamera2; ``grab`` returns the Y plane of the lores stream."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self._height = height
        self._camera = Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (width, height)}, lores={"size": (width, height), "format": "YUV420"},
            controls={"FrameRate": fps},
        )
        self._camera.configure(config)
        self._camera.start()

    def grab(self) -> Any:
        frame = self._camera.capture_array("lores")
        return None if frame is None else frame[: self._height, :]

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()


def open_picamera(width: int = 640, height: int = 480, fps: int = 15) -> PiCamera | None:
    try:
        return PiCamera(width, height, fps)
    except (RuntimeError, IndexError):  # no camera attached, or it is in use
        return None


def picamera_source(decoder: Decoder, width: int = 640, height: int = 480, fps: int = 15) -> CameraSource:
    return CameraSource(decoder=decoder, opener=lambda: open_picamera(width, height, fps))
