"""The image build script's refusals: fast checks that need no build (they run in ``make test``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .vm import BUILD

TOOLS = ("bash", "id", "df", "awk", "mkdir", "dirname", "git", "sha256sum", "cut", "find", "sort", "xargs",
         "flock")
"""What build.sh needs before its first step: everything but mmdebstrap."""


def build(arch: str, out: Path, path: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(BUILD), arch, str(out)], capture_output=True, text=True, env=env)


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
@pytest.mark.skipif(os.uname().machine in ("aarch64", "arm64"), reason="an arm64 host builds arm64 natively")
@pytest.mark.parametrize(("registered", "said"), [
    (None, "needs binfmt_misc mounted: mount -t binfmt_misc"),
    ("", "needs qemu-aarch64 registered with binfmt_misc: apt-get install qemu-user-static"),
    ("enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\n", "without the F flag"),
])
def test_arm64_on_another_host_says_what_emulation_is_missing(tmp_path: Path, registered: str | None,
                                                               said: str) -> None:
    binfmt = tmp_path / "binfmt_misc"
    if registered is not None:
        binfmt.mkdir()
        (binfmt / "status").write_text("enabled\n")
        if registered:
            (binfmt / "qemu-aarch64").write_text(registered)
    out = tmp_path / "out"
    done = build("arm64", out, env={"POLLBOX_BINFMT_DIR": str(binfmt)})
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert not list(out.glob("pollbox-*")) and not list(out.glob(".work-*"))


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
    assert [p.name for p in out.iterdir()] == [".build-amd64.lock"]  # the build lock only, no image


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
def test_a_failing_step_is_named_and_leaves_no_work_folder_or_image(tmp_path: Path) -> None:
    if subprocess.run(["bash", "-c", "command -v mmdebstrap mke2fs mkfs.vfat mcopy sfdisk"],
                      capture_output=True).returncode != 0:
        pytest.skip("the image tools are not installed (make image-deps)")
    out = tmp_path / "out"
    # a Python that fails: the first step (the wheels) fails inside its logged function
    done = build("amd64", out, env={"PYTHON": "/bin/false", "POLLBOX_IMAGE_CACHE": str(tmp_path / "cache")})
    assert done.returncode != 0
    assert "image: step 1/8 failed: Python wheels for amd64; nothing was written under the final name" \
        in done.stderr, done.stderr
    assert not list(out.glob("pollbox-*")) and not list(out.glob(".work-*"))
