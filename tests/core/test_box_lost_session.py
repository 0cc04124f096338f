"""The station session when the ballot box unit is lost and heard again (pure core, a fake clock): the
admissions made meanwhile, the slot reopened for them, and the drops the unit counted unheard."""

from __future__ import annotations

from device.core import session as ss
from device.core.interlock import WITHDRAWN_REASON
from tests.core.test_session import ARM, LOCK, A, B, Station, admitted, kinds, opened, scan

LOST = ss.BoxSaw(ss.BoxSignal.UNIT_LOST, 1000.0)


def found(count: int | None = None) -> ss.BoxSaw:
    return ss.BoxSaw(ss.BoxSignal.UNIT_FOUND, 1000.0, count)


def test_a_voter_admitted_while_the_unit_is_lost_keeps_a_token_and_the_slot_stays_locked() -> None:
    s = opened()
    s.feed(LOST)
    done = s.feed(scan(A))
    assert kinds(done) == ["voter_admitted"] and done.decision is not None and done.decision.outcome == "admitted"
    assert done.actions == (LOCK,)  # the unit is not asked to arm: it cannot answer
    assert s.state.open_tokens and s.session.interlock.armed


def test_the_unit_heard_again_reopens_the_slot_for_every_open_token_journaled() -> None:
    s = admitted()
    s.feed(LOST, 5)
    s.feed(scan(B), 5)
    done = s.feed(found(), 30)
    assert kinds(done) == ["device_status_changed", "arm_resumed", "arm_resumed"]
    assert done.actions == (ARM,)
    assert len(s.state.open_tokens) == 2  # reopened, not consumed: one ballot each
    done = s.feed(ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, 1000.0), 1)
    assert kinds(done) == ["ballot_counted"] and len(s.state.open_tokens) == 1


def test_drops_the_unit_counted_unheard_withdraw_the_open_tokens_and_leave_the_chair_to_decide() -> None:
    s = opened()
    s.feed(found(10))  # the unit's counter noted: 10 drops before today
    s.feed(scan(A))
    s.feed(LOST, 5)
    done = s.feed(found(11), 30)  # one drop went in while nobody heard it: perhaps the admitted voter's
    assert kinds(done) == ["device_status_changed", "ballot_counted", "alarm_raised", "arm_cancelled"]
    assert done.events[-1].reason == WITHDRAWN_REASON  # type: ignore[attr-defined]
    assert LOCK in done.actions and ARM not in done.actions
    assert not s.state.open_tokens and not s.session.interlock.armed


def test_a_token_expired_while_the_unit_was_lost_is_not_reopened() -> None:
    s = opened()
    s.feed(LOST)
    s.feed(scan(A))
    assert kinds(s.feed(ss.Tick(), s.session.interlock.tokens[0][1] - s.mono))[:1] == ["arm_expired"]
    done = s.feed(found(), 1)
    assert kinds(done) == ["device_status_changed"] and ARM not in done.actions


def test_the_unit_heard_again_with_nobody_admitted_changes_nothing_but_its_status() -> None:
    s: Station = opened()
    s.feed(LOST)
    done = s.feed(found(), 1)
    assert kinds(done) == ["device_status_changed"] and ARM not in done.actions
