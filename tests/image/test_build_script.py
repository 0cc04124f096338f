"""The image build script's refusals: fast checks that need no build (they run in ``make test``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .vm import BUILD

TOOLS = ("bash", "id", "df", "awk", "mkdir", "dirname", "git", "sha256sum", "cut", "find", "sort", "xargs")
"""What build.sh needs before its first step: everything but mmdebstrap."""


def build(arch: str, out: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(BUILD), arch, str(out)], capture_output=True, text=True, env=env)


def test_arm64_is_refused_with_what_is_missing(tmp_path: Path) -> None:
    done = build("arm64", tmp_path)
    assert done.returncode == 2 and "arm64 (Raspberry Pi) is not built yet" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    done = build("armhf", tmp_path)
    assert done.returncode == 2 and "unknown architecture 'armhf'" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
def test_a_missing_tool_names_the_debian_package_and_writes_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    out = tmp_path / "out"
    done = build("amd64", out, path=str(bin_dir))
    assert done.returncode == 2
    assert "missing Debian packages: mmdebstrap" in done.stderr and "apt-get install mmdebstrap" in done.stderr
    assert list(out.iterdir()) == []
