"""While a bundle is being written into the other root slot the polls are neither opened nor resumed: the
refusal is journaled (``polls_held_for_update``) and carries a code the chair's screen translates. Driven
through the pure session with a fake clock, as the appliance drives it (each step's events folded in)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.delays import Delays
from device.core.errors import IllegalTransition, RefusalCode
from device.core.poll import PollAction, PollState
from device.core.update import POLL_ACTIONS, UpdateChecked, UpdateFinished, UpdatePhase, held_for_update

D = Delays()
CTX = ss.Context.of({"a" * 64: st.VoterEntry(1, "Voter One")}, D)
BUNDLE = UpdateChecked("0.2.0+b1", "pollbox-amd64", 4096, "CN=pollbox update signer")


@dataclass
class FakeClock:
    mono: float = 500.0
    wall: float = 1_780_000_000.0

    def now(self, later: float) -> ss.Now:
        self.mono += later
        self.wall += later
        return ss.Now(self.mono, self.wall)


@dataclass
class Unit:
    state: st.StationState = field(default_factory=st.StationState)
    session: ss.Session = field(default_factory=lambda: ss.Session.new(D))
    clock: FakeClock = field(default_factory=FakeClock)
    journal: list[ev.Recorded] = field(default_factory=list)

    def feed(self, inp: ss.Input, later: float = 1.0) -> ss.Step:
        now = self.clock.now(later)
        done = ss.step(self.state, self.session, inp, CTX, now)
        for e in done.events:
            rec = ev.Recorded(self.state.last_seq + 1, now.wall, e)
            st.apply(self.state, rec)
            self.journal.append(rec)
        self.session = done.session
        return done


def installing() -> Unit:
    unit = Unit()
    unit.feed(ss.StartUp("0.1.0", "S1"))
    unit.feed(BUNDLE)
    assert unit.state.update is UpdatePhase.INSTALLING and unit.state.update_version == "0.2.0+b1"
    return unit


def test_opening_while_an_update_installs_is_journaled_and_refused_with_its_code() -> None:
    unit = installing()
    done = unit.feed(ss.OpenPolls(), later=30.0)
    assert done.events == (ev.PollsHeldForUpdate("open", "0.2.0+b1"),)
    assert done.refused is not None and done.refused.code is RefusalCode.UPDATE_INSTALLING
    assert done.refused.params == {"version": "0.2.0+b1"}
    assert "being written into the other root slot" in str(done.refused)
    assert unit.state.poll is PollState.SETUP and unit.journal[-1].event.kind == "polls_held_for_update"
    assert unit.journal[-1].at == unit.clock.wall


def test_once_the_install_ends_either_way_the_polls_open() -> None:
    for finished in (UpdateFinished("0.2.0+b1", slot="B"), UpdateFinished("0.2.0+b1", error="RAUC failed")):
        unit = installing()
        unit.feed(ss.OpenPolls())
        unit.feed(finished, later=600.0)
        assert unit.state.update is UpdatePhase.IDLE and unit.state.update_version == ""
        done = unit.feed(ss.OpenPolls())
        assert [e.kind for e in done.events] == ["polls_opened"] and done.refused is None
        assert unit.state.poll is PollState.OPEN


def test_a_restart_ends_an_install_it_cut_short_and_the_polls_open() -> None:
    unit = installing()
    unit.feed(ss.StartUp("0.1.0", "S1"), later=5.0)
    assert unit.state.update is UpdatePhase.IDLE
    assert [e.kind for e in unit.feed(ss.OpenPolls()).events] == ["polls_opened"]


def test_a_poll_action_the_poll_table_refuses_anyway_raises_and_journals_nothing() -> None:
    unit = installing()
    before = len(unit.journal)
    with pytest.raises(IllegalTransition) as caught:
        unit.feed(ss.ResumePolls())  # the polls are in setup: resuming is wrong whatever the update does
    assert caught.value.code is RefusalCode.WRONG_STATE and len(unit.journal) == before


def test_resuming_paused_polls_is_held_too() -> None:
    unit = Unit()
    unit.feed(ss.StartUp("0.1.0", "S1"))
    unit.feed(ss.OpenPolls())
    unit.feed(ss.PausePolls("break"))
    # No update starts while the polls are paused (decide_checked refuses); a journal that says otherwise
    # (one written by an older version) still keeps them paused until the install ends.
    unit.state.update, unit.state.update_version = UpdatePhase.INSTALLING, "0.2.0"
    done = unit.feed(ss.ResumePolls())
    assert done.events == (ev.PollsHeldForUpdate("resume", "0.2.0"),) and done.refused is not None
    assert unit.state.poll is PollState.PAUSED


def test_the_poll_actions_table() -> None:
    assert POLL_ACTIONS[UpdatePhase.IDLE] == frozenset(PollAction)
    for action in PollAction:
        held = held_for_update(UpdatePhase.INSTALLING, action, "1")
        assert (held is not None) == (action in (PollAction.OPEN, PollAction.RESUME))
        assert held_for_update(UpdatePhase.IDLE, action, "1") is None
