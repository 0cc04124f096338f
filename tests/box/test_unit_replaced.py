"""A replaced ballot box unit is told from drops the station did not hear, by the unit's own identity.

The smart box reports its chip's unique id in every STATUS. Another unit in
the place of the old one is noted, with a ``box_unit_replaced`` alarm, and its
counter becomes the reference: whether it is higher or lower than the
journal's, no ballot is added and none is subtracted.
"""

from __future__ import annotations

from pathlib import Path

from device.core import events as ev
from device.firmware import boxproto as bp
from device.hardware.interfaces import BoxSignal, ScanRead

from .fakes import CHIP_ID
from .rigs import SmartStation

OTHER_CHIP = "0123456789abcdef"


def vote(station: SmartStation, pin: str) -> None:
    station.app.identify(ScanRead(pin, "qr", "t"))
    station.advance(0.05)
    assert station.unit.slot_open
    station.drop()


def put_in_another_unit(station: SmartStation, firmware_dir: Path, *, boot: int, drops: int) -> None:
    """Power the unit off and put in another one whose flash holds ``boot`` and ``drops``."""
    from boxstore import render  # type: ignore[import-not-found]
    (firmware_dir / "counters.txt").write_text(render(boot, drops))
    station.restart_unit(chip_id=bytes.fromhex(OTHER_CHIP))


def test_a_replacement_with_a_higher_counter_adds_no_ballot(smart_station: SmartStation, firmware_dir: Path,
                                                             pins: list[str]) -> None:
    station = smart_station
    app = station.boot()
    app.open_polls()
    vote(station, pins[0])
    vote(station, pins[1])
    station.shutdown()
    put_in_another_unit(station, firmware_dir, boot=7, drops=40)   # a used unit from the depot

    app = station.boot()
    assert app.counters()["ballots"] == 2 and app.counters()["identified"] == 2
    assert station.events("box_counter_noted")[-1] == ev.BoxCounterNoted(40, 2, OTHER_CHIP)
    alarm = [e for e in station.events("alarm_raised") if e.alarm_kind == "box_unit_replaced"]
    assert len(alarm) == 1 and OTHER_CHIP in alarm[0].detail and CHIP_ID in alarm[0].detail
    assert not [e for e in station.events("alarm_raised") if e.alarm_kind == "drop_without_token"]
    vote(station, pins[2])                                          # counting goes on from the new unit's count
    assert [(e.token, e.unit_count) for e in station.events("ballot_counted")][-1] == (3, 41)
    station.shutdown()
    app = station.boot()                                            # the same new unit again: nothing new
    assert len(station.events("box_counter_noted")) == 2 and app.counters()["ballots"] == 3
    assert app.verify().ok


def test_a_unit_swapped_while_the_station_runs_is_heard_even_with_an_older_boot_number(
        smart_station: SmartStation, firmware_dir: Path, pins: list[str]) -> None:
    station = smart_station
    for _ in range(3):
        station.restart_unit()                                      # the old unit has booted a few times
    app = station.boot()
    app.open_polls()
    vote(station, pins[0])
    put_in_another_unit(station, firmware_dir, boot=0, drops=5)     # its first boot number is older
    station.advance(0.5)
    assert app.status()["box"]["present"] is True
    assert app.status()["box"]["unit_id"] == OTHER_CHIP
    assert station.events("box_counter_noted")[-1] == ev.BoxCounterNoted(5, 1, OTHER_CHIP)
    assert [e.alarm_kind for e in station.events("alarm_raised")] == ["box_unit_lost", "box_unit_replaced"]
    assert app.counters()["ballots"] == 1
    vote(station, pins[1])
    assert app.counters()["ballots"] == 2 and app.counters()["difference"] == 0
    assert app.verify().ok


def test_the_first_unit_id_heard_by_an_older_journal_is_noted_without_an_alarm(smart_station: SmartStation,
                                                                              pins: list[str]) -> None:
    station = smart_station
    old_chip = station.unit.machine.chip_id
    station.unit.machine.chip_id = bytes(8)                         # firmware without unit ids reports none
    station.restart_unit()
    app = station.boot()
    app.open_polls()
    vote(station, pins[0])
    assert station.events("box_counter_noted") == [ev.BoxCounterNoted(0, None, None)]
    station.shutdown()
    station.restart_unit(chip_id=old_chip)                          # updated firmware: the same unit, now with its id
    app = station.boot()
    assert station.events("box_counter_noted")[-1] == ev.BoxCounterNoted(1, 1, CHIP_ID)
    assert not [e for e in station.events("alarm_raised") if e.alarm_kind == "box_unit_replaced"]
    assert app.counters()["ballots"] == 1 and app.verify().ok


def test_status_from_firmware_without_unit_ids_still_reads() -> None:
    old = bp.struct.pack(bp.STATUS_FMT_NO_ID, 3, 10, 1, bp.F_SESSION, 9)
    assert bp.unpack_status(old) == (3, 10, 1, bp.F_SESSION, 9, 0)
    new = bp.status_payload(3, 10, 1, bp.F_SESSION, 9, int(CHIP_ID, 16))
    assert bp.unpack_status(new) == (3, 10, 1, bp.F_SESSION, 9, int(CHIP_ID, 16))
    assert len(new) <= bp.MAX_PAYLOAD
    for cut in (0, 5, 13, 19, 21):
        assert bp.unpack_status(new[:cut] if cut < len(new) else new + b"\0") is None


def test_the_backend_hands_the_unit_id_with_unit_found(smart_station: SmartStation) -> None:
    rig = smart_station.unit
    inputs = rig.start()
    assert inputs.unit_id == CHIP_ID and inputs.unit_drops == 0
    rig.wire.fault = lambda frames: []
    rig.advance(smart_station.delays.heartbeat_timeout + 0.1)
    rig.wire.fault = None
    rig.advance(0.5)
    assert (BoxSignal.UNIT_FOUND, CHIP_ID) in rig.units
