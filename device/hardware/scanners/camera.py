"""A camera on a V4L2 device (any USB webcam), read with OpenCV.

Chosen by ``scanner = "camera"``. Frames are converted to grayscale and go
through ``FramePipeline``: unchanged frames are skipped, so a camera with no
document in view costs little CPU (see ``bench/bench_scanning.py``). The
camera is asked for ``fps`` frames per second; ``read`` blocks until the next
frame, which paces the loop. Several failed reads in a row mean the camera
is gone: DISCONNECTED, and it is reopened every ``retry_every`` seconds.

Not exercised here with a physical camera (the machine has none); the loop
is tested with a fake camera.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import cv2

from device.hardware.decoders.frames import FrameSkipper
from device.hardware.interfaces import Decoder

from .loop import DeviceLoop, Wait
from .pipeline import FramePipeline

FAILED_READS_LOST = 5
"""This many failed frame reads in a row mean the camera is gone."""


class Camera(Protocol):
    def grab(self) -> Any:
        """The next frame as a 2-D uint8 array, or None if none came."""
        ...

    def close(self) -> None: ...


class CameraSource(DeviceLoop):
    name = "camera"

    def __init__(self, *, decoder: Decoder, opener: Callable[[], Camera | None], skipper: FrameSkipper | None = None,
                 retry_every: float = 2.0, wait: Wait | None = None, restart_cap: float | None = None) -> None:
        super().__init__(retry_every=retry_every, wait=wait, restart_cap=restart_cap)
        self.skipper = skipper or FrameSkipper()
        self.pipeline = FramePipeline(decoder, self.name, self.skipper)
        self._opener = opener
        self._failures = 0

    def open_device(self) -> Camera | None:
        self._failures = 0
        self.skipper.reset()
        return self._opener()

    def pump(self, handle: Any) -> None:
        gray = handle.grab()
        if gray is None:
            self._failures += 1
            if self._failures >= FAILED_READS_LOST:
                raise OSError(f"no frame in {FAILED_READS_LOST} reads")
            return
        self._failures = 0
        for read in self.pipeline.process(gray):
            self.emit(read)

    def close_device(self, handle: Any) -> None:
        handle.close()


class OpenCvCamera:
    """A V4L2 capture device; ``grab`` returns grayscale frames."""

    def __init__(self, capture: Any) -> None:
        self._capture = capture

    def grab(self) -> Any:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame

    def close(self) -> None:
        self._capture.release()


def open_v4l2(device: int | str = 0, width: int = 640, height: int = 480, fps: int = 15) -> OpenCvCamera | None:
    """The camera at ``device`` (index or ``/dev/videoN``), or None if it cannot be opened."""
    capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    capture.set(cv2.CAP_PROP_FPS, fps)
    return OpenCvCamera(capture)


def v4l2_camera_source(decoder: Decoder, device: int | str = 0, width: int = 640, height: int = 480,
                       fps: int = 15) -> CameraSource:
    """The camera source for a V4L2 webcam."""
    return CameraSource(decoder=decoder, opener=lambda: open_v4l2(device, width, height, fps))
