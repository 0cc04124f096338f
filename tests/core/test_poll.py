"""Every (state, action) pair of the poll lifecycle: legal moves land where the table says, illegal ones raise."""

from __future__ import annotations

import itertools

import pytest

from device.core.errors import IllegalTransition
from device.core.poll import PollAction, PollState, next_poll_state

S, A = PollState, PollAction
EXPECTED = {
    (S.SETUP, A.OPEN): S.OPEN,
    (S.OPEN, A.PAUSE): S.PAUSED,
    (S.OPEN, A.CLOSE): S.CLOSED,
    (S.PAUSED, A.RESUME): S.OPEN,
    (S.PAUSED, A.CLOSE): S.CLOSED,
}
ALL = list(itertools.product(PollState, PollAction))


@pytest.mark.parametrize(("state", "action"), ALL, ids=lambda x: x.value)
def test_transition(state: PollState, action: PollAction) -> None:
    if (state, action) in EXPECTED:
        assert next_poll_state(state, action) is EXPECTED[(state, action)]
    else:
        with pytest.raises(IllegalTransition) as err:
            next_poll_state(state, action)
        assert state.value in str(err.value) and action.value in str(err.value)


def test_closed_is_final() -> None:
    for action in PollAction:
        with pytest.raises(IllegalTransition):
            next_poll_state(PollState.CLOSED, action)
