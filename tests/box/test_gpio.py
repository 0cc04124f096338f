"""GPIO backend details against the fake RPi.GPIO: order of set-up, pulls, release, failure paths."""

from __future__ import annotations

import pytest

from device.hardware.boxes.errors import BoxError
from device.hardware.interfaces import BoxSignal

from .rigs import GpioRig


def test_lock_is_the_first_pin_touched_and_set_locked(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    setups = [c for c in fake.calls if c[0] == "setup"]
    assert setups[0] == ("setup", 17, fake.OUT, fake.LOW)
    assert fake.calls.index(setups[0]) == 2  # after setwarnings and setmode only
    rig.box.stop()


def test_inputs_are_pulled_towards_their_alarm_state(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    pulls = {c[1]: c[3] for c in fake.calls if c[0] == "setup" and c[2] == fake.IN}
    assert pulls == {27: fake.PUD_UP, 22: fake.PUD_UP, 5: fake.PUD_UP}
    rig.box.stop()


def test_stop_locks_and_releases_every_pin(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    rig.box.arm()
    rig.box.stop()
    assert fake.levels[17] == 0
    assert fake.calls[-1][0] == "cleanup" and set(fake.calls[-1][1]) >= {17, 27, 22}
    assert fake.callbacks == {}


def test_an_error_in_the_station_callback_locks_the_slot(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)

    def broken(signal: BoxSignal, at: float) -> None:
        raise RuntimeError("station crashed")

    rig.listeners.append(broken)
    rig.start()
    rig.box.arm()
    rig.advance(0.01)
    fake.drive(22, 1)  # lid
    rig.clock.advance(0.05)
    with pytest.raises(RuntimeError, match="station crashed"):
        rig.box.check()
    assert fake.levels[17] == 0
    assert "station crashed" in rig.box.health()["last_error"]
    rig.box.stop()


def test_failed_setup_leaves_the_slot_locked(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    fake.fail_on = "add_event_detect"
    rig = GpioRig(module, fake)
    with pytest.raises(BoxError, match="slot left locked"):
        rig.start()
    assert fake.levels[17] == 0


def test_unit_absent_at_start_is_reported(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    fake.wire(5, 1)
    rig.start()
    rig.advance(0.01)
    assert rig.names() == [BoxSignal.UNIT_LOST]
    rig.box.stop()


def test_keepalive_pulses_only_while_the_slot_is_open(fake_gpio: tuple) -> None:
    module, fake = fake_gpio
    rig = GpioRig(module, fake)
    rig.start()
    rig.advance(0.05)
    assert set(fake.outputs_written(12)) == {0}
    rig.box.arm()
    before = len(fake.outputs_written(12))
    rig.advance(0.05)
    written = fake.outputs_written(12)[before:]
    assert 1 in written and 0 in written
    rig.box.stop()
