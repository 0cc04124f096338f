"""Fault: UART frames from the smart box are corrupted, lost, duplicated and reordered.

Every drop must still become exactly one BEAM_BLOCKED/BEAM_CLEARED pair, and a
stale or duplicated command must never reopen the slot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from device.firmware import boxproto as bp
from device.hardware.interfaces import BoxSignal

from .rigs import SmartRig

Fault = Callable[[list[bytes]], list[bytes]]


def _corrupt(rng: random.Random) -> Fault:
    def fault(frames: list[bytes]) -> list[bytes]:
        out = []
        for f in frames:
            if rng.random() < 0.3:
                i = rng.randrange(len(f))
                f = f[:i] + bytes([f[i] ^ (1 << rng.randrange(8))]) + f[i + 1:]
            out.append(f)
        return out
    return fault


def _lose(rng: random.Random) -> Fault:
    return lambda frames: [f for f in frames if rng.random() > 0.4]


def _duplicate(rng: random.Random) -> Fault:
    return lambda frames: [g for f in frames for g in ([f, f] if rng.random() < 0.5 else [f])]


class _Reorder:
    """Holds back some frames and delivers them later, after newer ones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.held = rng, []  # type: ignore[var-annotated]

    def __call__(self, frames: list[bytes]) -> list[bytes]:
        out = []
        for f in frames:
            if self.rng.random() < 0.3:
                self.held.append(f)
            else:
                out.append(f)
        if self.held and self.rng.random() < 0.5:
            out.extend(self.held)
            self.held = []
        return out


def _noise(rng: random.Random) -> Fault:
    return lambda frames: [bytes(rng.randrange(256) for _ in range(rng.randrange(6))) + f for f in frames]


FAULTS = {"corrupted": _corrupt, "lost": _lose, "duplicated": _duplicate, "reordered": _Reorder, "noise": _noise}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_drop_is_signalled_exactly_once(firmware_dir: Path, fault: str, seed: int) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    rig.wire.fault = FAULTS[fault](random.Random(seed))
    drops = 6
    for _ in range(drops):
        rig.box.heartbeat()
        rig.drop()
        rig.advance(0.3)
    rig.wire.fault = None
    rig.advance(0.6)
    blocked = rig.names().count(BoxSignal.BEAM_BLOCKED)
    cleared = rig.names().count(BoxSignal.BEAM_CLEARED)
    assert (blocked, cleared) == (drops, drops)
    assert rig.box.health()["unit_drops"] == drops
    assert BoxSignal.UNIT_LOST not in rig.names()
    rig.box.stop()


def test_corruption_is_counted_and_survived(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    rig.wire.fault = _corrupt(random.Random(7))
    rig.advance(2.0, each=rig.box.heartbeat)
    assert rig.box.health()["crc_errors"] > 0
    rig.box.stop()


def test_a_replayed_arm_never_reopens_a_locked_slot(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    rig.box.arm()
    rig.advance(0.05)
    arm_frame = [f for f in rig.wire.pi_frames if f[5] == bp.ARM][-1]
    rig.box.lock()
    rig.advance(0.05)
    assert not rig.slot_open
    rig.machine.rx += arm_frame  # the same ARM arrives again
    rig.advance(0.05)
    assert not rig.slot_open
    assert rig.board.rejected == 1
    rig.box.stop()


def test_a_lost_lock_is_repeated_until_the_slot_closes(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    rig.box.arm()
    rig.advance(0.05)
    real_write = rig.wire.write
    rig.wire.write = lambda data: None  # type: ignore[method-assign]
    rig.box.lock()
    rig.wire.write = real_write  # type: ignore[method-assign]
    assert rig.slot_open
    rig.advance(0.6)
    assert not rig.slot_open
    assert rig.box.health()["lock_repeats"] >= 1
    rig.box.stop()


def test_a_lost_arm_is_repeated(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    real_write = rig.wire.write
    rig.wire.write = lambda data: None  # type: ignore[method-assign]
    rig.box.arm()
    rig.wire.write = real_write  # type: ignore[method-assign]
    rig.advance(0.6)
    assert rig.slot_open
    assert rig.box.health()["arm_repeats"] >= 1
    rig.box.stop()


def test_a_frame_the_uart_cannot_send_is_a_lost_frame_not_an_error(firmware_dir: Path) -> None:
    """A write timeout (seen through the kernel: the guest UART's transmitter stuck after the far end
    went away) must not raise into the owner's step; the ARM is repeated once the link takes frames."""
    rig = SmartRig(firmware_dir)
    rig.start()
    real_write = rig.wire.write

    def stuck(data: bytes) -> None:
        raise OSError("Write timeout")  # what pyserial's SerialTimeoutException is
    rig.wire.write = stuck  # type: ignore[method-assign]
    rig.box.arm()
    rig.box.lock()
    rig.box.heartbeat()
    rig.box.arm()
    assert rig.box.health()["write_failures"] == 4
    assert not rig.slot_open
    rig.wire.write = real_write  # type: ignore[method-assign]
    rig.advance(0.6)
    assert rig.slot_open
    assert rig.box.health()["arm_repeats"] >= 1
    rig.box.stop()


def test_silence_is_unit_lost(firmware_dir: Path) -> None:
    rig = SmartRig(firmware_dir)
    rig.start()
    rig.wire.fault = lambda frames: []
    rig.advance(rig.delays.heartbeat_timeout + 0.1, each=rig.box.heartbeat)
    assert rig.names() == [BoxSignal.UNIT_LOST]
    rig.box.stop()
