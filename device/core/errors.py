"""Errors raised by the pure core. Each carries a sentence an operator can read."""

from __future__ import annotations


class CoreError(Exception):
    """Base of all core errors."""


class IllegalTransition(CoreError):
    """A state machine was asked to do something its table does not allow.

    Raised before anything changes: the machine stays in the state it was in.
    """

    def __init__(self, machine: str, state: str, action: str, why: str = "") -> None:
        self.machine, self.state, self.action = machine, state, action
        detail = f": {why}" if why else ""
        super().__init__(f"{machine}: cannot {action} while {state}{detail}")


class InvalidEvent(CoreError):
    """An event is malformed or does not fit the journal it is applied to."""
