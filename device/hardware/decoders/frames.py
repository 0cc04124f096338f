"""Skipping unchanged camera frames, so an idle camera costs little CPU.

``FrameSkipper.wants(gray)`` compares a cheap thumbnail (every ``step``-th
pixel in both directions) with the previous frame's: the frame is decoded if
more than ``area`` of the thumbnail moved by more than ``delta`` grey levels
(sensor noise stays below that). After a change, the next ``settle`` frames
are decoded too, so the sharp frame after a document stops moving is not
skipped because it looks like the blurred one before it. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FrameSkipper:
    step: int = 8
    delta: int = 24
    area: float = 0.004
    settle: int = 3
    _previous: Any = field(default=None, repr=False)
    _settling: int = 0
    decoded: int = 0
    skipped: int = 0

    def wants(self, gray: Any) -> bool:
        """True if this frame should be decoded."""
        thumb = np.asarray(gray[:: self.step, :: self.step], dtype=np.int16)
        changed = self._changed(thumb)
        self._previous = thumb
        if changed:
            self._settling = self.settle
        elif self._settling > 0:
            self._settling -= 1
        else:
            self.skipped += 1
            return False
        self.decoded += 1
        return True

    def reset(self) -> None:
        """Forget the previous frame (a reopened camera): the next frame is decoded."""
        self._previous, self._settling = None, 0

    def _changed(self, thumb: Any) -> bool:
        if self._previous is None or self._previous.shape != thumb.shape:
            return True
        moved = np.count_nonzero(np.abs(thumb - self._previous) > self.delta)
        return bool(moved > self.area * thumb.size)
