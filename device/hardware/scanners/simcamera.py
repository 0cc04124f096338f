"""The simulated camera: decodes image files you put in front of it.

Chosen by ``scanner = "sim-camera"`` (refused in production by the registry).
``feed_image(path_or_array)`` loads the image as a grayscale frame and runs
it through the configured decoder, exactly as a camera frame would be;
each read goes to ``on_read`` in the caller's thread. ``unplug`` and
``replug`` play a lost and found camera. Used by ``make run`` with the
images of ``samples.write_samples``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device.hardware.interfaces import Decoder, ScannerState, ScanRead
from device.hardware.sim.scanner import SimScanner

from .imagefeed import load_gray
from .pipeline import FramePipeline


class SimCamera(SimScanner):
    """The simulated scanner's connection states, with a decoder in front of it instead of typed text."""

    name = "sim-camera"

    def __init__(self, *, decoder: Decoder) -> None:
        super().__init__()
        self.pipeline = FramePipeline(decoder, self.name)

    def feed_image(self, image: str | Path | Any) -> list[ScanRead]:
        """Decode one image (path, PIL image or array); returns and delivers its reads."""
        if self._state is ScannerState.DISCONNECTED:
            return []
        reads = self.pipeline.process(load_gray(image))
        for read in reads:
            if self._on_read is not None:
                self._on_read(read)
        return reads

    def replug(self) -> None:
        if self._on_read is not None:
            super().replug()
