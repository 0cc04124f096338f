"""The simulated camera: decodes image files you put in front of it.

Chosen by ``scanner = "sim-camera"`` (refused in production by the registry).
``feed_image(path_or_array)`` loads the image as a grayscale frame and runs
it through the configured decoder, exactly as a camera frame would be;
each read goes to ``on_read`` in the caller's thread. ``unplug`` and
``replug`` play a lost and found camera. Used by ``make run`` with the
images of ``samples.write_samples``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.hardware.interfaces import Decoder, ScannerState, ScanRead

from .imagefeed import load_gray
from .pipeline import FramePipeline


class SimCamera:
    name = "sim-camera"

    def __init__(self, *, decoder: Decoder) -> None:
        self.pipeline = FramePipeline(decoder, self.name)
        self._state = ScannerState.DISCONNECTED
        self._on_read: Callable[[ScanRead], None] | None = None
        self._on_state: Callable[[ScannerState], None] | None = None

    def start(self, on_read: Callable[[ScanRead], None], on_state: Callable[[ScannerState], None]) -> None:
        self._on_read, self._on_state = on_read, on_state
        self._set(ScannerState.CONNECTED)

    def stop(self) -> None:
        self._set(ScannerState.DISCONNECTED)
        self._on_read = self._on_state = None

    def state(self) -> ScannerState:
        return self._state

    def feed_image(self, image: str | Path | Any) -> list[ScanRead]:
        """Decode one image (path, PIL image or array); returns and delivers its reads."""
        if self._state is ScannerState.DISCONNECTED:
            return []
        reads = self.pipeline.process(load_gray(image))
        for read in reads:
            if self._on_read is not None:
                self._on_read(read)
        return reads

    def unplug(self) -> None:
        self._set(ScannerState.DISCONNECTED)

    def replug(self) -> None:
        if self._on_read is not None:
            self._set(ScannerState.CONNECTED)

    def _set(self, state: ScannerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)
