"""What the desk shows after an identification attempt."""

from __future__ import annotations

from collections.abc import Mapping

from device.core.decision import Decision
from device.core.errors import IllegalTransition, RefusalCode
from protocol.errors import UserError

__all__ = ["ActionRefused", "Decision"]


class ActionRefused(UserError):
    """A chair or desk action is not allowed now. The message is the operator sentence (English, for
    logs and the command line); ``code`` and ``params`` let the chair's screen say it in its language."""

    def __init__(self, message: str, code: RefusalCode, params: Mapping[str, str | int] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params: dict[str, str | int] = dict(params or {})

    @classmethod
    def from_transition(cls, exc: IllegalTransition) -> ActionRefused:
        return cls(str(exc), exc.code, exc.params)
