"""Whether an update booted or was rolled back, decided at each start from the slot the unit booted.

Driven through the pure session with a fake clock, each step's events folded
into the state as the appliance does after its commit."""

from __future__ import annotations

from dataclasses import dataclass, field

from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.delays import Delays
from device.core.update import SlotRecord, UpdateChecked, UpdateFinished, decide_boot

D = Delays()
CTX = ss.Context.of({}, D)


@dataclass
class Unit:
    state: st.StationState = field(default_factory=st.StationState)
    session: ss.Session = field(default_factory=lambda: ss.Session.new(D))
    mono: float = 100.0
    wall: float = 1_780_000_000.0

    def feed(self, inp: ss.Input, later: float = 1.0) -> list[ev.Event]:
        self.mono, self.wall = self.mono + later, self.wall + later
        done = ss.step(self.state, self.session, inp, CTX, ss.Now(self.mono, self.wall))
        for e in done.events:
            st.apply(self.state, ev.Recorded(self.state.last_seq + 1, self.wall, e))
        self.session = done.session
        return list(done.events)

    def start(self, slot: str, version: str = "") -> list[ev.Event]:
        return [e for e in self.feed(ss.StartUp("0.1.0", "S1", slot=slot, slot_version=version), later=90.0)
                if not isinstance(e, ev.DeviceStarted)]

    def install(self, version: str, slot: str) -> None:
        self.feed(UpdateChecked(version, "pollbox-amd64", 1000, "CN=signer"))
        self.feed(UpdateFinished(version, slot=slot), later=300.0)


def test_a_unit_without_an_updater_never_records_a_boot() -> None:
    unit = Unit()
    assert unit.start("") == [] and unit.start("") == []
    unit.install("0.2.0", "B")
    assert unit.start("") == []  # the slot is not known: nothing said, the install still waits
    assert unit.state.slots.pending == ("0.2.0", "B")


def test_an_install_that_boots_then_stays() -> None:
    unit = Unit()
    assert unit.start("A") == []  # the image as flashed: nothing to say
    unit.install("0.2.0", "B")
    assert unit.start("B", "0.2.0") == [ev.UpdateBooted("0.2.0", "B")]
    assert unit.state.slots == SlotRecord(None, ("B", "0.2.0"))
    assert unit.start("B", "0.2.0") == []  # later starts on the same slot say nothing


def test_an_install_that_never_boots_is_a_rollback() -> None:
    unit = Unit()
    unit.start("A")
    unit.install("0.2.0", "B")
    assert unit.start("A") == [ev.UpdateRolledBack("0.2.0", "B", "A", "")]
    assert unit.state.slots == SlotRecord(None, ("A", ""))


def test_a_trial_that_started_but_never_became_ready_is_a_rollback_at_the_next_start() -> None:
    unit = Unit()
    unit.install("0.2.0", "B")
    assert unit.start("B", "0.2.0") == [ev.UpdateBooted("0.2.0", "B")]
    # the trial timeout restarted the unit and the boot loader went back to A
    assert unit.start("A", "0.1.0") == [ev.UpdateRolledBack("0.2.0", "B", "A", "0.1.0")]
    assert unit.start("A", "0.1.0") == []


def test_a_failed_install_leaves_nothing_pending() -> None:
    unit = Unit()
    unit.feed(UpdateChecked("0.2.0", "pollbox-amd64", 1000, "CN=signer"))
    unit.feed(UpdateFinished("0.2.0", error="RAUC failed"))
    assert unit.state.slots == SlotRecord() and unit.start("A") == []


def test_decide_boot_is_the_table() -> None:
    assert decide_boot(SlotRecord(), "A", "") == []
    assert decide_boot(SlotRecord(("1", "B")), "B", "1") == [ev.UpdateBooted("1", "B")]
    assert decide_boot(SlotRecord(("1", "B"), ("A", "0")), "A", "0") == [ev.UpdateRolledBack("1", "B", "A", "0")]
    assert decide_boot(SlotRecord(None, ("B", "1")), "B", "1") == []
    assert decide_boot(SlotRecord(None, ("B", "1")), "A", "0") == [ev.UpdateRolledBack("1", "B", "A", "0")]
    assert decide_boot(SlotRecord(("1", "B")), "", "") == []


def test_an_install_cut_short_by_a_restart_is_shown_as_failed() -> None:
    unit = Unit()
    unit.feed(UpdateChecked("0.2.0", "pollbox-amd64", 1000, "CN=signer"))
    assert unit.state.last_update is not None and unit.state.last_update.what == "installing"
    assert unit.start("B", "0.1.0") == []  # the power was cut while RAUC wrote slot A
    assert unit.state.last_update is not None and unit.state.last_update.what == "failed"
    assert unit.state.last_update.version == "0.2.0" and unit.state.slots == SlotRecord()
