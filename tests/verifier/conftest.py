"""Fixtures for the verifier page: ``scene``, a polling day on a real receiver (``verifier_scene.py``)."""

from __future__ import annotations

from verifier_scene import scene

__all__ = ["scene"]
