"""What the owner remembers while the journal cannot be written: since when, why, and what came meanwhile.

A step whose commit fails changes nothing (``device/appliance.py`` locks the
slot). Box and scanner inputs that arrive meanwhile are kept here, in order;
the first step that finds the journal writable again records a
``storage_failed`` alarm that says what happened, then those inputs, so a
ballot dropped on a full card is counted once it can be, with its token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from device.core import session as ss
from device.store.errors import StorageError

log = logging.getLogger("pollbox.storage")


@dataclass(frozen=True)
class StorageView:
    """Whether the journal takes writes: ``code`` and ``problem`` of a standing fault, the low-space flag."""

    code: str = ""
    problem: str = ""
    low: bool = False
    waiting: int = 0
    """Box and scanner inputs kept in memory, to be recorded once the journal takes writes again."""

    @property
    def ok(self) -> bool:
        return not self.code

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "code": self.code, "problem": self.problem, "low": self.low, "waiting": self.waiting}


@dataclass
class StorageFault:
    """The standing fault (None while the journal takes writes) and the inputs kept since it began."""

    error: StorageError | None = None
    since: float = 0.0
    kept: list[ss.Input] = field(default_factory=list)

    def failed(self, exc: StorageError, wall: float) -> None:
        if self.error is None:
            self.since = wall
            log.error("the journal cannot be written: %s", exc)
        self.error = exc

    def note(self, wall: float) -> ss.StorageRecovered:
        """The input that puts the fault on the record, first thing once the journal takes writes."""
        assert self.error is not None
        return ss.StorageRecovered(
            f"the journal could not be written for {max(0.0, wall - self.since):.0f} s ({self.error.code}); "
            f"{len(self.kept)} box or scanner input(s) from that time are recorded now, in order")

    def view(self, low: bool, mark_fault: StorageError | None) -> StorageView:
        fault = self.error or mark_fault
        return StorageView(fault.code if fault else "", str(fault) if fault else "", low, len(self.kept))
