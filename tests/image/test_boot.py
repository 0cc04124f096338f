"""The amd64 image booted under KVM: the appliance starts under systemd and survives power cuts.

The image is built first if its recipe changed (``build/image``, cached by the recipe's hash). Each
boot is checked from outside: systemd's own status line on the serial console says pollbox.service
started (with ``Type=notify`` that is after ``READY=1``) and the chair's screen answers through a
port forwarded to 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .vm import DevPanel, VirtualMachine, build_image, make_stick, wait_for

pytestmark = pytest.mark.image

POWER_CUTS = 3
"""Power cuts in the quick series (each one a boot); the slow series cuts more often."""
RECORDED = 30.0
"""How long an action on the simulated hardware may take to reach the journal."""


def _host_can_boot() -> str:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no usable /dev/kvm"
    if os.geteuid() != 0:
        return "building the image needs root"
    return ""


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualMachine]:
    reason = _host_can_boot()
    if reason:
        pytest.skip(reason)
    image = build_image("amd64")
    workdir = tmp_path_factory.mktemp("vm")
    stick, _ = make_stick(workdir)
    vm = VirtualMachine(workdir, image, stick)
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


def events(vm: VirtualMachine) -> int:
    status = vm.status()
    assert status is not None, "the screen stopped answering"
    return int(status["journal"]["events"])


def test_first_boot_imports_the_station_and_runs_the_appliance(unit: VirtualMachine) -> None:
    status = unit.wait_until_ready()
    console = unit.console()
    assert "station imported from the USB stick" in console
    assert "Started pollbox.service" in console and "Failed to start pollbox" not in console
    assert status["mode"] == "simulation" and status["journal"]["ok"] is True
    assert "Status" in DevPanel(unit).page() or status["poll"] == "setup"


def test_a_power_cut_keeps_every_acknowledged_event(unit: VirtualMachine) -> None:
    unit.wait_until_ready()
    panel = DevPanel(unit)
    for cut in range(POWER_CUTS):
        before = events(unit)
        for action in ("lid-open", "lid-close"):
            panel.act(action)
        acknowledged = wait_for(lambda: (n := events(unit)) > before and n, "the lid events journalled", RECORDED)
        unit.power_cut()
        unit.start()
        status = unit.wait_until_ready()
        assert status["journal"]["ok"] is True, (cut, status["journal"])
        assert status["journal"]["events"] >= acknowledged, (cut, acknowledged, status["journal"])
        assert "station imported" not in unit.console(), "the station was imported again after a power cut"
        panel = DevPanel(unit)
