"""Fault family: the ballot box unit stops answering while voters are being admitted, then is heard again.

A voter admitted while the unit is lost keeps an open token, and the slot stays locked (the station does
not even ask a unit that cannot answer). When the unit is heard again within the token's ``arm_timeout``
the slot opens again for every open token, journaled as ``arm_resumed``: nobody is identified twice and
nobody waits out the timeout. The fake clock advances by exactly the named delays.
"""

from __future__ import annotations

from typing import Any

from device.appliance import Appliance
from device.hardware.interfaces import ScanRead


def kinds(app: Appliance) -> list[str]:
    return [r.event.kind for r in app.journal.recorded()]


def test_a_voter_admitted_while_the_box_is_lost_gets_the_slot_when_it_is_heard_again(
        app: Appliance, pins: list[str], clock: Any) -> None:
    box = app.sim.box
    app.open_polls()
    box.unplug()
    assert app.identify(ScanRead(pins[0], "qr", "t")).outcome == "admitted"
    assert not box.slot_open and box.unit.arms_refused == 0  # locked, and the lost unit was not asked
    assert app.status()["interlock"]["armed"]
    clock.advance(app.delays.arm_timeout - 1)
    app.tick()
    box.replug()
    assert box.slot_open
    assert kinds(app)[-2:] == ["device_status_changed", "arm_resumed"]
    box.drop()
    assert app.counters()["ballots"] == 1 and not box.slot_open
    assert [a["kind"] for a in app.status()["alarms"]] == ["box_unit_lost"]  # no drop without a token


def test_a_voter_walking_to_the_box_when_it_was_lost_gets_the_slot_back(
        app: Appliance, pins: list[str], clock: Any) -> None:
    box = app.sim.box
    app.open_polls()
    app.identify(ScanRead(pins[0], "qr", "t"))
    assert box.slot_open
    box.unplug()
    assert not box.slot_open
    box.replug()
    assert box.slot_open and kinds(app).count("arm_resumed") == 1


def test_a_token_that_expired_while_the_box_was_lost_stays_expired(
        app: Appliance, pins: list[str], clock: Any) -> None:
    box = app.sim.box
    app.open_polls()
    box.unplug()
    app.identify(ScanRead(pins[0], "qr", "t"))
    clock.advance(app.delays.arm_timeout)
    app.tick()
    box.replug()
    assert not box.slot_open
    assert "arm_expired" in kinds(app) and "arm_resumed" not in kinds(app)
