"""From camera frame to reads: skip unchanged frames, decode the rest.

``FramePipeline.process(gray)`` is what every camera source does with a
frame: ask the ``FrameSkipper`` whether anything changed, and if so run the
configured ``Decoder``; reads are tagged with the source's name. The
benchmarks measure the idle camera through this same object.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from device.hardware.decoders.frames import FrameSkipper
from device.hardware.interfaces import Decoder, ScanRead


class FramePipeline:
    def __init__(self, decoder: Decoder, source: str, skipper: FrameSkipper | None = None) -> None:
        self.decoder, self.source = decoder, source
        self.skipper = skipper

    def process(self, gray: Any) -> list[ScanRead]:
        if self.skipper is not None and not self.skipper.wants(gray):
            return []
        return [replace(r, source=f"{self.source}/{r.source}") for r in self.decoder.decode(gray)]
