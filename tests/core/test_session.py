"""The station session as a table: (what came before, input) -> (events, actions, decision), with no threads,
journal or box. Each row folds its own events into the state, as the appliance does after a commit."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.delays import Delays
from device.core.errors import IllegalTransition, RefusalCode
from device.core.events import CheckinMethod

D = Delays()
VOTERS = {"a" * 64: st.VoterEntry(1, "Voter One"), "b" * 64: st.VoterEntry(2, "Voter Two")}
CTX = ss.Context.of(VOTERS, D)
A, B = "a" * 64, "b" * 64
LOCK, ARM, BEAT, WAKE = ss.Action.LOCK_SLOT, ss.Action.ARM_SLOT, ss.Action.HEARTBEAT, ss.Action.WAKE_UPSTREAM


@dataclass
class Station:
    """A station fed input by input: the state folded from the events each step returns."""

    state: st.StationState = field(default_factory=st.StationState)
    session: ss.Session = field(default_factory=lambda: ss.Session.new(D))
    mono: float = 1000.0
    wall: float = 1_700_000_000.0

    def feed(self, inp: ss.Input, after: float = 0.0) -> ss.Step:
        self.mono += after
        self.wall += after
        done = ss.step(self.state, self.session, inp, CTX, ss.Now(self.mono, self.wall))
        for e in done.events:  # the fold accepts every event a step returns, or raises
            st.apply(self.state, ev.Recorded(self.state.last_seq + 1, self.wall, e))
        self.session = done.session
        return done


def scan(voter: str | None, key: str | None = None) -> ss.Identify:
    return ss.Identify(voter, key or str(voter), CheckinMethod.SCAN, "" if voter else "unreadable")


def started() -> Station:
    s = Station()
    s.feed(ss.StartUp("t", "S1"))
    return s


def opened() -> Station:
    s = started()
    s.feed(ss.OpenPolls())
    return s


def admitted() -> Station:
    s = opened()
    s.feed(scan(A))
    return s


def kinds(done: ss.Step) -> list[str]:
    return [e.kind for e in done.events]


# (name, how the station stands, input, seconds later, event kinds, actions, decision outcome)
ROWS = [
    ("start locks and records the start", Station, ss.StartUp("t", "S1"), 0, ["device_started"], [LOCK], None),
    ("start with the lid open raises the lid alarm", Station, ss.StartUp("t", "S1", lid_open=True), 0,
     ["device_started", "alarm_raised"], [LOCK], None),
    ("start with the beam blocked is a jam", Station, ss.StartUp("t", "S1", beam_blocked=True), 0,
     ["device_started", "alarm_raised"], [LOCK], None),
    ("start with the lid open and the beam blocked raises both alarms", Station,
     ss.StartUp("t", "S1", beam_blocked=True, lid_open=True), 0,
     ["device_started", "alarm_raised", "alarm_raised"], [LOCK], None),
    ("a unit that counted while down", Station, ss.StartUp("t", "S1", unit_drops=0), 0,
     ["device_started", "box_counter_noted"], [LOCK], None),
    ("open", started, ss.OpenPolls(), 0, ["polls_opened"], [], None),
    ("a voter on the list is admitted and the slot armed", opened, scan(A), 0, ["voter_admitted"], [ARM],
     "admitted"),
    ("the same document read again counts once", admitted, scan(A), 1, [], [], "duplicate_read"),
    ("the same voter later has already voted", admitted, scan(A), D.duplicate_read_window + 1,
     ["checkin_refused"], [], "already_voted"),
    ("not on the list", opened, scan("c" * 64), 0, ["checkin_refused"], [], "not_on_list"),
    ("unreadable", opened, scan(None, "junk"), 0, ["checkin_refused"], [], "invalid_document"),
    ("polls not open", started, scan(A), 0, ["checkin_refused"], [], "polls_not_open"),
    ("the admitted voter's ballot is counted and the slot locks", admitted,
     ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, 1001.0), 1, ["ballot_counted"], [LOCK], None),
    ("a drop with no admission is counted and alarmed", opened, ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, 1000.0), 1,
     ["ballot_counted", "alarm_raised"], [LOCK], None),
    ("a drop the station missed is still counted once", opened,
     ss.BoxSaw(ss.BoxSignal.UNIT_FOUND, 1000.0, 5), 0, ["device_status_changed", "box_counter_noted"], [], None),
    ("the lid opened", opened, ss.BoxSaw(ss.BoxSignal.LID_OPENED, 1000.0), 0, ["alarm_raised"], [LOCK], None),
    ("the lid opened while armed locks the slot", admitted, ss.BoxSaw(ss.BoxSignal.LID_OPENED, 1000.0), 0,
     ["alarm_raised"], [LOCK], None),
    ("the box unit lost", opened, ss.BoxSaw(ss.BoxSignal.UNIT_LOST, 1000.0), 0,
     ["device_status_changed", "alarm_raised"], [LOCK], None),
    ("the scanner unplugged while open", opened, ss.ScannerChanged("disconnected"), 0,
     ["device_status_changed", "alarm_raised"], [], None),
    ("the scanner reading is no event", opened, ss.ScannerChanged("reading"), 0, [], [], None),
    ("a token expires on the tick, and the changed count goes upstream", admitted, ss.Tick(), D.arm_timeout + 1,
     ["arm_expired", "turnout_snapshot"], [LOCK, BEAT], None),
    ("the hourly snapshot", opened, ss.Tick(), D.turnout_snapshot_every, ["turnout_snapshot"], [LOCK, BEAT], None),
    ("pause", opened, ss.PausePolls("lunch"), 0, ["polls_paused"], [], None),
    ("close cancels the open token and wakes the upstream", admitted, ss.ClosePolls(), 0,
     ["arm_cancelled", "polls_closed"], [WAKE, LOCK], None),
    ("undo closes the voter's open token", admitted, ss.Undo(1, "wrong person"), 0,
     ["checkin_undone", "arm_cancelled"], [LOCK], None),
    ("a note of record", opened, ss.Note("readiness", "ok"), 0, ["annotation"], [], None),
    ("low space raises one alarm", opened, ss.SpaceChecked(True, "only 5 MiB free"), 0, ["alarm_raised"], [], None),
    ("a storage fault goes on the record once it can", opened, ss.StorageRecovered("was full"), 0,
     ["alarm_raised"], [], None),
]


@pytest.mark.parametrize(("name", "before", "inp", "later", "events", "actions", "outcome"), ROWS,
                         ids=[r[0] for r in ROWS])
def test_session_table(name: str, before: object, inp: ss.Input, later: float, events: list[str],
                       actions: list[ss.Action], outcome: str | None) -> None:
    station = before()  # type: ignore[operator]
    done = station.feed(inp, after=later)
    assert kinds(done) == events
    assert list(done.actions) == actions
    assert (done.decision.outcome if done.decision else None) == outcome


def test_a_decision_names_the_sequence_its_event_gets() -> None:
    s = opened()
    done = s.feed(scan(A))
    assert done.decision is not None and done.decision.seq == s.state.last_seq
    assert done.decision.line == 1 and done.decision.name == "Voter One"


ILLEGAL = [
    ("open twice", opened, ss.OpenPolls(), RefusalCode.WRONG_STATE),
    ("resume while open", opened, ss.ResumePolls(), RefusalCode.WRONG_STATE),
    ("undo a line that does not exist", opened, ss.Undo(99, "x"), RefusalCode.NO_SUCH_LINE),
    ("undo without a reason", admitted, ss.Undo(1, "  "), RefusalCode.REASON_REQUIRED),
    ("acknowledge an alarm that is not open", opened, ss.Acknowledge(7), RefusalCode.ALARM_NOT_OPEN),
]


@pytest.mark.parametrize(("name", "before", "inp", "code"), ILLEGAL, ids=[r[0] for r in ILLEGAL])
def test_a_chair_action_not_allowed_now_raises_and_changes_nothing(name: str, before: object, inp: ss.Input,
                                                                   code: RefusalCode) -> None:
    station = before()  # type: ignore[operator]
    session, seq = station.session, station.state.last_seq
    with pytest.raises(IllegalTransition) as refused:
        station.feed(inp)
    assert refused.value.code is code
    assert station.session is session and station.state.last_seq == seq


def test_a_box_input_that_does_not_fit_is_ignored_and_said_why() -> None:
    s = opened()
    done = s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_CLEARED, 1000.0))  # cleared without having been blocked
    assert done.events == () and "interlock" in done.ignored


def test_one_admission_opens_the_slot_for_exactly_one_ballot() -> None:
    s = admitted()
    first = s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, s.mono + 1), after=1)
    s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_CLEARED, s.mono + 0.1), after=0.1)
    second = s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, s.mono + 1), after=1)
    assert kinds(first) == ["ballot_counted"] and first.events[0].token == 1  # type: ignore[attr-defined]
    assert kinds(second) == ["ballot_counted", "alarm_raised"]
    assert second.events[1].alarm_kind == "second_ballot"  # type: ignore[attr-defined]
    assert s.state.ballots == 2 and s.state.identified == 1


def test_counts_go_upstream_soon_after_they_change_and_not_more_often() -> None:
    s = admitted()
    first = s.feed(ss.Tick(), after=1)
    assert kinds(first) == ["turnout_snapshot"] and first.events[0].identified == 1  # type: ignore[attr-defined]
    assert kinds(s.feed(ss.Tick(), after=D.count_update_every)) == []  # nothing changed: nothing sent
    s.feed(scan(B))
    assert kinds(s.feed(ss.Tick(), after=1)) == ["turnout_snapshot"]  # the interval since the last has passed
    s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, s.mono + 1), after=1)
    s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_CLEARED, s.mono + 0.1), after=0.1)
    assert kinds(s.feed(ss.Tick(), after=1)) == []  # changed again, but too soon after the last
    assert kinds(s.feed(ss.Tick(), after=D.count_update_every)) == ["turnout_snapshot"]
