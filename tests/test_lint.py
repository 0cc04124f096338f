"""The linters run in CI too: ruff over the tree, mypy strict over the pure core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean() -> None:
    out = run("ruff", "check", "--output-format", "concise", "device", "web_ui", "provisioning", "receiver",
              "protocol", "tools", "verifier", "bench", "tests")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_on_the_core() -> None:
    out = run("mypy", "device/core")
    assert out.returncode == 0, out.stdout + out.stderr
