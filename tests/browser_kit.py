"""What every real-browser test shares: Debian's Chromium, the flags it runs with here, and Playwright.

``sync_api = playwright_or_skip()`` at the top of a browser test module skips the module where
Chromium or Playwright is missing, except in CI, where a missing Chromium is an error (the set-up
installs it). ``launch(playwright, *extra)`` starts Chromium headless with ``ARGS`` and any
extra flags (a fake camera, say).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
"""Headless, and no background connections: this machine's closed network refuses them."""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
"""A phone's screen, for the observers' verifier page."""


def playwright_or_skip() -> ModuleType:
    """Playwright's sync API; skips the calling module without Chromium (an error in CI)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests")
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def launch(playwright: Any, *extra: str) -> Any:
    """Chromium, headless, with ``ARGS`` and ``extra`` flags."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, *extra], headless=True)
