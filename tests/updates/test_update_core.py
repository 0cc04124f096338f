"""The core's update decisions: refused while the polls are open or paused, one install at a time, journaled."""

from __future__ import annotations

import pytest

from device.core import events as ev
from device.core.errors import IllegalTransition
from device.core.poll import PollState
from device.core.update import (
    TRANSITIONS,
    UpdateChecked,
    UpdateFinished,
    UpdatePhase,
    UpdateRefusal,
    UpdateStep,
    decide_checked,
    decide_finished,
    next_phase,
)

GOOD = UpdateChecked("0.2.0", "pollbox-amd64", 1234, "CN=signer")


@pytest.mark.parametrize("poll", [PollState.OPEN, PollState.PAUSED])
def test_refused_while_polls_are_open_or_paused_whatever_the_bundle(poll: PollState) -> None:
    for checked in (GOOD, UpdateChecked("", "", 9, refusal=UpdateRefusal.BAD_SIGNATURE, detail="x")):
        event = decide_checked(poll, UpdatePhase.IDLE, checked)
        assert isinstance(event, ev.UpdateRefused)
        assert event.reason == "polls_open" and poll.value in event.detail


@pytest.mark.parametrize("poll", [PollState.SETUP, PollState.CLOSED])
def test_a_good_bundle_starts_before_opening_and_after_closing(poll: PollState) -> None:
    assert decide_checked(poll, UpdatePhase.IDLE, GOOD) == ev.UpdateStarted("0.2.0", "pollbox-amd64", 1234, "CN=signer")


@pytest.mark.parametrize("reason", list(UpdateRefusal))
def test_the_updaters_refusal_is_journaled_with_its_reason(reason: UpdateRefusal) -> None:
    if reason is UpdateRefusal.POLLS_OPEN:
        return
    event = decide_checked(PollState.SETUP, UpdatePhase.IDLE, UpdateChecked("1", "", 5, refusal=reason, detail="why"))
    assert event == ev.UpdateRefused(reason.value, "why", "1", 5)


def test_a_second_update_while_one_installs_raises_and_records_nothing() -> None:
    with pytest.raises(IllegalTransition):
        decide_checked(PollState.SETUP, UpdatePhase.INSTALLING, GOOD)
    with pytest.raises(IllegalTransition):
        decide_finished(UpdatePhase.IDLE, UpdateFinished("0.2.0", "B"))


def test_finish_is_installed_or_failed() -> None:
    assert decide_finished(UpdatePhase.INSTALLING, UpdateFinished("0.2.0", "B")) == ev.UpdateInstalled("0.2.0", "B")
    assert decide_finished(UpdatePhase.INSTALLING, UpdateFinished("0.2.0", error="no")) == ev.UpdateFailed("0.2.0", "no")


def test_the_table_is_the_whole_machine() -> None:
    for phase in UpdatePhase:
        for step in UpdateStep:
            if (phase, step) in TRANSITIONS:
                assert next_phase(phase, step) is TRANSITIONS[(phase, step)]
            else:
                with pytest.raises(IllegalTransition):
                    next_phase(phase, step)
