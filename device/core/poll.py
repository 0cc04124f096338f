"""The poll lifecycle: setup -> open <-> paused -> closed (final).

The whole machine is the ``TRANSITIONS`` table. Only chair actions move it.
Whether opening is allowed also depends on the zero report (nothing recorded),
which ``station.py`` checks before it consults this table.
"""

from __future__ import annotations

import enum

from .errors import IllegalTransition


class PollState(str, enum.Enum):
    SETUP = "setup"
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


class PollAction(str, enum.Enum):
    OPEN = "open"
    PAUSE = "pause"
    RESUME = "resume"
    CLOSE = "close"


TRANSITIONS: dict[tuple[PollState, PollAction], PollState] = {
    (PollState.SETUP, PollAction.OPEN): PollState.OPEN,
    (PollState.OPEN, PollAction.PAUSE): PollState.PAUSED,
    (PollState.PAUSED, PollAction.RESUME): PollState.OPEN,
    (PollState.OPEN, PollAction.CLOSE): PollState.CLOSED,
    (PollState.PAUSED, PollAction.CLOSE): PollState.CLOSED,
}


def next_poll_state(state: PollState, action: PollAction) -> PollState:
    """The state after ``action``; raises IllegalTransition if the table has no entry."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransition("polls", state.value, f"{action.value} the polls") from None
