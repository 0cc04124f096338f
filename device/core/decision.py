"""What the desk shows after an identification attempt: one ``Decision``.

A decision is made by the station session (``session.py``) when it answers a
read or a typed number, and shown on the chair's screen through the desk's
queue (``desk.py``). The voter's name is carried for the chair's own screen
only; every view without a PIN drops it.
"""

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
