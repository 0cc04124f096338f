"""The firmware under CPython: the shared logic cases, and ``Board`` on a fake ``machine`` module."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from device.firmware import boxproto as bp

from .fakes import FakeMachine
from .rigs import FIRMWARE_MODULES

CASES_FILE = Path(__file__).parent / "mpy" / "firmware_cases.py"


def _cases() -> list[str]:
    text = CASES_FILE.read_text()
    return sorted(line[4:line.index("(")] for line in text.splitlines() if line.startswith("def case_"))


@pytest.mark.parametrize("name", _cases())
def test_firmware_case(firmware_dir: Path, name: str) -> None:
    sys.modules.pop("firmware_cases", None)
    spec = importlib.util.spec_from_file_location("firmware_cases", CASES_FILE)
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    cases.run(name, str(firmware_dir))


def _board(firmware_dir: Path, machine: FakeMachine) -> object:
    for name in FIRMWARE_MODULES:
        sys.modules.pop(name, None)
    sys.modules["machine"] = machine
    board = importlib.import_module("board")
    store = importlib.import_module("boxstore").CounterStore(str(firmware_dir / "c.txt"))
    return board.Board(store, 0)


def test_board_sets_the_lock_pin_low_before_anything_else(firmware_dir: Path) -> None:
    machine = FakeMachine()
    _board(firmware_dir, machine)
    assert machine.log[0] == ("pin", 2, 1, None, 0)
    assert ("pin", 3, 0, 1, None) in machine.log  # beam: input, pull-up (a cut wire reads blocked)


def test_board_answers_hello_with_a_status(firmware_dir: Path) -> None:
    machine = FakeMachine()
    board = _board(firmware_dir, machine)
    machine.rx = bp.encode(9, bp.HELLO, bp.hello_payload(20, 1000, 1500, 4000, 1))
    board.step(1)  # type: ignore[attr-defined]
    frames = bp.FrameDecoder().feed(b"".join(machine.tx))
    status = bp.unpack(bp.STATUS_FMT, frames[-1].payload)
    assert status is not None and status[4] == 9 and status[3] & bp.F_SESSION


def test_firmware_files_are_all_staged(tmp_path: Path) -> None:
    from device.firmware import FILES, stage
    names = sorted(p.name for p in stage(tmp_path))
    assert names == sorted(FILES)
