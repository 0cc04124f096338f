"""The technician self-test: runs in simulation, asks on real GPIO, refused while polls are open."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.hardware.boxes.selftest import SelfTestRefused, run_selftest

from .rigs import GpioRig, Rig, SimRig, SmartRig


def _run(rig: Rig, answers: bool = True, polls_open: bool = False) -> tuple[object, list[str], list[str]]:
    asked: list[str] = []
    told: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return answers

    report = run_selftest(rig.box, clock=rig.clock, ask=ask, notify=told.append, wait=rig.advance,
                          polls_open=polls_open, step_timeout=2.0)
    return report, asked, told


def test_runs_in_simulation_and_passes() -> None:
    rig = SimRig()
    rig.start()
    report, asked, told = _run(rig)
    assert report.passed, report.lines()  # type: ignore[attr-defined]
    assert asked == []
    assert "Open the lid" in told
    assert not rig.slot_open
    assert report.lines()[-1] == "self-test passed"  # type: ignore[attr-defined]


def test_refused_while_polls_are_open() -> None:
    rig = SimRig()
    rig.start()
    with pytest.raises(SelfTestRefused, match="polls are open"):
        _run(rig, polls_open=True)


def test_gpio_asks_the_technician_and_fails_untouched_inputs(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    report, asked, _ = _run(rig, answers=True)
    assert "Is the green lamp lit?" in asked
    lines = report.lines()  # type: ignore[attr-defined]
    assert any(line.startswith("FAIL  input beam") for line in lines)
    assert lines[-1].startswith("self-test FAILED")
    assert fake.outputs_written(23)[:2] == [1, 0]
    assert not rig.slot_open
    rig.box.stop()


def test_a_lamp_that_stays_dark_fails(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    report, _, _ = _run(rig, answers=False)
    assert "FAIL  output green" in "\n".join(report.lines())  # type: ignore[attr-defined]
    rig.box.stop()


def test_smart_box_outputs_are_read_back_from_the_unit(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    report, asked, _ = _run(rig)
    outputs = [line for line in report.lines() if "output" in line]  # type: ignore[attr-defined]
    assert asked == []
    assert outputs and all(line.startswith("PASS") for line in outputs), outputs
    rig.box.stop()
