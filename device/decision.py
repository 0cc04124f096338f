"""What the desk shows after an identification attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from device.core.errors import IllegalTransition, RefusalCode


@dataclass(frozen=True)
class Decision:
    """One answer at the desk. ``outcome`` is admitted, already_voted, not_on_list,
    invalid_document, polls_not_open or duplicate_read; ``name`` is for the screen only."""

    outcome: str
    at: float
    method: str = "scan"
    line: int | None = None
    name: str | None = None
    first_at: float | None = None
    reason: str = ""
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActionRefused(Exception):
    """A chair or desk action is not allowed now. The message is the operator sentence (English, for
    logs and the command line); ``code`` and ``params`` let the chair's screen say it in its language."""

    def __init__(self, message: str, code: RefusalCode, params: Mapping[str, str | int] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params: dict[str, str | int] = dict(params or {})

    @classmethod
    def from_transition(cls, exc: IllegalTransition) -> ActionRefused:
        return cls(str(exc), exc.code, exc.params)
