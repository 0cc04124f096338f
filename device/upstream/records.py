"""Journal events -> upstream record bodies: what the CEC learns, and nothing more.

Only event kinds marked ``upstream`` in ``device/core/catalogue.py`` produce a
record. Each body carries the event's ``journal_seq`` and ``journal_hash`` and
the counts or facts of that event. Bodies never hold a voter's keyed hash,
name or line, and never hold text a clerk typed (pause and undo reasons,
acknowledgement notes), because such text may name someone. System text
(alarm details, annotations) is scrubbed of digit runs and MRZ-shaped strings.

Undo records carry counts, which depend on the journal before the event; the
outbox hook supplies them as a ``Tally`` read inside the append transaction.

Wiring: ``outbox.py`` calls ``body_for`` from its journal hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.core import events as ev
from device.core.catalogue import CATALOGUE
from protocol.errors import PollboxError
from protocol.schema import MAX_VERSION

REMOVED = "[removed]"
MAX_TEXT = 200
_DIGIT_RUN = re.compile(r"\d(?:[\s./-]?\d){5,}")
_MRZ_LIKE = re.compile(r"[A-Z0-9<]*<<[A-Z0-9<]*")


@dataclass(frozen=True)
class Tally:
    """Counts from the journal up to and including one event."""

    admitted: int
    undone: int
    ballots: int

    @property
    def identified(self) -> int:
        return self.admitted - self.undone


class NotUpstream(PollboxError):
    """The event kind is not sent upstream (a programming error if it reaches the outbox)."""


def scrub(text: str) -> str:
    """System text made safe to publish: no digit runs, no MRZ-like strings, bounded length."""
    cleaned = _MRZ_LIKE.sub(REMOVED, _DIGIT_RUN.sub(REMOVED, text))
    return cleaned if len(cleaned) <= MAX_TEXT else cleaned[: MAX_TEXT - 1] + "…"


def is_upstream(kind: str) -> bool:
    entry = CATALOGUE.get(kind)
    return entry is not None and entry.upstream


def needs_tally(event: ev.Event) -> bool:
    return isinstance(event, ev.CheckinUndone)


def body_for(event: ev.Event, tally: Tally | None = None) -> dict[str, Any]:
    """The facts of ``event`` for the CEC (without journal_seq/journal_hash)."""
    builder = _BUILDERS.get(type(event))
    if builder is None or not is_upstream(event.kind):
        raise NotUpstream(f"event kind {event.kind!r} is not sent upstream")
    return builder(event, tally)


def _opened(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"identified": e.identified, "ballots": e.ballots}


def _nothing(e: Any, _: Tally | None) -> dict[str, Any]:
    return {}


def _closed(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"identified": e.identified, "ballots": e.ballots, "difference": e.difference,
            "alarms_total": e.alarms_total, "alarms_open": e.alarms_open}


def _undone(e: Any, tally: Tally | None) -> dict[str, Any]:
    if tally is None:
        raise ValueError("an undo record needs the journal's counts")
    return {"undone_total": tally.undone, "identified": tally.identified, "ballots": tally.ballots}


def _alarm(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"alarm": e.alarm, "alarm_kind": e.alarm_kind, "detail": scrub(e.detail)}


def _acknowledged(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"alarm": e.alarm, "note_given": bool(e.note.strip())}


def _snapshot(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"identified": e.identified, "ballots": e.ballots, "registered": e.registered}


def _annotation(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"topic": scrub(e.topic), "text": scrub(e.text)}


def _conflict(e: Any, _: Tally | None) -> dict[str, Any]:
    """Which units admitted one voter, which of their admissions, when: never the voter's hash or line."""
    return {"first_unit": scrub(e.first_unit), "first_seq": e.first_seq, "first_at": int(e.first_at),
            "second_unit": scrub(e.second_unit), "second_seq": e.second_seq, "second_at": int(e.second_at)}


def _absent(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"unit": scrub(e.unit), "reason_given": bool(e.reason.strip())}


def _reconciled(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"desks_identified": e.desks_identified, "desks_ballots": e.desks_ballots,
            "mobile_identified": e.mobile_identified, "mobile_ballots": e.mobile_ballots,
            "identified": e.identified, "ballots": e.ballots, "conflicts": e.conflicts,
            "absent": scrub(e.absent), "parts": scrub(e.parts)}


def safe_version(text: str) -> str:
    """A version for the CEC: printable, at most ``MAX_VERSION`` characters (a refused bundle's is unverified)."""
    shown = "".join(c for c in text if c.isprintable())
    return shown[:MAX_VERSION]


def _update_refused(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"reason": e.reason, "detail": scrub(e.detail), "version": safe_version(e.version), "size": e.size}


def _update_started(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"version": safe_version(e.version), "compatible": scrub(e.compatible), "size": e.size,
            "signer": scrub(e.signer)}


def _update_slot(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"version": safe_version(e.version), "slot": scrub(e.slot)}


def _update_failed(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"version": safe_version(e.version), "detail": scrub(e.detail)}


def _held(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"action": e.action, "version": safe_version(e.version)}


def _rolled_back(e: Any, _: Tally | None) -> dict[str, Any]:
    return {"version": safe_version(e.version), "slot": scrub(e.slot), "booted": scrub(e.booted),
            "booted_version": safe_version(e.booted_version)}


_BUILDERS: dict[type[ev.Event], Callable[[Any, Tally | None], dict[str, Any]]] = {
    ev.PollsOpened: _opened,
    ev.PollsPaused: _nothing,
    ev.PollsResumed: _nothing,
    ev.PollsClosed: _closed,
    ev.CheckinUndone: _undone,
    ev.AlarmRaised: _alarm,
    ev.AlarmAcknowledged: _acknowledged,
    ev.TurnoutSnapshot: _snapshot,
    ev.Annotation: _annotation,
    ev.UnitConflict: _conflict,
    ev.UnitAbsentAtClose: _absent,
    ev.UnitsReconciled: _reconciled,
    ev.UpdateRefused: _update_refused,
    ev.UpdateStarted: _update_started,
    ev.UpdateInstalled: _update_slot,
    ev.UpdateFailed: _update_failed,
    ev.PollsHeldForUpdate: _held,
    ev.UpdateBooted: _update_slot,
    ev.UpdateRolledBack: _rolled_back,
}


def upstream_kinds_without_builder() -> list[str]:
    """Upstream kinds in the catalogue that have no body builder (must be empty)."""
    built = {str(cls.kind) for cls in _BUILDERS}
    return sorted(k for k, entry in CATALOGUE.items() if entry.upstream and k not in built)
