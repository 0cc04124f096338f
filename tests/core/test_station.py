"""Check-in decisions, chair decisions and the consistency checks of ``apply``."""

from __future__ import annotations

import pytest

from device.core import events as ev
from device.core.errors import IllegalTransition, InvalidEvent
from device.core.events import CheckinMethod, Refusal
from device.core.poll import PollState
from device.core.station import StationState, VoterEntry, apply, decide_checkin, decide_close, decide_open, decide_undo

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
    assert opened.state.first_checkin("a" * 64) == (opened.seq, 2000.0)


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
]


@pytest.mark.parametrize(("name", "events"), BAD, ids=[b[0] for b in BAD])
def test_apply_names_events_that_do_not_fit(name: str, events: list[ev.Event]) -> None:
    log = Log()
    with pytest.raises(InvalidEvent):
        log.add(*events)


def test_apply_refuses_a_sequence_gap() -> None:
    with pytest.raises(InvalidEvent, match="sequence"):
        apply(StationState(), ev.Recorded(2, 0.0, ev.PollsResumed()))
