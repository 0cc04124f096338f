"""The interlock table: each row exercised, legal and illegal, with exact delays from ``Delays``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hst

from device.core import interlock as il
from device.core.delays import Delays
from device.core.errors import IllegalTransition
from device.core.events import AlarmKind

D = Delays()
T0 = 100.0


def run(state: il.InterlockState, *inputs: il.Input) -> tuple[il.InterlockState, list[il.Outcome]]:
    out: list[il.Outcome] = []
    for i in inputs:
        state, o = il.step(state, i, D)
        out += o
    return state, out


def test_arm_then_drop_consumes_the_token_and_locks() -> None:
    s, out = run(il.InterlockState(), il.Arm(1, T0))
    assert s.armed and s.slot_should_open and out == []
    s, out = run(s, il.BeamBlocked(T0 + 2))
    assert out == [il.Counted(1)] and not s.armed and not s.slot_should_open


def test_drop_without_token_is_counted_and_alarms() -> None:
    s, out = run(il.InterlockState(), il.BeamBlocked(T0))
    assert out == [il.Counted(None), il.Alarm(AlarmKind.DROP_WITHOUT_TOKEN)]


def test_second_drop_within_window_is_second_ballot() -> None:
    s, _ = run(il.InterlockState(), il.Arm(1, T0), il.BeamBlocked(T0 + 1), il.BeamCleared(T0 + 1.05))
    _, out = run(s, il.BeamBlocked(T0 + 1 + D.double_drop_window))
    assert out == [il.Counted(None), il.Alarm(AlarmKind.SECOND_BALLOT)]


def test_drop_after_window_is_drop_without_token() -> None:
    s, _ = run(il.InterlockState(), il.Arm(1, T0), il.BeamBlocked(T0 + 1), il.BeamCleared(T0 + 1.05))
    _, out = run(s, il.BeamBlocked(T0 + 1 + D.double_drop_window + 0.001))
    assert out[1] == il.Alarm(AlarmKind.DROP_WITHOUT_TOKEN)


def test_token_expires_after_exactly_arm_timeout() -> None:
    s, _ = run(il.InterlockState(), il.Arm(7, T0))
    s1, out = run(s, il.Tick(T0 + D.arm_timeout - 0.001))
    assert out == [] and s1.armed
    s2, out = run(s, il.Tick(T0 + D.arm_timeout))
    assert out == [il.Expired(7)] and not s2.armed


def test_two_tokens_are_consumed_oldest_first() -> None:
    s, out = run(il.InterlockState(), il.Arm(1, T0), il.Arm(2, T0 + 1), il.BeamBlocked(T0 + 2),
                 il.BeamCleared(T0 + 2.1), il.BeamBlocked(T0 + 3))
    assert out == [il.Counted(1), il.Counted(2)]


def test_jam_after_exactly_jam_after() -> None:
    s, _ = run(il.InterlockState(), il.Arm(1, T0), il.BeamBlocked(T0 + 1))
    s1, out = run(s, il.Tick(T0 + 1 + D.jam_after - 0.001))
    assert out == [] and not s1.jammed
    s2, out = run(s, il.Tick(T0 + 1 + D.jam_after))
    assert out == [il.Alarm(AlarmKind.JAM, f"drop sensor blocked for {D.jam_after:g} s")] and s2.jammed
    s3, out = run(s2, il.BeamCleared(T0 + 10))
    assert out == [il.JamEnded()] and not s3.jammed


def test_jam_alarm_is_raised_once() -> None:
    s, _ = run(il.InterlockState(), il.BeamBlocked(T0))
    s, out = run(s, il.Tick(T0 + D.jam_after), il.Tick(T0 + 2 * D.jam_after))
    assert [o for o in out if isinstance(o, il.Alarm)] == [il.Alarm(AlarmKind.JAM, f"drop sensor blocked for {D.jam_after:g} s")]


def test_jammed_slot_stays_locked_even_with_token() -> None:
    s, _ = run(il.InterlockState(), il.BeamBlocked(T0, at_startup=True), il.Arm(1, T0 + 1))
    assert s.armed and s.jammed and not s.slot_should_open


@pytest.mark.parametrize("armed", [True, False])
def test_lid_opened_alarms_and_locks(armed: bool) -> None:
    s = run(il.InterlockState(), il.Arm(1, T0))[0] if armed else il.InterlockState()
    s, out = run(s, il.LidOpened(T0 + 1))
    assert out == [il.Alarm(AlarmKind.LID_OPENED, "while armed" if armed else "while idle")]
    assert not s.slot_should_open
    s, out = run(s, il.LidClosed(T0 + 2))
    assert out == [il.LidShut()] and s.slot_should_open == armed


def test_startup_blocked_is_a_jam_not_a_ballot() -> None:
    s, out = run(il.InterlockState(), il.BeamBlocked(T0, at_startup=True))
    assert out == [il.Alarm(AlarmKind.JAM, "drop sensor blocked at start-up")] and s.jammed


def test_startup_blocked_with_the_lid_open_is_still_a_jam_and_its_clearing_ends_it() -> None:
    # The start-up reading feeds the lid first: a box powered with the lid open and the beam blocked (an
    # unwired or unpowered sensor pulled to its alarm state) was ignored as "late", then its BeamCleared too.
    s, out = run(il.InterlockState(), il.LidOpened(T0), il.BeamBlocked(T0, at_startup=True))
    assert out == [il.Alarm(AlarmKind.LID_OPENED, "while idle"), il.Alarm(AlarmKind.JAM, "drop sensor blocked at start-up")]
    assert s.jammed and s.lid_open and s.beam_blocked_since == T0
    s, out = run(s, il.LidClosed(T0 + 1), il.BeamCleared(T0 + 2))
    assert out == [il.LidShut(), il.JamEnded()] and not s.jammed and s.beam_blocked_since is None


def test_unit_reported_jam_alarms_locks_and_counts_nothing() -> None:
    s, out = run(il.InterlockState(), il.Arm(1, T0), il.JamReported(T0 + 1))
    assert out == [il.Alarm(AlarmKind.JAM, il.UNIT_JAM_DETAIL)]
    assert s.jammed and s.armed and not s.slot_should_open and s.beam_blocked_since == T0 + 1
    s, out = run(s, il.Tick(T0 + 1 + D.jam_after))
    assert out == []                                  # raised once, not again by the timer
    s, out = run(s, il.BeamCleared(T0 + 3))
    assert out == [il.JamEnded()] and not s.jammed and s.slot_should_open


def test_unit_reported_jam_on_a_counted_block_keeps_its_start() -> None:
    s, out = run(il.InterlockState(), il.BeamBlocked(T0), il.JamReported(T0 + 0.5))
    assert out == [il.Counted(None), il.Alarm(AlarmKind.DROP_WITHOUT_TOKEN), il.Alarm(AlarmKind.JAM, il.UNIT_JAM_DETAIL)]
    assert s.jammed and s.beam_blocked_since == T0
    _, out = run(s, il.Tick(T0 + D.jam_after))
    assert out == []


def test_every_input_type_has_a_row() -> None:
    assert {k[0] for k in il.TRANSITIONS} == {il.Arm, il.Cancel, il.BeamBlocked, il.BeamCleared, il.JamReported,
                                               il.LidOpened, il.LidClosed, il.BoxLost, il.BoxFound, il.Tick}
    assert [c for (t, c), h in il.TRANSITIONS.items() if t is il.JamReported and h is None] == [il.Condition.JAMMED]


ILLEGAL = [
    ("duplicate token", run(il.InterlockState(), il.Arm(1, T0))[0], il.Arm(1, T0 + 1)),
    ("cancel unknown", il.InterlockState(), il.Cancel(9)),
    ("blocked twice", run(il.InterlockState(), il.BeamBlocked(T0))[0], il.BeamBlocked(T0 + 1)),
    ("cleared while clear", il.InterlockState(), il.BeamCleared(T0)),
    ("lid opened twice", run(il.InterlockState(), il.LidOpened(T0))[0], il.LidOpened(T0 + 1)),
    ("lid closed while closed", il.InterlockState(), il.LidClosed(T0)),
    ("startup block after use", run(il.InterlockState(), il.Arm(1, T0))[0], il.BeamBlocked(T0, at_startup=True)),
    ("jam reported while jammed", run(il.InterlockState(), il.JamReported(T0))[0], il.JamReported(T0 + 1)),
    ("jam reported after a timed jam", run(il.InterlockState(), il.BeamBlocked(T0), il.Tick(T0 + D.jam_after))[0],
     il.JamReported(T0 + D.jam_after + 1)),
    ("jam reported after a start-up jam", run(il.InterlockState(), il.BeamBlocked(T0, at_startup=True))[0],
     il.JamReported(T0 + 1)),
    ("box lost twice", run(il.InterlockState(), il.BoxLost(T0))[0], il.BoxLost(T0 + 1)),
]


@pytest.mark.parametrize(("name", "state", "inp"), ILLEGAL, ids=[x[0] for x in ILLEGAL])
def test_illegal_inputs_raise_and_change_nothing(name: str, state: il.InterlockState, inp: il.Input) -> None:
    before = state
    with pytest.raises(IllegalTransition):
        il.step(state, inp, D)
    assert state == before


@given(tokens=hst.lists(hst.integers(1, 4), max_size=3, unique=True), blocked=hst.booleans(), jammed=hst.booleans(),
       lid=hst.booleans(), token=hst.integers(1, 5), startup=hst.booleans())
def test_every_condition_a_classifier_names_has_its_row(tokens: list[int], blocked: bool, jammed: bool, lid: bool,
                                                        token: int, startup: bool) -> None:
    s = il.InterlockState(tokens=tuple((t, T0 + 90) for t in tokens), beam_blocked_since=T0 if blocked else None,
                          jammed=jammed, lid_open=lid, box_lost=token % 2 == 0)
    inputs = [il.Arm(token, T0), il.Cancel(token), il.BeamBlocked(T0, at_startup=startup), il.BeamCleared(T0),
              il.JamReported(T0), il.LidOpened(T0), il.LidClosed(T0), il.BoxLost(T0), il.BoxFound(T0), il.Tick(T0)]
    for i in inputs:
        assert (type(i), il.CLASSIFY[type(i)](s, i)) in il.TRANSITIONS


def test_a_lost_box_keeps_the_slot_locked_with_the_tokens_open() -> None:
    s, out = run(il.InterlockState(), il.Arm(1, T0), il.BoxLost(T0 + 1), il.Arm(2, T0 + 2))
    assert out == [] and s.armed and not s.slot_should_open
    assert [t for t, _ in s.tokens] == [1, 2]  # the voter admitted meanwhile keeps an open token


def test_the_box_heard_again_resumes_every_open_token_and_opens_the_slot() -> None:
    s, out = run(il.InterlockState(), il.BoxLost(T0), il.Arm(1, T0 + 1), il.Arm(2, T0 + 2), il.BoxFound(T0 + 30))
    assert out == [il.Resumed(1), il.Resumed(2)] and s.slot_should_open and not s.box_lost
    s, out = run(s, il.BeamBlocked(T0 + 31))
    assert out == [il.Counted(1)]  # one ballot per token, as always


def test_a_token_that_expired_while_the_box_was_lost_is_not_resumed() -> None:
    s, out = run(il.InterlockState(), il.BoxLost(T0), il.Arm(1, T0), il.Tick(T0 + D.arm_timeout),
                 il.BoxFound(T0 + D.arm_timeout + 1))
    assert out == [il.Expired(1)] and not s.slot_should_open


def test_drops_unheard_while_the_box_was_lost_withdraw_the_open_tokens() -> None:
    s, out = run(il.InterlockState(), il.Arm(1, T0), il.BoxLost(T0 + 1), il.Arm(2, T0 + 2),
                 il.BoxFound(T0 + 30, unheard_drops=1))
    assert out == [il.Withdrawn(1), il.Withdrawn(2)] and not s.armed and not s.slot_should_open


def test_the_box_heard_without_having_been_lost_changes_nothing() -> None:
    armed = run(il.InterlockState(), il.Arm(1, T0))[0]
    assert run(armed, il.BoxFound(T0 + 1)) == (armed, [])


def test_a_box_heard_again_with_its_lid_open_stays_locked() -> None:
    s, out = run(il.InterlockState(), il.BoxLost(T0), il.Arm(1, T0), il.LidOpened(T0 + 1), il.BoxFound(T0 + 2))
    assert il.Resumed(1) in out and s.armed and not s.slot_should_open
