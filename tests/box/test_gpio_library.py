"""Which RPi.GPIO implementation the gpio box runs on (``[hardware.gpio]``), checked against fakes.

The real rpi-lgpio over the kernel's GPIO character device is exercised in the booted image
(tests/image/test_kernel_gpio.py); these tests check our choice and our errors only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any

import pytest

from device.hardware.boxes.errors import BoxError
from device.hardware.boxes.gpiolib import installed_library, load_gpio

from .rigs import GpioRig


def test_the_configured_library_is_the_one_loaded(fake_gpio: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "lgpio", raising=False)
    assert installed_library() == "rpi-gpio"
    assert load_gpio("rpi-gpio") is fake_gpio[1]
    with pytest.raises(BoxError, match="installed RPi.GPIO module is rpi-gpio's: install pollbox\\[pi5\\]"):
        load_gpio("rpi-lgpio")


def test_rpi_lgpio_is_told_its_chip_and_a_writable_working_directory(
        fake_gpio: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lgpio", types.ModuleType("lgpio"))
    monkeypatch.delenv("RPI_LGPIO_CHIP", raising=False)
    monkeypatch.delenv("LG_WD", raising=False)
    load_gpio("rpi-lgpio", chip=4)
    assert os.environ["RPI_LGPIO_CHIP"] == "4"
    assert os.access(os.environ["LG_WD"], os.W_OK)
    with pytest.raises(BoxError, match="is 'rpi-gpio' but the installed RPi.GPIO module is rpi-lgpio's"):
        load_gpio("rpi-gpio")


def test_a_library_that_refuses_to_load_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class OffThePi(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Imports an ``RPi.GPIO`` that raises as both libraries do off a Raspberry Pi."""

        def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
            return importlib.util.spec_from_loader(name, self) if name == "RPi.GPIO" else None

        def exec_module(self, module: types.ModuleType) -> None:
            raise RuntimeError("This module can only be run on a Raspberry Pi!")

    package = types.ModuleType("RPi")
    package.__path__ = []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.delitem(sys.modules, "RPi.GPIO", raising=False)
    monkeypatch.setattr(sys, "meta_path", [OffThePi(), *sys.meta_path])
    with pytest.raises(BoxError, match="the rpi-gpio library refused to load: This module can only be run on a"):
        load_gpio("rpi-gpio")


def test_no_gpio_chip_is_a_clear_error_and_nothing_is_driven(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    fake.fail_on = "setmode"
    with pytest.raises(BoxError, match="cannot drive the slot lock on BCM 17 \\(is the GPIO chip there and free"):
        GpioRig(module, fake).start()
    assert 17 not in fake.levels
