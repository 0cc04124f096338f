"""Errors raised by the pure core. Each carries a sentence an operator can read,
and a ``RefusalCode`` with its parameters so a screen can say it in the reader's language."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from protocol.errors import UserError


class RefusalCode(str, enum.Enum):
    """Why an action was refused; the chair's screen has a sentence for each, in every language.

    The parameters each code carries are named in its comment.
    """

    WRONG_STATE = "wrong_state"                  # state: the machine's state (for the polls: a poll state)
    ZERO_REPORT_FAILS = "zero_report_fails"      # identified, ballots: what is already recorded
    REASON_REQUIRED = "reason_required"
    NO_STANDING_CHECKIN = "no_standing_checkin"
    ALARM_NOT_OPEN = "alarm_not_open"            # alarm: its number
    BAD_UNIT_COUNT = "bad_unit_count"            # count: the unit's counter
    NO_SUCH_LINE = "no_such_line"                # line: the line number asked for
    JOURNAL_FAILED = "journal_failed"
    NO_OUTBOX = "no_outbox"
    CONDITION_PERSISTS = "condition_persists"    # alarm: its number; kind: the alarm kind whose cause is still there
    UNITS_NOT_CLOSED = "units_not_closed"        # units: the units whose final records are not held, comma-separated
    NO_SUCH_UNIT = "no_such_unit"                # unit: the unit named
    UPDATE_INSTALLING = "update_installing"      # version: the software update being written into the other slot


class CoreError(UserError):
    """Base of all core errors."""


class IllegalTransition(CoreError):
    """A state machine was asked to do something its table does not allow.

    Raised before anything changes: the machine stays in the state it was in.
    ``code`` and ``params`` say why in a form a screen can translate; without
    them it is ``WRONG_STATE`` with the state.
    """

    def __init__(self, machine: str, state: str, action: str, why: str = "", *,
                 code: RefusalCode = RefusalCode.WRONG_STATE, params: Mapping[str, str | int] | None = None) -> None:
        self.machine, self.state, self.action = machine, state, action
        self.code = code
        self.params: dict[str, str | int] = dict(params) if params is not None else {"state": state}
        detail = f": {why}" if why else ""
        super().__init__(f"{machine}: cannot {action} while {state}{detail}")


class InvalidEvent(CoreError):
    """An event is malformed or does not fit the journal it is applied to."""
