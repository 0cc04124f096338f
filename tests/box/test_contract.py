"""The behaviour every ballot box backend promises, run against sim, GPIO and smart box alike."""

from __future__ import annotations

from device.hardware.interfaces import BallotBox, BoxSignal

from .conftest import RigFactory

B, C = BoxSignal.BEAM_BLOCKED, BoxSignal.BEAM_CLEARED


def test_is_a_ballot_box(make_rig: RigFactory) -> None:
    assert isinstance(make_rig().box, BallotBox)


def test_starts_locked_with_inputs_read(make_rig: RigFactory) -> None:
    rig = make_rig()
    inputs = rig.start()
    assert (inputs.beam_blocked, inputs.lid_open, rig.slot_open) == (False, False, False)
    assert rig.box.health()["backend"] == rig.box.name


def test_arm_opens_and_one_drop_locks(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.start()
    rig.advance(0.05)
    rig.box.arm()
    rig.advance(0.05)
    assert rig.slot_open
    rig.drop()
    assert rig.names() == [B, C]
    assert not rig.slot_open


def test_lock_closes_the_slot(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.start()
    rig.box.arm()
    rig.advance(0.05)
    rig.box.lock()
    rig.advance(0.05)
    assert not rig.slot_open


def test_arm_window_ends_locked(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.start()
    rig.box.arm()
    rig.advance(rig.delays.arm_timeout / 2, each=rig.box.heartbeat)
    assert rig.slot_open
    rig.advance(rig.delays.arm_timeout / 2 + 0.1, each=rig.box.heartbeat)
    assert not rig.slot_open


def test_stop_locks(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.start()
    rig.box.arm()
    rig.advance(0.05)
    rig.box.stop()
    rig.advance(0.05)
    assert not rig.slot_open


def test_start_with_lid_open_reports_it_and_refuses_arm(make_rig: RigFactory) -> None:
    rig = make_rig(lid_open=True)
    assert rig.start().lid_open
    rig.box.arm()
    rig.advance(0.05)
    assert not rig.slot_open
    rig.close_lid()
    rig.advance(0.1)
    assert rig.names() == [BoxSignal.LID_CLOSED]


def test_unit_lost_and_found(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.start()
    rig.unplug()
    rig.advance(rig.delays.heartbeat_timeout + 0.2, each=rig.box.heartbeat)
    rig.replug()
    rig.advance(0.3, each=rig.box.heartbeat)
    assert rig.names() == [BoxSignal.UNIT_LOST, BoxSignal.UNIT_FOUND]


def test_a_unit_counter_travels_with_its_drops(make_rig: RigFactory) -> None:
    """Only a unit that keeps its own drop counter reports it: at start, with each drop, and when found again."""
    rig = make_rig()
    inputs = rig.start()
    rig.advance(0.05)
    rig.drop()
    rig.drop()
    counts = [c for s, c in rig.counts if s is B]
    if rig.name == "smartbox":
        assert inputs.unit_drops is not None
        assert counts == [inputs.unit_drops + 1, inputs.unit_drops + 2]
    else:
        assert inputs.unit_drops is None and counts == [None, None]
    rig.unplug()
    rig.advance(rig.delays.heartbeat_timeout + 0.2, each=rig.box.heartbeat)
    rig.replug()
    rig.advance(0.3, each=rig.box.heartbeat)
    found = [c for s, c in rig.counts if s is BoxSignal.UNIT_FOUND]
    assert found == ([counts[-1]] if rig.name == "smartbox" else [None])
