"""Check-in decisions, chair decisions and the consistency checks of ``apply``."""

from __future__ import annotations

import pytest

from device.core import events as ev
from device.core.errors import IllegalTransition, InvalidEvent
from device.core.events import AlarmKind, CheckinMethod, Refusal
from device.core.poll import PollState
from device.core.station import (
    StationState,
    VoterEntry,
    apply,
    decide_checkin,
    decide_close,
    decide_open,
    decide_undo,
    decide_unit_count,
)

VOTERS = {"a" * 64: VoterEntry(1, "A"), "b" * 64: VoterEntry(2, "B")}


class Log:
    """Records events into a state with a running sequence, like the journal does."""

    def __init__(self) -> None:
        self.state, self.seq = StationState(), 0

    def add(self, *events: ev.Event, at: float = 1000.0) -> None:
        for e in events:
            self.seq += 1
            apply(self.state, ev.Recorded(self.seq, at, e))


@pytest.fixture
def opened() -> Log:
    log = Log()
    log.add(decide_open(log.state))
    return log


def test_polls_not_open_refuses(opened: Log) -> None:
    assert decide_checkin(StationState(), "a" * 64, VOTERS, CheckinMethod.SCAN) == ev.CheckinRefused(
        Refusal.POLLS_NOT_OPEN.value, "a" * 64)


@pytest.mark.parametrize(("voter", "expected"), [
    (None, Refusal.INVALID_DOCUMENT.value), ("c" * 64, Refusal.NOT_ON_LIST.value)])
def test_refusals(opened: Log, voter: str | None, expected: str) -> None:
    e = decide_checkin(opened.state, voter, VOTERS, CheckinMethod.SCAN)
    assert isinstance(e, ev.CheckinRefused) and e.reason == expected


def test_admission_then_already_voted_with_first_time(opened: Log) -> None:
    e = decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.MANUAL)
    assert e == ev.VoterAdmitted("a" * 64, 1, "manual", 1)
    opened.add(e, at=2000.0)
    again = decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.SCAN)
    assert again == ev.CheckinRefused(Refusal.ALREADY_VOTED.value, "a" * 64, opened.seq)
    assert opened.state.checkins.get("a" * 64) == (opened.seq, 2000.0)


def test_undo_needs_reason_and_a_standing_checkin(opened: Log) -> None:
    with pytest.raises(IllegalTransition, match="no standing check-in"):
        decide_undo(opened.state, "a" * 64, "mistake")
    opened.add(decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.SCAN))
    with pytest.raises(IllegalTransition, match="reason"):
        decide_undo(opened.state, "a" * 64, "  ")
    opened.add(*decide_undo(opened.state, "a" * 64, "wrong person scanned"))
    assert opened.state.identified == 0 and opened.state.undone == 1
    assert isinstance(decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.SCAN), ev.VoterAdmitted)


def test_open_refused_when_anything_recorded() -> None:
    log = Log()
    log.add(ev.BallotCounted(None))
    with pytest.raises(IllegalTransition, match="zero report"):
        decide_open(log.state)


def test_close_report_carries_the_counts(opened: Log) -> None:
    opened.add(decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.SCAN), ev.BallotCounted(1))
    events = decide_close(opened.state)
    assert events[-1] == ev.PollsClosed(1, 1, 0, 0, 0)
    opened.add(*events)
    assert opened.state.poll is PollState.CLOSED


def test_close_cancels_open_tokens(opened: Log) -> None:
    opened.add(decide_checkin(opened.state, "a" * 64, VOTERS, CheckinMethod.SCAN))
    assert decide_close(opened.state)[0] == ev.ArmCancelled(1, "polls closed")


BAD = [
    ("admitted before opening", [ev.VoterAdmitted("a" * 64, 1, "scan", 1)]),
    ("admitted twice", [ev.PollsOpened(0, 0), ev.VoterAdmitted("a" * 64, 1, "scan", 1),
                        ev.VoterAdmitted("a" * 64, 1, "scan", 2)]),
    ("token out of order", [ev.PollsOpened(0, 0), ev.VoterAdmitted("a" * 64, 1, "scan", 5)]),
    ("ballot on unknown token", [ev.BallotCounted(3)]),
    ("close report lies", [ev.PollsOpened(0, 0), ev.BallotCounted(None), ev.PollsClosed(0, 0, 0, 0, 0)]),
    ("opened with counts", [ev.BallotCounted(None), ev.PollsOpened(0, 0)]),
    ("ack unknown alarm", [ev.AlarmAcknowledged(4)]),
    ("alarm id skipped", [ev.AlarmRaised(2, "jam")]),
    ("resume while open", [ev.PollsOpened(0, 0), ev.PollsResumed()]),
    ("unit count skips", [ev.BallotCounted(None, 4), ev.BallotCounted(None, 6)]),
    ("unit count repeats", [ev.BallotCounted(None, 4), ev.BallotCounted(None, 4)]),
    ("unit count goes back unnoted", [ev.BallotCounted(None, 4), ev.BallotCounted(None, 1)]),
    ("counter noted not lower", [ev.BallotCounted(None, 4), ev.BoxCounterNoted(5, 4)]),
    ("counter noted after the wrong count", [ev.BallotCounted(None, 4), ev.BoxCounterNoted(1, 3)]),
    ("counter noted negative", [ev.BoxCounterNoted(-1, None)]),
    ("same unit noted higher", [ev.BoxCounterNoted(4, None, "aa"), ev.BoxCounterNoted(9, 4, "aa")]),
    ("identity learned with a new count", [ev.BoxCounterNoted(4, None), ev.BoxCounterNoted(9, 4, "aa")]),
]


@pytest.mark.parametrize(("name", "events"), BAD, ids=[b[0] for b in BAD])
def test_apply_names_events_that_do_not_fit(name: str, events: list[ev.Event]) -> None:
    log = Log()
    with pytest.raises(InvalidEvent):
        log.add(*events)


def test_apply_refuses_a_sequence_gap() -> None:
    with pytest.raises(InvalidEvent, match="sequence"):
        apply(StationState(), ev.Recorded(2, 0.0, ev.PollsResumed()))


DETAIL = "counted by the ballot box while the station software was down"


def test_first_unit_counter_becomes_the_reference_without_a_ballot() -> None:
    log = Log()
    events = decide_unit_count(log.state, 57, DETAIL)
    assert events == [ev.BoxCounterNoted(57, None)]
    log.add(*events)
    assert (log.state.unit_count, log.state.ballots, log.state.alarms_total) == (57, 0, 0)


def test_drops_above_the_journal_count_are_ballots_with_alarms_once() -> None:
    log = Log()
    log.add(ev.BoxCounterNoted(10, None), ev.BallotCounted(None, 11), ev.AlarmRaised(1, "drop_without_token"))
    events = decide_unit_count(log.state, 13, DETAIL)
    assert events == [ev.BallotCounted(None, 12), ev.AlarmRaised(2, AlarmKind.DROP_WITHOUT_TOKEN.value, DETAIL),
                      ev.BallotCounted(None, 13), ev.AlarmRaised(3, AlarmKind.DROP_WITHOUT_TOKEN.value, DETAIL)]
    log.add(*events)
    assert (log.state.ballots, log.state.unit_count, log.state.alarms_total) == (3, 13, 3)
    assert decide_unit_count(log.state, 13, DETAIL) == []


def test_a_lower_unit_counter_is_noted_and_subtracts_nothing() -> None:
    log = Log()
    log.add(ev.BallotCounted(None, 8))
    events = decide_unit_count(log.state, 2, DETAIL)
    assert events[0] == ev.BoxCounterNoted(2, 8)
    assert isinstance(events[1], ev.AlarmRaised) and events[1].alarm_kind == AlarmKind.BOX_UNIT_REPLACED.value
    log.add(*events)
    assert (log.state.ballots, log.state.unit_count) == (1, 2)
    assert decide_unit_count(log.state, 2, DETAIL) == []
    log.add(ev.BallotCounted(None, 3))
    assert log.state.ballots == 2


def test_ballots_from_a_unit_without_a_counter_leave_the_reference_alone() -> None:
    log = Log()
    log.add(ev.BallotCounted(None, 5), ev.BallotCounted(None), ev.BallotCounted(None, 6))
    assert (log.state.ballots, log.state.unit_count) == (3, 6)


def test_a_negative_unit_counter_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="negative"):
        decide_unit_count(StationState(), -1, DETAIL)


def test_a_ballot_recorded_before_unit_counts_existed_still_decodes() -> None:
    assert ev.decode("ballot_counted", {"token": 3}) == ev.BallotCounted(3, None)
    assert ev.decode("ballot_counted", {"token": None, "unit_count": 9}) == ev.BallotCounted(None, 9)
    with pytest.raises(InvalidEvent, match="do not match"):
        ev.decode("ballot_counted", {"token": 3, "unit": 9})
    with pytest.raises(InvalidEvent, match="do not match"):
        ev.decode("box_counter_noted", {"unit_count": 3})


A, B = "e6605838834b2a2f", "0123456789abcdef"


@pytest.mark.parametrize("new_count", [0, 3, 8, 50])
def test_another_unit_is_the_new_reference_whatever_its_counter(new_count: int) -> None:
    log = Log()
    log.add(ev.BoxCounterNoted(5, None, A), ev.BallotCounted(None, 6), ev.BallotCounted(None, 7),
            ev.BallotCounted(None, 8))
    events = decide_unit_count(log.state, new_count, DETAIL, B)
    assert events[0] == ev.BoxCounterNoted(new_count, 8, B)
    assert [type(e) for e in events] == [ev.BoxCounterNoted, ev.AlarmRaised]
    assert isinstance(events[1], ev.AlarmRaised) and events[1].alarm_kind == AlarmKind.BOX_UNIT_REPLACED.value
    log.add(*events)
    assert (log.state.ballots, log.state.unit_count, log.state.unit_id) == (3, new_count, B)
    assert decide_unit_count(log.state, new_count, DETAIL, B) == []
    assert decide_unit_count(log.state, new_count + 1, DETAIL, B)[0] == ev.BallotCounted(None, new_count + 1)


def test_the_first_identity_heard_is_noted_before_the_drops_it_brings() -> None:
    log = Log()
    log.add(ev.BoxCounterNoted(5, None))
    events = decide_unit_count(log.state, 7, DETAIL, A)
    assert events[0] == ev.BoxCounterNoted(5, 5, A)
    assert [e for e in events if isinstance(e, ev.BallotCounted)] == [ev.BallotCounted(None, 6),
                                                                        ev.BallotCounted(None, 7)]
    log.add(*events)
    assert (log.state.ballots, log.state.unit_id) == (2, A)
    assert decide_unit_count(log.state, 7, DETAIL, A) == []
    assert decide_unit_count(log.state, 7, DETAIL) == []  # a status without an id says nothing new


def test_an_old_journal_entry_without_unit_id_still_decodes() -> None:
    decoded = ev.decode("box_counter_noted", {"unit_count": 3, "previous": None})
    assert decoded == ev.BoxCounterNoted(3, None, None)
