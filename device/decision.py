"""What the desk shows after an identification attempt."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
    """A chair or desk action is not allowed now; the message is the operator sentence."""
