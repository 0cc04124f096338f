"""The firmware logic cases under a real MicroPython interpreter (the WebAssembly port, run by Node).

The interpreter is installed by ``tests/box/install_micropython.sh`` into
``build/mpy`` (or ``$POLLBOX_MPY_DIR``). Without it the test skips with the
reason, except when ``CI`` is set: there a missing interpreter is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device.firmware import stage

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
PACKAGE = "node_modules/@micropython/micropython-webassembly-pyscript"


def _interpreter() -> Path | None:
    base = Path(os.environ.get("POLLBOX_MPY_DIR", ROOT / "build" / "mpy"))
    pkg = base / PACKAGE
    if shutil.which("node") and (pkg / "micropython.mjs").is_file():
        return pkg
    return None


def test_firmware_cases_pass_under_micropython(tmp_path: Path) -> None:
    pkg = _interpreter()
    if pkg is None:
        message = "MicroPython (WebAssembly) or node missing: run tests/box/install_micropython.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stage(tmp_path, include_main=False)
    result = subprocess.run(
        ["node", str(HERE / "mpy" / "run.mjs"), str(pkg), str(tmp_path), str(HERE / "mpy" / "firmware_cases.py")],
        capture_output=True, text=True, timeout=120, check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = [line for line in lines if line.startswith("RESULT ")]
    assert summary, result.stdout + result.stderr
    passed, failed = (int(x) for x in summary[-1].split()[1:])
    assert failed == 0, "\n".join(line for line in lines if line.startswith("FAIL"))
    assert passed == sum(1 for line in (HERE / "mpy" / "firmware_cases.py").read_text().splitlines()
                         if line.startswith("def case_"))
