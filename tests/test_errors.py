"""Every exception pollbox defines descends from one base, so callers know a foreseen condition from a bug."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from protocol.errors import PollboxError, UserError

PACKAGES = ("device", "protocol", "provisioning", "receiver", "web_ui")
SKIP = ("device.firmware",)  # MicroPython code for the box's own chip: it runs without the rest of pollbox


def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not info.name.startswith(SKIP):
            names.append(info.name)
    return names


def _own_exceptions(package: str) -> list[type[BaseException]]:
    found = []
    for name in _modules(package):
        try:
            module = importlib.import_module(name)
        except ImportError:  # a hardware backend whose library is not on this machine
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found.append(obj)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exception_descends_from_pollbox_error(package: str) -> None:
    strays = [f"{e.__module__}.{e.__qualname__}" for e in _own_exceptions(package) if not issubclass(e, PollboxError)]
    assert not strays, f"exceptions outside the PollboxError family: {strays}"


def test_the_command_line_prints_every_user_error_as_a_sentence() -> None:
    from device.cliutil import user_errors
    assert UserError in user_errors()
