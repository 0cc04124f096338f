"""The amd64 image booted in QEMU: the appliance starts under systemd and survives power cuts.

The image is built first if its recipe changed (``build/image``, cached by the recipe's hash). Each
boot is checked from outside: systemd's own status line on the serial console says pollbox.service
started (with ``Type=notify`` that is after ``READY=1``) and the chair's screen answers through a
port forwarded to 127.0.0.1. QEMU runs under KVM where the host's KVM runs a stock Debian kernel,
else in software emulation (``vm.accelerator``), which is slower but checks the same things.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from .vm import DevPanel, VirtualMachine, build_image, make_stick, partitions, pull_folder, wait_for, written_ranges

pytestmark = pytest.mark.image

POWER_CUTS = 3
"""Power cuts in the quick series (each one a boot); the slow series cuts more often."""
RECORDED = 30.0
"""How long an action on the simulated hardware may take to reach the journal."""


def _host_can_boot() -> str:
    if shutil.which("qemu-system-x86_64") is None:
        return "no qemu-system-x86_64 (make image-deps installs it)"
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
    stick, station = make_stick(workdir)
    vm = VirtualMachine(workdir, image, stick, station)
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


def more_events(vm: VirtualMachine, before: int) -> Callable[[], int]:
    """A condition: the journal's event count once it is above ``before`` (0 until then)."""
    def count() -> int:
        n = events(vm)
        return n if n > before else 0
    return count


def journal_on_disk(vm: VirtualMachine, name: str) -> int:
    """Verify, on the host, the journal left on the stopped unit's data partition; its event count."""
    station = vm.workdir / name
    shutil.copytree(vm.station, station, ignore=shutil.ignore_patterns("data"))
    pull_folder(vm.disk, partitions(vm.image)["data"], "/station/data", station)
    done = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(station / "station.toml"), "verify"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"journal verified: (\d+) events", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def test_a_power_cut_keeps_every_acknowledged_event(unit: VirtualMachine) -> None:
    unit.ensure_running()
    unit.wait_until_ready()
    panel = DevPanel(unit)  # its session (and form token) outlives a reboot: the key is on the data partition
    panel.page()
    for cut in range(POWER_CUTS):
        before = events(unit)
        for action in ("lid-open", "lid-close"):
            panel.act(action)
        acknowledged = wait_for(more_events(unit, before), "the lid events journalled", RECORDED)
        unit.power_cut()
        assert journal_on_disk(unit, f"after-cut-{cut}") >= acknowledged
        unit.start()
        status = unit.wait_until_ready()
        assert status["journal"]["ok"] is True, (cut, status["journal"])
        assert status["journal"]["events"] >= acknowledged, (cut, acknowledged, status["journal"])
        assert "station imported" not in unit.console(), "the station was imported again after a power cut"


def test_the_root_file_system_is_never_written(unit: VirtualMachine) -> None:
    unit.ensure_running()
    unit.wait_until_ready()
    layout = partitions(unit.image)
    written = written_ranges(unit.disk)
    data_start, data_end = layout["data"]
    assert any(start < data_end and end > data_start for start, end in written), "nothing reached the data partition"
    for name in ("esp", "root"):
        first, last = layout[name]
        touched = [(start, end) for start, end in written if start < last and end > first]
        assert not touched, f"the {name} partition was written at {touched[:5]}"
