"""A test boot that stalls before user space is said and powered on once more (``guest.boot_probed_unit``).

Under QEMU's software emulation the firmware has been seen to stop for good (docs/image.md, "Resets
under emulation"). The rig tells such a stall from the serial console (``vm.BOOT_STALL``), warns with
where the machine was, and powers the same disk on once more. Here the first power-on is frozen
in the firmware on purpose (QMP ``stop`` as soon as QEMU's monitor answers), with a short stall
limit, and the boot is checked to be warned of and to reach the test agent on the second power-on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from .guest import PoweredOnAgain, boot_probed_unit, host_can_boot
from .vm import BOOT_STALL, IMAGE_TEST_TIMEOUT, VirtualMachine, wait_for

pytestmark = [pytest.mark.image, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

STALL = 20.0
"""The stall limit of this test: long enough for QEMU to start, short enough not to wait the real one."""


def test_a_boot_frozen_in_the_firmware_is_warned_of_and_powered_on_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    monkeypatch.setitem(BOOT_STALL, "kvm", STALL)
    monkeypatch.setitem(BOOT_STALL, "tcg", STALL)
    power_on = VirtualMachine.start
    frozen: list[str] = []

    def start_frozen_once(vm: VirtualMachine) -> None:
        power_on(vm)
        if not frozen:
            def stopped() -> bool:
                try:
                    vm.qmp("stop")
                except OSError:
                    return False  # the monitor's socket not up yet
                return True
            wait_for(stopped, "QEMU's monitor answering", 60)
            frozen.append(vm.console())

    monkeypatch.setattr(VirtualMachine, "start", start_frozen_once)
    # every warning recorded, not only the rig's: pytest.warns would turn the others into errors at its end
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unit = boot_probed_unit(tmp_path)
    try:
        said = [str(w.message) for w in caught if issubclass(w.category, PoweredOnAgain)]
        assert len(said) == 1 and "boot 1: stalled in the firmware" in said[0], said
        assert "QEMU says 'VM status: paused'" in said[0] and "hang-boot-1.txt" in said[0], said
        assert unit.vm.boots == 2 and "Linux version" not in frozen[0], (unit.vm.boots, frozen)
        report = (tmp_path / "hang-boot-1.txt").read_text()
        assert "QEMU says 'VM status: paused'" in report and "the boot reached the firmware" in report, report
        assert unit.guest.check("cat /proc/sys/kernel/random/boot_id").strip()
    finally:
        unit.stop()
