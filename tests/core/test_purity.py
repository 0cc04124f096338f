"""device/core must do no I/O: no module there may import an I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "device" / "core"
FORBIDDEN = {
    "sqlite3", "time", "socket", "requests", "httpx", "flask", "RPi", "gpiozero", "pyzbar", "zxingcpp",
    "serial", "threading", "subprocess", "os", "io", "pathlib", "shutil", "logging", "random", "datetime",
    "asyncio", "urllib", "http", "select", "signal", "multiprocessing", "tempfile", "evdev", "cv2", "picamera2",
    "waitress", "psycopg", "sys", "builtins",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"__import__", "open", "exec", "eval"}:
            roots.add(f"call:{node.func.id}")  # type: ignore[attr-defined]
    return roots


CORE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_does_no_io(path: Path) -> None:
    bad = imported_roots(path) & (FORBIDDEN | {"call:__import__", "call:open", "call:exec", "call:eval"})
    assert not bad, f"{path.name} imports or calls {sorted(bad)}; device/core must stay pure"


def test_the_check_catches_an_io_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import sqlite3\nfrom time import monotonic\nopen('x')\n")
    assert {"sqlite3", "time", "call:open"} <= imported_roots(sample)


def test_core_has_modules() -> None:
    assert len(CORE_FILES) >= 8
